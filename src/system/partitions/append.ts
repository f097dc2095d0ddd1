import { randomUUID } from 'node:crypto';
import { run } from '../exec.ts';
import { log } from '../../log.ts';
import type { Guard } from '../safety.ts';
import { deviceSize, notifyKernel, readPartitionTable, type PartitionEntry, type PartitionTable } from './table.ts';

// Adding one partition at the end of a disk that already holds an image
// (ironic-lib/IPA create_config_drive_partition): the config drive goes after
// everything else so the image's own partitions stay untouched.

const MiB = 1024 * 1024;
/**
 * MBR sector fields are 32 bits: nothing may end beyond 2^32 - 1 sectors of
 * 512 bytes (just under 2 TiB). ironic-lib likewise puts the config drive
 * right below 2 TiB on bigger MBR disks instead of at their real end.
 */
const MBR_MAX_BYTES = (2 ** 32 - 1) * 512;

export class NoRoomError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'NoRoomError';
  }
}

export interface AppendOptions {
  /** Preferred size (IPA always makes 64 MiB so a later rebuild fits a bigger drive). */
  preferredBytes: number;
  /** The least that will do (the image to put there); used when the tail is shorter. */
  minimumBytes: number;
  /** GPT partition name (ignored on MBR). */
  name?: string;
  guard: Guard;
}

const isExtended = (p: PartitionEntry) => ['5', 'f', '85'].includes(p.type.toLowerCase());

/** GPT images written to a bigger disk leave the backup header mid-disk; move it to the end. */
export async function relocateBackupGpt(device: string, guard: Guard): Promise<boolean> {
  const verify = await run('sgdisk', ['-v', device], { okExitCodes: [1, 2] });
  if (!/doesn't reside\s+at the end of the disk/.test(verify.stdout)) return false;
  guard.assertWritable(device);
  log.info({ device }, 'moving the backup GPT header to the end of the disk');
  await run('sgdisk', ['-e', device]);
  return true;
}

/**
 * Sector range [start, end] (inclusive) of the new partition: as large as
 * preferred (else as large as needed), 1 MiB aligned, ending at `lastUsable`
 * and starting after every existing partition.
 */
function tailRange(
  table: PartitionTable,
  lastUsable: number,
  opts: { preferredBytes: number; minimumBytes: number },
): { start: number; end: number } {
  const ss = table.sectorSize;
  const align = MiB / ss;
  const occupiedEnd = Math.max(
    table.firstLba ?? 1,
    ...table.partitions.map((p) => p.startSector + p.sizeSectors - 1),
  );
  for (const bytes of [opts.preferredBytes, opts.minimumBytes]) {
    const sectors = Math.ceil(bytes / MiB) * align;
    const start = Math.floor((lastUsable + 1 - sectors) / align) * align;
    if (start > occupiedEnd) return { start, end: lastUsable };
  }
  const freeBytes = Math.max(0, lastUsable - occupiedEnd) * ss;
  throw new NoRoomError(
    `no room for a ${Math.ceil(opts.minimumBytes / MiB)} MiB partition at the end of the disk: ` +
      `${Math.floor(freeBytes / MiB)} MiB free after the last partition`,
  );
}

function firstFreeNumber(table: PartitionTable): number {
  const used = new Set(table.partitions.map((p) => p.number));
  let n = 1;
  while (used.has(n)) n++;
  return n;
}

async function appendGpt(device: string, table: PartitionTable, opts: AppendOptions): Promise<PartitionEntry> {
  const { start, end } = tailRange(table, table.lastLba!, opts);
  const number = firstFreeNumber(table);
  const uuid = randomUUID();
  const args = ['-n', `${number}:${start}:${end}`, '-u', `${number}:${uuid}`];
  if (opts.name) args.push('-c', `${number}:${opts.name}`);
  opts.guard.assertWritable(device);
  await run('sgdisk', [...args, device]);
  return {
    number,
    start: start * table.sectorSize,
    size: (end - start + 1) * table.sectorSize,
    startSector: start,
    sizeSectors: end - start + 1,
    type: '0FC63DAF-8483-4772-8E79-3D69D8477DE4',
    uuid,
    name: opts.name,
  };
}

async function appendMbr(device: string, table: PartitionTable, diskBytes: number, opts: AppendOptions): Promise<PartitionEntry> {
  const ss = table.sectorSize;
  const primaries = table.partitions.filter((p) => p.number <= 4);
  const extended = primaries.find(isExtended);
  const limitBytes = Math.min(diskBytes, MBR_MAX_BYTES);
  if (diskBytes > MBR_MAX_BYTES) {
    log.warn({ device }, 'MBR disk larger than 2 TiB: placing the partition just below the 2 TiB MBR limit');
  }
  const lastUsable = Math.floor(limitBytes / ss) - 1;

  let input: string;
  if (primaries.length < 4) {
    const { start, end } = tailRange(table, lastUsable, opts);
    input = `start=${start}, size=${end - start + 1}, type=83\n`;
  } else if (extended && extended.startSector + extended.sizeSectors - 1 >= lastUsable - MiB / ss) {
    // Four primaries, one of them an extended partition reaching the end of
    // the disk: a logical partition at its end does the job (ironic-lib gives
    // up here, bug 1561283). Logical partitions need room for their EBR.
    const inside: PartitionTable = {
      ...table,
      firstLba: extended.startSector,
      partitions: table.partitions.filter((p) => p.number > 4),
    };
    const extEnd = Math.min(extended.startSector + extended.sizeSectors - 1, lastUsable);
    const { start, end } = tailRange(inside, extEnd, opts);
    input = `start=${start}, size=${end - start + 1}, type=83\n`;
  } else {
    throw new NoRoomError(
      `${device} uses MBR partitioning and already has ${primaries.length} primary partitions ` +
        'and no extended partition at the end of the disk to hold a logical one',
    );
  }
  opts.guard.assertWritable(device);
  await run('sfdisk', ['--append', '--no-reread', '--no-tell-kernel', device], { input });
  const after = await readPartitionTable(device);
  const before = new Set(table.partitions.map((p) => p.number));
  const added = after?.partitions.filter((p) => !before.has(p.number)) ?? [];
  if (added.length !== 1) throw new Error(`partitioning ${device} failed: cannot find the new partition`);
  return added[0]!;
}

/** Adds a partition at the end of the disk and returns it (byte offsets on the whole disk). */
export async function appendPartitionAtEnd(device: string, opts: AppendOptions): Promise<PartitionEntry> {
  opts.guard.assertWritable(device);
  let table = await readPartitionTable(device);
  if (!table) {
    throw new Error(`${device} has no partition table: cannot add a partition to it (is the image a whole disk image?)`);
  }
  if (table.label === 'gpt' && (await relocateBackupGpt(device, opts.guard))) {
    table = (await readPartitionTable(device))!;
  }
  const part =
    table.label === 'gpt' ? await appendGpt(device, table, opts) : await appendMbr(device, table, await deviceSize(device), opts);
  await notifyKernel(device);
  log.info({ device, part }, 'partition added at the end of the disk');
  return part;
}
