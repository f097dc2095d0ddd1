import { createHash, type Hash } from 'node:crypto';
import { ImageChecksumError } from './errors.ts';
import type { HashAlgo } from './checksum.ts';

/**
 * The image's digest, computed on the calling thread in stream order: the head and compressed
 * bytes as they are read, a raw image's bytes in the block sink's buffers after each write has
 * gone to the kernel, so the device works while this thread hashes.
 *
 * Why not a worker thread (the agent had one until 2026-12-07): it made the raw write 17-44%
 * faster on two CPUs, but its isolate and the allocator memory it left behind cost 8-14 MiB of
 * peak RSS per write, more than issue 19's whole budget for a deploy (idle + 16 MiB), and a node
 * with little memory cannot spare it (docs/footprint.md, lever 14).
 */
export class ImageHasher {
  private readonly hash: Hash;
  private digest?: string;

  constructor(readonly algo: HashAlgo) {
    this.hash = createHash(algo);
  }

  update(chunk: Uint8Array): void {
    if (this.digest !== undefined) throw new Error('image hash already finished');
    this.hash.update(chunk);
  }

  hex(): string {
    this.digest ??= this.hash.digest('hex');
    return this.digest;
  }

  verify(expected: string | undefined): void {
    checkDigest(this.algo, expected, this.hex());
  }
}

export function checkDigest(algo: HashAlgo, expected: string | undefined, actual: string): void {
  if (expected !== undefined && actual !== expected.trim().toLowerCase()) {
    throw new ImageChecksumError(algo, expected, actual);
  }
}
