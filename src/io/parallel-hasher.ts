import { Worker } from 'node:worker_threads';
import { ImageChecksumError } from './errors.ts';
import type { HashAlgo } from './checksum.ts';

// Hashing on a worker thread, so the digest (≈0.5 s of CPU per GiB for
// sha256, more for md5) runs beside the download and write loop instead of
// after each chunk on the main thread. Bytes are copied into shared batches;
// a small fixed pool of batches bounds memory and applies backpressure.

const WORKER_SOURCE = `
const { parentPort } = require('node:worker_threads');
const { createHash } = require('node:crypto');
let hash;
parentPort.on('message', (m) => {
  if (m.type === 'init') hash = createHash(m.algo);
  else if (m.type === 'data') {
    hash.update(new Uint8Array(m.sab, 0, m.length));
    parentPort.postMessage({ type: 'done', index: m.index });
  } else if (m.type === 'end') parentPort.postMessage({ type: 'digest', hex: hash.digest('hex') });
});
`;

const BATCH = 4 * 1024 * 1024;
const BATCHES = 4;

export class ParallelHasher {
  private readonly worker: Worker;
  private readonly sabs: SharedArrayBuffer[] = [];
  private readonly views: Uint8Array[] = [];
  private readonly freeIdx: number[] = [];
  private waiting?: () => void;
  private current = -1;
  private fill = 0;
  private digest?: Promise<string>;
  private failure?: Error;

  constructor(readonly algo: HashAlgo) {
    this.worker = new Worker(WORKER_SOURCE, { eval: true });
    this.worker.unref();
    for (let i = 0; i < BATCHES; i++) {
      const sab = new SharedArrayBuffer(BATCH);
      this.sabs.push(sab);
      this.views.push(new Uint8Array(sab));
      this.freeIdx.push(i);
    }
    this.worker.on('message', (m: { type: string; index: number }) => {
      if (m.type === 'done') {
        this.freeIdx.push(m.index);
        const w = this.waiting;
        this.waiting = undefined;
        w?.();
      }
    });
    this.worker.on('error', (err) => {
      this.failure = err;
      this.waiting?.();
    });
    this.worker.postMessage({ type: 'init', algo });
  }

  private async takeBatch(): Promise<void> {
    while (this.freeIdx.length === 0) {
      if (this.failure) throw this.failure;
      await new Promise<void>((resolve) => (this.waiting = resolve));
    }
    if (this.failure) throw this.failure;
    this.current = this.freeIdx.pop()!;
    this.fill = 0;
  }

  private send(): void {
    if (this.current < 0 || this.fill === 0) return;
    this.worker.postMessage({ type: 'data', sab: this.sabs[this.current], length: this.fill, index: this.current });
    this.current = -1;
    this.fill = 0;
  }

  /** Adds bytes; resolves at once unless every batch is still being hashed. */
  async update(chunk: Uint8Array): Promise<void> {
    let pos = 0;
    while (pos < chunk.length) {
      if (this.current < 0) await this.takeBatch();
      const n = Math.min(chunk.length - pos, BATCH - this.fill);
      this.views[this.current]!.set(chunk.subarray(pos, pos + n), this.fill);
      this.fill += n;
      pos += n;
      if (this.fill === BATCH) this.send();
    }
  }

  /** The digest of everything added; the worker ends afterwards. */
  hex(): Promise<string> {
    this.digest ??= new Promise<string>((resolve, reject) => {
      this.send();
      this.worker.on('message', (m: { type: string; hex: string }) => {
        if (m.type === 'digest') resolve(m.hex);
      });
      this.worker.once('error', reject);
      this.worker.postMessage({ type: 'end' });
    }).finally(() => this.close());
    return this.digest;
  }

  async verify(expected: string | undefined): Promise<void> {
    const actual = await this.hex();
    if (expected !== undefined && actual !== expected.trim().toLowerCase()) {
      throw new ImageChecksumError(this.algo, expected, actual);
    }
  }

  close(): void {
    void this.worker.terminate();
  }
}
