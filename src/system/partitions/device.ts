import { readFile, realpath, stat } from 'node:fs/promises';
import { basename } from 'node:path';
import { output, run } from '../exec.ts';
import { log } from '../../log.ts';
import { partitionPath, type PartitionEntry } from './table.ts';

// A block device for one partition. On real disks the kernel gives us
// /dev/sda2; on loop devices without partition scanning (and right after a
// table change the kernel has not picked up) we make an offset loop device
// over the partition's byte range instead, and always detach it again.

async function isBlockDevice(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isBlockDevice();
  } catch {
    return false;
  }
}

/** The kernel's partition node, if it exists and covers exactly this partition's range. */
async function matchingPartitionNode(device: string, part: PartitionRange): Promise<string | null> {
  // /dev/disk/by-id/... names have no partition siblings of the same form; the kernel name does.
  const node = partitionPath(await realpath(device).catch(() => device), part.number);
  if (!(await isBlockDevice(node))) return null;
  try {
    // sysfs reports start/size in 512-byte units whatever the logical sector size.
    const sys = `/sys/class/block/${basename(node)}`;
    const start = Number((await readFile(`${sys}/start`, 'utf8')).trim()) * 512;
    const size = Number((await readFile(`${sys}/size`, 'utf8')).trim()) * 512;
    return start === part.start && size === part.size ? node : null;
  } catch {
    return null;
  }
}

/** Creates a loop device over a byte range of a disk. The caller must detach it. */
export async function attachOffsetLoop(device: string, offset: number, size: number): Promise<string> {
  const dev = (
    await output('losetup', ['-f', '--show', '-o', String(offset), '--sizelimit', String(size), device])
  ).trim();
  if (!dev.startsWith('/dev/loop')) throw new Error(`losetup returned an unexpected device '${dev}'`);
  return dev;
}

export async function detachLoop(loop: string): Promise<void> {
  try {
    await run('losetup', ['-d', loop]);
  } catch (err) {
    log.warn({ loop, err: String(err) }, 'could not detach loop device');
  }
}

/** Where a partition lies on its disk (a table entry, or a partition just created). */
export type PartitionRange = Pick<PartitionEntry, 'number' | 'start' | 'size'>;

/**
 * Runs fn with a block device path for the partition: the kernel's node when
 * it matches, else a temporary offset loop device that is detached afterwards
 * (even when fn throws).
 */
export async function withPartitionDevice<T>(
  device: string,
  partition: PartitionRange,
  fn: (partDev: string) => Promise<T>,
): Promise<T> {
  const node = await matchingPartitionNode(device, partition);
  if (node) return fn(node);
  const loop = await attachOffsetLoop(device, partition.start, partition.size);
  try {
    return await fn(loop);
  } finally {
    await detachLoop(loop);
  }
}
