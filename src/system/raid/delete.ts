import { SoftwareRaidFailure } from '../../base/errors.ts';
import { log } from '../../log.ts';
import { output, run } from '../exec.ts';
import type { RaidDeps } from './create.ts';
import { assembleAll, hasSuperblock, listArrays, stopArray, zeroSuperblock, type MdArray } from './mdadm.ts';

// raid.delete_configuration as IPA does it: assemble what the disks describe,
// then for each array wipe it, stop it and zero its members' superblocks,
// zero any superblock left on a partition or disk, and remove the partition
// tables of the disks that held arrays. Arrays whose volume name is in the
// node's skip_block_devices are kept, with their disks.

/** Partitions of a disk the kernel shows, deepest first (what lsblk lists under it). */
async function partitionsOf(disk: string): Promise<string[]> {
  try {
    const text = await output('lsblk', ['-n', '-l', '-o', 'PATH,TYPE', disk]);
    return text
      .split('\n')
      .map((l) => l.trim().split(/\s+/))
      .filter((f) => f[1] === 'part')
      .map((f) => f[0]!)
      .reverse();
  } catch {
    return [];
  }
}

async function deleteArray(array: MdArray, deps: RaidDeps): Promise<void> {
  deps.progress(`deleting software RAID ${array.device}`);
  log.info({ array: array.device, components: array.components }, 'deleting software RAID array');
  try {
    await run('wipefs', ['-af', array.device]);
  } catch (err) {
    log.warn({ array: array.device, err: String(err) }, 'wipefs on the array failed; continuing');
  }
  try {
    await stopArray(array.device);
  } catch (err) {
    log.warn({ array: array.device, err: String(err) }, 'mdadm --stop failed; continuing');
  }
  for (const c of array.components) {
    if (await hasSuperblock(c)) await zeroSuperblock(c);
  }
}

export interface DeleteResult {
  deleted: string[];
  kept: string[];
}

export async function deleteSoftwareRaid(deps: RaidDeps, keepVolumes: readonly string[] = []): Promise<DeleteResult> {
  await assembleAll();
  const arrays = await listArrays();
  const kept = arrays.filter((a) => a.name !== null && keepVolumes.includes(a.name));
  const keptDisks = new Set(kept.flatMap((a) => a.holders));
  const doomed = arrays.filter((a) => !kept.includes(a));
  const allowed = new Set((await deps.disks()).map((d) => d.name));

  // Refuse before touching anything when an array sits on a disk we may not write.
  for (const a of doomed) for (const h of a.holders) deps.guard.assertWritable(h);

  for (const a of doomed) await deleteArray(a, deps);

  // Superblocks of arrays that never assembled (a lone member, a foreign array): partitions first, then disks.
  const holders = new Set(doomed.flatMap((a) => a.holders));
  for (const disk of allowed) {
    if (keptDisks.has(disk) || /^\/dev\/md/.test(disk)) continue;
    for (const dev of [...(await partitionsOf(disk)), disk]) {
      if (await hasSuperblock(dev)) {
        deps.guard.assertWritable(disk);
        log.info({ device: dev }, 'zeroing a leftover md superblock');
        try {
          await zeroSuperblock(dev);
        } catch (err) {
          log.warn({ device: dev, err: String(err) }, 'could not zero the md superblock');
        }
        holders.add(disk);
      }
    }
  }
  // The partition tables create_configuration made.
  for (const disk of holders) {
    if (keptDisks.has(disk)) continue;
    deps.progress(`removing the RAID partitions of ${disk}`);
    await run('wipefs', ['-af', disk]);
    await run('partx', ['-d', disk], { okExitCodes: [1] }).catch(() => undefined);
  }

  const left = (await listArrays()).filter((a) => !(a.name !== null && keepVolumes.includes(a.name)));
  if (left.length) {
    throw new SoftwareRaidFailure(`Unable to clean all softraid correctly. Remaining ${left.map((a) => a.device).join(', ')}`);
  }
  return { deleted: doomed.map((a) => a.device), kept: kept.map((a) => a.device) };
}
