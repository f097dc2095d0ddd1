import { createHash, randomBytes } from 'node:crypto';
import { closeSync, createReadStream, openSync, writeSync } from 'node:fs';
import { execa } from 'execa';

// Disk images for deploy tests: an MBR disk with one partition full of
// random bytes (so a wrong byte anywhere shows), and its qcow2 and
// compressed forms.

export async function makeRawImage(path: string, sizeMiB: number): Promise<void> {
  // Written 64 MiB at a time: a bench's 2 GiB image would not fit one Buffer.
  const fd = openSync(path, 'w');
  try {
    for (let done = 0; done < sizeMiB; done += 64) {
      const data = randomBytes(Math.min(64, sizeMiB - done) * 1024 * 1024);
      if (done === 0) data.fill(0, 0, 512);
      for (let off = 0; off < data.length; ) off += writeSync(fd, data, off);
    }
  } finally {
    closeSync(fd);
  }
  await execa('sfdisk', ['--quiet', path], { input: 'label: dos\nstart=2048, type=83\n' });
}

export async function sha256File(path: string): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(path)) h.update(chunk as Buffer);
  return h.digest('hex');
}

export async function toQcow2(raw: string, out: string): Promise<void> {
  await execa('qemu-img', ['convert', '-f', 'raw', '-O', 'qcow2', raw, out]);
}

export async function compress(raw: string, kind: 'gzip' | 'zstd' | 'xz'): Promise<string> {
  const out = `${raw}.${kind === 'gzip' ? 'gz' : kind === 'zstd' ? 'zst' : 'xz'}`;
  const args = kind === 'zstd' ? ['-q', '-f', '-k', '-o', out, raw] : ['-k', '-f', raw];
  await execa(kind, args);
  return out;
}
