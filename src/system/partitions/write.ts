import { open } from 'node:fs/promises';
import type { Guard } from '../safety.ts';

// Copies a small file (config drive, boot code) into a byte range of a disk.
// Writing through the whole disk at an offset works the same on real disks
// and on loop devices without partition nodes.

const CHUNK = 1024 * 1024;

export async function copyFileIntoRange(
  source: string,
  device: string,
  offset: number,
  rangeSize: number,
  guard: Guard,
): Promise<number> {
  guard.assertWritable(device);
  const src = await open(source, 'r');
  try {
    const { size } = await src.stat();
    if (size > rangeSize) {
      throw new Error(`${source} (${size} bytes) does not fit into the ${rangeSize}-byte range at offset ${offset} of ${device}`);
    }
    const dst = await open(device, 'r+');
    try {
      const buf = Buffer.alloc(CHUNK);
      let done = 0;
      while (done < size) {
        const { bytesRead } = await src.read(buf, 0, Math.min(CHUNK, size - done), done);
        if (bytesRead === 0) throw new Error(`${source} ended early at ${done} of ${size} bytes`);
        let written = 0;
        while (written < bytesRead) {
          const r = await dst.write(buf, written, bytesRead - written, offset + done + written);
          written += r.bytesWritten;
        }
        done += bytesRead;
      }
      await dst.sync();
      return size;
    } finally {
      await dst.close();
    }
  } finally {
    await src.close();
  }
}
