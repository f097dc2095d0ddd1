import { ImageChecksumError } from './errors.ts';
import type { HashAlgo } from './checksum.ts';

/** What write_image asks of its hasher (ParallelHasher's surface): bytes in stream order, then the digest. */
export interface ImageHasher {
  readonly algo: HashAlgo;
  /** Adds bytes that the caller may reuse as soon as the promise resolves. */
  update(chunk: Uint8Array): Promise<void>;
  /** Bytes added by update() so far come before those of later hashShared() calls. */
  flush(): void;
  /** Adds bytes in shared memory; the caller must not reuse them before the promise resolves. */
  hashShared(buf: Uint8Array): Promise<void>;
  hex(): Promise<string>;
  verify(expected: string | undefined): Promise<void>;
  close(): void;
}

export function checkDigest(algo: HashAlgo, expected: string | undefined, actual: string): void {
  if (expected !== undefined && actual !== expected.trim().toLowerCase()) {
    throw new ImageChecksumError(algo, expected, actual);
  }
}
