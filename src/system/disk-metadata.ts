import { open } from 'node:fs/promises';
import { output, run } from './exec.ts';
import { deviceSize } from './partitions/index.ts';
import type { Guard } from './safety.ts';

// Removes what makes a disk look used: partition tables (MBR, GPT and its
// backup at the end of the disk) and filesystem/RAID/LVM signatures, on the
// disk and on each partition the kernel shows. Fast (seconds per disk), so
// cleaning can run it on every deploy; it is not a data erase.

/** How much to zero at each end: covers MBR, primary GPT (LBA 0-33, also at 4K sectors) and the backup GPT. */
const EDGE_BYTES = 1024 * 1024;

interface LsblkNode {
  path: string;
  type: string;
  children?: LsblkNode[];
}

async function partitionsOf(device: string): Promise<string[]> {
  const text = await output('lsblk', ['-J', '-o', 'PATH,TYPE', device]);
  const root = (JSON.parse(text) as { blockdevices: LsblkNode[] }).blockdevices[0];
  const parts: string[] = [];
  const walk = (n: LsblkNode) => {
    for (const c of n.children ?? []) {
      if (c.type === 'part') parts.push(c.path);
      walk(c);
    }
  };
  if (root) walk(root);
  return parts;
}

async function zeroRange(device: string, offset: number, length: number): Promise<void> {
  const fh = await open(device, 'r+');
  try {
    await fh.write(Buffer.alloc(length), 0, length, offset);
    await fh.datasync();
  } finally {
    await fh.close();
  }
}

export async function destroyDiskMetadata(device: string, guard: Guard): Promise<void> {
  guard.assertWritable(device);
  for (const part of await partitionsOf(device)) {
    await run('wipefs', ['--force', '--all', part]);
  }
  await run('wipefs', ['--force', '--all', device]);
  const size = await deviceSize(device);
  const edge = Math.min(EDGE_BYTES, Math.floor(size / 2));
  await zeroRange(device, 0, edge);
  await zeroRange(device, size - edge, edge);
  // Tell the kernel the table is gone; loop devices without partition
  // scanning refuse, which is fine: they had no partition nodes to drop.
  await run('blockdev', ['--rereadpt', device], { okExitCodes: [1] }).catch(() => undefined);
}
