import { createHash, type Hash } from 'node:crypto';
import { availableParallelism } from 'node:os';
import type { HashAlgo } from './checksum.ts';
import { checkDigest, type ImageHasher } from './hasher.ts';
import { ParallelHasher } from './parallel-hasher.ts';

/**
 * Hashing on the calling thread, for a machine with one CPU: a worker thread there runs on the
 * same CPU as the download and write loop, so it buys no overlap, and its isolate and Node
 * environment (several MiB) and the copy batches are what a small node can least spare.
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

/** The hasher for this machine: a worker thread where there is a second CPU for it, else inline. */
export function newImageHasher(algo: HashAlgo, cpus = availableParallelism()): ImageHasher {
  return cpus > 1 ? new ParallelHasher(algo) : new InlineHasher(algo);
}
