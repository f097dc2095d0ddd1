import { open } from 'node:fs/promises';
import { run, type RunOptions } from '../exec.ts';
import { log } from '../../log.ts';
import type { Guard } from '../safety.ts';
import type { ToolName } from '../tools.ts';
import { decodeConfigDrive, type DecodedConfigDrive } from '../configdrive-decode.ts';
import { withPartitionDevice } from './device.ts';
import {
  LayoutError,
  MiB,
  planPartitionImageLayout,
  sfdiskScript,
  type LayoutOptions,
  type LayoutPlan,
  type PartitionRole,
  type PlannedPartition,
} from './layout-plan.ts';
import { deviceSize, notifyKernel, partitionPath, readPartitionTable, sectorSize, type PartitionEntry } from './table.ts';
import { copyFileIntoRange } from './write.ts';

// Partition image deploys (IPA work_on_disk): wipe the disk, create the
// layout ironic-lib would, format ESP/swap/ephemeral, write the config drive.
// The root partition's content is the image writer's job: it gets the offset.

export interface CreatedPartition {
  number: number;
  /** Byte offset on the whole disk. */
  offset: number;
  size: number;
  /** Kernel node name IPA would report (/dev/sda2, /dev/nvme0n1p2); may not exist on loop devices. */
  path: string;
  /** GPT partition GUID (lower case); absent on msdos. */
  partUuid?: string;
}

export interface PartitionImageLayout {
  label: 'gpt' | 'msdos';
  root: CreatedPartition;
  efiSystem?: CreatedPartition;
  biosBoot?: CreatedPartition;
  prepBoot?: CreatedPartition;
  swap?: CreatedPartition;
  ephemeral?: CreatedPartition;
  configdrive?: CreatedPartition;
}

export interface PartitionImageOptions extends Omit<LayoutOptions, 'configdriveMb'> {
  /** Ironic's configdrive value (base64 gzip or URL); sized and written here. */
  configdrive?: string | null;
  /** Filesystem for the ephemeral partition (ext4 default, as Ironic's default_ephemeral_format). */
  ephemeralFormat?: string | null;
  /** Rebuild keeping the ephemeral partition: the table must already match; nothing is re-partitioned. */
  preserveEphemeral?: boolean;
}

const MKFS: Record<string, { tool: ToolName; args: (label: string) => string[] }> = {
  ext4: { tool: 'mkfs.ext4', args: (l) => ['-F', '-q', '-L', l] },
  ext3: { tool: 'mkfs.ext3', args: (l) => ['-F', '-q', '-L', l] },
  ext2: { tool: 'mkfs.ext2', args: (l) => ['-F', '-q', '-L', l] },
  xfs: { tool: 'mkfs.xfs', args: (l) => ['-f', '-q', '-L', l] },
  // -I: we are formatting a partition we just made; mkfs.fat's whole-disk heuristics misfire on offset loop devices.
  vfat: { tool: 'mkfs.vfat', args: (l) => ['-I', '-n', l.toUpperCase().slice(0, 11)] },
  swap: { tool: 'mkswap', args: (l) => ['-L', l] },
};

/** Makes a filesystem inside a partition (via its node or an offset loop device). */
export async function makeFilesystem(
  device: string,
  part: PartitionEntry,
  fs: string,
  label: string,
  guard: Guard,
): Promise<void> {
  const mkfs = MKFS[fs];
  if (!mkfs) throw new LayoutError(`unsupported filesystem '${fs}' (supported: ${Object.keys(MKFS).join(', ')})`);
  guard.assertWritable(device);
  const opts: RunOptions = { timeoutMs: 30 * 60_000 };
  await withPartitionDevice(device, part, (dev) => run(mkfs.tool, [...mkfs.args(label), dev], opts));
}

/** Like IPA's destroy_disk_metadata: no old table or signature may survive at either end. */
async function wipeDiskEnds(device: string, size: number, guard: Guard): Promise<void> {
  guard.assertWritable(device);
  await run('wipefs', ['--all', '--force', device]);
  const zero = Buffer.alloc(Math.min(MiB, size));
  const fh = await open(device, 'r+');
  try {
    await fh.write(zero, 0, zero.length, 0);
    await fh.write(zero, 0, zero.length, size - zero.length);
    await fh.sync();
  } finally {
    await fh.close();
  }
}

