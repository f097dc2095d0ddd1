import { open } from 'node:fs/promises';
import { output, run } from '../exec.ts';
import { log } from '../../log.ts';

// Reading partition tables. sfdisk -J understands both GPT and MBR and
// answers in sectors, which is all we need to find partitions by byte offset
// (loop devices here have no partition nodes, so offsets are the common
// language of every function in this folder).

export type TableLabel = 'gpt' | 'dos';

export interface PartitionEntry {
  number: number;
  /** Byte offset of the partition on the whole disk. */
  start: number;
  /** Size in bytes. */
  size: number;
  startSector: number;
  sizeSectors: number;
  /** GPT type GUID (upper case) or MBR type in hex without 0x (e.g. "83", "ef"). */
  type: string;
  /** GPT partition unique GUID (lower case); absent on MBR. */
  uuid?: string;
  /** GPT partition name. */
  name?: string;
  bootable?: boolean;
}

export interface PartitionTable {
  label: TableLabel;
  sectorSize: number;
  /** GPT usable range, in sectors; absent on MBR. */
  firstLba?: number;
  lastLba?: number;
  /** Disk identifier: GPT disk GUID or MBR 0xNNNNNNNN. */
  id?: string;
  partitions: PartitionEntry[];
}

interface SfdiskJson {
  partitiontable: {
    label: string;
    id?: string;
    firstlba?: number;
    lastlba?: number;
    sectorsize?: number;
    partitions?: Array<{
      node: string;
      start: number;
      size: number;
      type: string;
      uuid?: string;
      name?: string;
      bootable?: boolean;
    }>;
  };
}

/** Size of a block device (or regular file) in bytes. */
export async function deviceSize(device: string): Promise<number> {
  const text = await output('blockdev', ['--getsize64', device]);
  const size = Number(text.trim());
  if (!Number.isSafeInteger(size) || size <= 0) throw new Error(`cannot read the size of ${device}: '${text.trim()}'`);
  return size;
}

/** Logical sector size of a block device. */
export async function sectorSize(device: string): Promise<number> {
  const text = await output('blockdev', ['--getss', device]);
  const n = Number(text.trim());
  return Number.isSafeInteger(n) && n > 0 ? n : 512;
}

/** The partition number at the end of a kernel node name (sda3 -> 3, nvme0n1p2 -> 2). */
function numberFromNode(node: string): number {
  const m = /(\d+)$/.exec(node);
  if (!m) throw new Error(`cannot read a partition number from '${node}'`);
  return Number(m[1]);
}

/** Parses `sfdisk -J` output (exported for unit tests). */
export function parseSfdiskJson(text: string): PartitionTable {
  const pt = (JSON.parse(text) as SfdiskJson).partitiontable;
  if (pt.label !== 'gpt' && pt.label !== 'dos') throw new Error(`unsupported partition table type '${pt.label}'`);
  const ss = pt.sectorsize ?? 512;
  const partitions = (pt.partitions ?? []).map((p): PartitionEntry => ({
    number: numberFromNode(p.node),
    start: p.start * ss,
    size: p.size * ss,
    startSector: p.start,
    sizeSectors: p.size,
    type: p.type,
    uuid: p.uuid?.toLowerCase(),
    name: p.name,
    bootable: p.bootable,
  }));
  partitions.sort((a, b) => a.number - b.number);
  return { label: pt.label, sectorSize: ss, firstLba: pt.firstlba, lastLba: pt.lastlba, id: pt.id, partitions };
}

/** The partition table of a disk, or null when it has none sfdisk recognises. */
export async function readPartitionTable(device: string): Promise<PartitionTable | null> {
  const r = await run('sfdisk', ['-J', device], { okExitCodes: [1] });
  if (r.exitCode === 1) {
    if (/does not contain a recognized partition table/i.test(r.stderr)) return null;
    throw new Error(`sfdisk -J ${device} failed: ${r.stderr.trim()}`);
  }
  return parseSfdiskJson(r.stdout);
}

/**
 * Tells the kernel about a changed partition table. Best effort: loop devices
 * without partition scanning refuse this, and callers work with offsets anyway.
 */
export async function notifyKernel(device: string): Promise<void> {
  for (const [tool, args] of [
    ['partx', ['-u', device]],
    ['udevadm', ['settle', '--timeout=10']],
  ] as const) {
    try {
      await run(tool, args, { timeoutMs: 30_000 });
    } catch (err) {
      log.debug({ device, tool, err: String(err) }, 'kernel partition re-read failed (ignored)');
    }
  }
}

/**
 * The MBR disk signature as IPA reports it for whole disk images
 * (ironic-lib get_disk_identifier: the 4 bytes at offset 440, little endian, "0x%08x").
 */
export async function diskIdentifier(device: string): Promise<string> {
  const fh = await open(device, 'r');
  try {
    const buf = Buffer.alloc(4);
    await fh.read(buf, 0, 4, 440);
    return '0x' + buf.readUInt32LE(0).toString(16).padStart(8, '0');
  } finally {
    await fh.close();
  }
}

/** Kernel name of partition N of a disk (sda -> sda1, nvme0n1 -> nvme0n1p1, loop0 -> loop0p1). */
export function partitionPath(device: string, number: number): string {
  return /\d$/.test(device) ? `${device}p${number}` : `${device}${number}`;
}
