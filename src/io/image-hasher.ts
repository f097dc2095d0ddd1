import { createHash, type Hash } from 'node:crypto';
import { availableParallelism } from 'node:os';
import type { HashAlgo } from './checksum.ts';
import { checkDigest, type ImageHasher } from './hasher.ts';
import { ParallelHasher } from './parallel-hasher.ts';

/**
 * Hashing on the calling thread, between the reads into one write buffer and the next, while the
 * kernel writes the buffer just hashed (the block sink hands the write over first). A worker
 * thread costs its own isolate and Node environment (7 MiB of peak RSS measured) and only pays
 * where a CPU is left for it beside this thread and the kernel's side of the download and write.
 */
export class InlineHasher implements ImageHasher {
  private readonly hash: Hash;
  private digest?: string;

  constructor(readonly algo: HashAlgo) {
    this.hash = createHash(algo);
  }

  update(chunk: Uint8Array): Promise<void> {
    this.hash.update(chunk);
    return Promise.resolve();
  }

  flush(): void {
    // Nothing is queued: every byte is hashed when it is given.
  }

  hashShared(buf: Uint8Array): Promise<void> {
    return this.update(buf);
  }

  hex(): Promise<string> {
    this.digest ??= this.hash.digest('hex');
    return Promise.resolve(this.digest);
  }

  async verify(expected: string | undefined): Promise<void> {
    checkDigest(this.algo, expected, await this.hex());
  }

  close(): void {
    // No thread to end.
  }
}

/**
 * CPUs from which the hash gets a worker thread. With two, the worker was no faster than hashing
 * inline (2 GiB raw, 6 rounds: 3995 vs 4009 ms) and peaked 7 MiB higher (docs/footprint.md,
 * lever 13): one CPU runs this thread, the other the kernel's writes and socket work. From four,
 * a CPU is idle for it, and a node that size has memory to spare for the speed (not measured here:
 * this host has two).
 */
export const WORKER_HASH_FROM_CPUS = 4;

/** The hasher for this machine: a worker thread where a CPU is free for it, else inline. */
export function newImageHasher(algo: HashAlgo, cpus = availableParallelism()): ImageHasher {
  return cpus >= WORKER_HASH_FROM_CPUS ? new ParallelHasher(algo) : new InlineHasher(algo);
}