function toEntry(p: PlannedPartition, sectorBytes: number, uuid?: string): PartitionEntry {
  return {
    number: p.number,
    start: p.offset,
    size: p.size,
    startSector: p.offset / sectorBytes,
    sizeSectors: p.size / sectorBytes,
    type: p.type,
    uuid,
  };
}

/** With preserve_ephemeral the existing table must be exactly the planned one. */
function checkExistingMatches(plan: LayoutPlan, existing: PartitionEntry[], device: string): void {
  for (const p of plan.partitions) {
    const e = existing.find((x) => x.number === p.number);
    if (!e || e.start !== p.offset || e.size !== p.size) {
      throw new LayoutError(
        `cannot preserve the ephemeral partition on ${device}: partition ${p.number} (${p.role}) ` +
          'does not match the requested layout',
      );
    }
  }
}

/** Creates the partition image layout and returns where everything is. */
export async function createPartitionImageLayout(
  device: string,
  opts: PartitionImageOptions,
  guard: Guard,
): Promise<PartitionImageLayout> {
  guard.assertWritable(device);
  let drive: DecodedConfigDrive | undefined;
  try {
    if (opts.configdrive) drive = await decodeConfigDrive(opts.configdrive);
    const size = await deviceSize(device);
    const ss = await sectorSize(device);
    const plan = planPartitionImageLayout({ ...opts, configdriveMb: drive?.sizeMiB ?? 0 }, size);
    log.info({ device, plan }, 'partition image layout');

    let entries: PartitionEntry[];
    if (opts.preserveEphemeral) {
      const existing = (await readPartitionTable(device))?.partitions ?? [];
      checkExistingMatches(plan, existing, device);
      entries = plan.partitions.map((p) => toEntry(p, ss, existing.find((e) => e.number === p.number)?.uuid));
    } else {
      await wipeDiskEnds(device, size, guard);
      guard.assertWritable(device);
      await run('sfdisk', ['--no-reread', '--no-tell-kernel', '--wipe', 'always', device], { input: sfdiskScript(plan, ss) });
      const table = await readPartitionTable(device);
      entries = plan.partitions.map((p) => {
        const e = table?.partitions.find((x) => x.number === p.number);
        if (!e || e.start !== p.offset || e.size !== p.size) {
          throw new LayoutError(`partitioning ${device} failed: partition ${p.number} (${p.role}) is not where it was planned`);
        }
        return e;
      });
    }
    await notifyKernel(device);

    const byRole = new Map<PartitionRole, PartitionEntry>(plan.partitions.map((p, i) => [p.role, entries[i]!]));
    const esp = byRole.get('efiSystem');
    if (esp) await makeFilesystem(device, esp, 'vfat', 'efi-part', guard);
    const cd = byRole.get('configdrive');
    if (cd && drive) await copyFileIntoRange(drive.path, device, cd.start, cd.size, guard);
    const swap = byRole.get('swap');
    if (swap) await makeFilesystem(device, swap, 'swap', 'swap1', guard);
    const eph = byRole.get('ephemeral');
    if (eph && !opts.preserveEphemeral) {
      await makeFilesystem(device, eph, opts.ephemeralFormat || 'ext4', 'ephemeral0', guard);
    }

    const created = (role: PartitionRole): CreatedPartition | undefined => {
      const e = byRole.get(role);
      return e && { number: e.number, offset: e.start, size: e.size, path: partitionPath(device, e.number), partUuid: e.uuid };
    };
    const layout: PartitionImageLayout = { label: plan.label, root: created('root')! };
    for (const role of ['efiSystem', 'biosBoot', 'prepBoot', 'swap', 'ephemeral', 'configdrive'] as const) {
      const c = created(role);
      if (c) layout[role] = c;
    }
    return layout;
  } finally {
    await drive?.cleanup();
  }
}
