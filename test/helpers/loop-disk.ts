import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';

// Loop devices as whole disks: the only disks tests ever write. Each one is
// backed by a sparse file in a temp dir and detached by destroy().
export interface LoopDisk {
  device: string;
  file: string;
  destroy(): Promise<void>;
}

export async function createLoopDisk(sizeMiB: number, label = 'disk'): Promise<LoopDisk> {
  return createLoopDiskBytes(sizeMiB * 1024 * 1024, label);
}

export async function createLoopDiskBytes(sizeBytes: number, label = 'disk'): Promise<LoopDisk> {
  const dir = mkdtempSync(join(tmpdir(), `metal-agent-${label}-`));
  const file = join(dir, `${label}.img`);
  await execa('truncate', ['-s', String(sizeBytes), file]);
  const { stdout } = await execa('losetup', ['-f', '--show', file]);
  const device = stdout.trim();
  if (!/^\/dev\/loop\d+$/.test(device)) throw new Error(`losetup gave ${device}`);
  let destroyed = false;
  return {
    device,
    file,
    async destroy() {
      if (destroyed) return;
      destroyed = true;
      await execa('losetup', ['-d', device], { reject: false });
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Loop disks a test file makes as it goes, all destroyed by cleanup() (call it in afterEach/afterAll). */
export function loopDiskPool() {
  const disks: LoopDisk[] = [];
  return {
    async disk(sizeBytes: number): Promise<LoopDisk> {
      const d = await createLoopDiskBytes(sizeBytes);
      disks.push(d);
      return d;
    },
    async cleanup(): Promise<void> {
      while (disks.length) await disks.pop()!.destroy();
    },
  };
}

/** An offset loop device over a byte range of a disk (partitions on loop disks). */
export async function withRange<T>(device: string, offset: number, size: number, fn: (dev: string) => Promise<T>): Promise<T> {
  const { stdout } = await execa('losetup', ['-f', '--show', '-o', String(offset), '--sizelimit', String(size), device]);
  const dev = stdout.trim();
  try {
    return await fn(dev);
  } finally {
    await execa('losetup', ['-d', dev], { reject: false });
  }
}

/** Puts a GPT with one partition holding an ext4 filesystem on the disk, so there is metadata to erase. */
export async function giveDiskAPartition(device: string): Promise<void> {
  await execa('sgdisk', ['-n', '1:2048:+16M', '-t', '1:8300', device]);
  await withRange(device, 2048 * 512, 16 * 1024 * 1024, (part) => execa('mkfs.ext4', ['-q', '-F', part]));
}

/** What blkid/wipefs/sgdisk can still find on the disk (empty when nothing is left). */
export async function metadataLeft(device: string): Promise<string[]> {
  const found: string[] = [];
  const wipefs = await execa('wipefs', ['--no-act', '--noheadings', '-o', 'TYPE,OFFSET', device], { reject: false });
  if (wipefs.stdout.trim()) found.push(`wipefs: ${wipefs.stdout.trim()}`);
  const blkid = await execa('blkid', ['-p', '-o', 'export', device], { reject: false });
  if (blkid.exitCode !== 2 && blkid.stdout.trim()) found.push(`blkid: ${blkid.stdout.trim().replace(/\n/g, ' ')}`);
  const sgdisk = await execa('sgdisk', ['-p', device], { reject: false });
  if (/^\s+\d+\s+\d+\s+\d+/m.test(sgdisk.stdout)) found.push(`sgdisk partitions: ${sgdisk.stdout}`);
  return found;
}
