import { createHash, type Hash } from 'node:crypto';
import { availableParallelism, totalmem } from 'node:os';
import type { HashAlgo } from './checksum.ts';
import { checkDigest, type ImageHasher } from './hasher.ts';
import { ParallelHasher } from './parallel-hasher.ts';

/**
 * Hashing on the calling thread, between the reads into one write buffer and the next, while the
 * kernel writes the buffer just hashed (the block sink hands the write over first). A worker
 * thread costs its own isolate and Node environment (8-12 MiB of peak RSS measured): where there
 * is one CPU it buys no overlap, and on a small node it is memory the node can least spare.
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
 * Memory from which a node with a second CPU hashes on a worker thread. The worker runs the hash
 * beside the download and write loop: with the image served by `busybox httpd` (sendfile, so the
 * server takes little of the two CPUs, as a remote one would) it wrote 2 GiB 40% faster than
 * hashing inline, for 8-12 MiB more peak RSS (docs/footprint.md, lever 13). On a small node that
 * memory decides whether the deploy runs at all (issue 19: 256 MiB nodes); on a larger one the
 * speed is worth it.
 */
export const WORKER_HASH_MIN_MEMORY = 1024 * 1024 * 1024;

/**
 * Memory this process may use: the machine's, or its cgroup's limit when lower (Node reports "no
 * limit" as undefined, 0 or a huge number, depending on its version and the cgroup).
 */
export function usableMemory(total = totalmem(), limit = process.constrainedMemory?.()): number {
  return limit !== undefined && limit > 0 && limit < total ? limit : total;
}

/** The hasher for this machine: a worker thread where a CPU and the memory are there for it, else inline. */
export function newImageHasher(algo: HashAlgo, cpus = availableParallelism(), memory = usableMemory()): ImageHasher {
  return cpus > 1 && memory >= WORKER_HASH_MIN_MEMORY ? new ParallelHasher(algo) : new InlineHasher(algo);
}
