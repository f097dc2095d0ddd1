import type { BlockDevice } from '../../hardware/types.ts';
import { log } from '../../log.ts';
import { keptVolumeNames } from './config.ts';
import { listArrays } from './mdadm.ts';

// skip_block_devices by volume_name (IPA's property): an array named there is
// kept through cleaning, so the erase steps must leave it, its member
// partitions and the disks those live on alone.

/** The arrays named in the node's skip_block_devices, with their members and holder disks. */
export async function keptRaidDevices(node: Record<string, any> | null | undefined): Promise<Set<string>> {
  const names = keptVolumeNames(node);
  const kept = new Set<string>();
  if (names.length === 0) return kept;
  for (const a of await listArrays()) {
    if (a.name === null || !names.includes(a.name)) continue;
    for (const dev of [a.device, ...a.components, ...a.holders]) kept.add(dev);
  }
  return kept;
}

/** The disks an erase step may touch: all but those of kept volumes. */
export async function withoutKeptRaid(node: Record<string, any> | null | undefined, disks: BlockDevice[]): Promise<BlockDevice[]> {
  const kept = await keptRaidDevices(node);
  if (kept.size === 0) return disks;
  const left = disks.filter((d) => !kept.has(d.name));
  log.info({ kept: [...kept] }, 'leaving the disks of RAID volumes in skip_block_devices alone');
  return left;
}
