import { Worker } from 'node:worker_threads';
import { checkDigest, type ImageHasher } from './hasher.ts';
import type { HashAlgo } from './checksum.ts';

// Hashing on a worker thread, so the digest (≈0.5 s of CPU per GiB for
// sha256, more for md5) runs beside the download and write loop instead of on
// the main thread. Memory is shared, not copied through messages: the worker
// is told once about each SharedArrayBuffer, then only (buffer, offset, length).
// Two ways in, in byte order:
//  - hashShared(buf): buf lives in a SharedArrayBuffer (the block sink's write
//    buffers), hashed in place — no copy at all;
//  - update(chunk): any bytes, copied into a small pool of shared batches
//    (used where the hashed bytes are not the written ones: compressed images).

const WORKER_SOURCE = `
const { parentPort } = require('node:worker_threads');
const { createHash } = require('node:crypto');
const buffers = new Map();
let hash;
parentPort.on('message', (m) => {
  if (m.type === 'init') hash = createHash(m.algo);
  else if (m.type === 'buffer') buffers.set(m.id, m.sab);
  else if (m.type === 'data') {
    hash.update(new Uint8Array(buffers.get(m.id), m.offset, m.length));
    parentPort.postMessage({ type: 'done', seq: m.seq });
  } else if (m.type === 'end') parentPort.postMessage({ type: 'digest', hex: hash.digest('hex') });
});
`;

const BATCH = 4 * 1024 * 1024;
const BATCHES = 3;

export class ParallelHasher implements ImageHasher {
  private readonly worker: Worker;
  private readonly ids = new WeakMap<SharedArrayBuffer, number>();
  private nextId = 0;
  private seq = 0;
  private readonly pending = new Map<number, () => void>();
  private readonly batches: Buffer[] = [];
  private readonly freeBatches: Buffer[] = [];
  private batchWaiter?: () => void;
  private current?: Buffer;
  private fill = 0;
  private digest?: Promise<string>;
  private failure?: Error;

  constructor(readonly algo: HashAlgo) {
    this.worker = new Worker(WORKER_SOURCE, { eval: true });
    this.worker.unref();
    this.worker.on('message', (m: { type: string; seq: number }) => {
      if (m.type !== 'done') return;
      const done = this.pending.get(m.seq);
      this.pending.delete(m.seq);
      done?.();
    });
    this.worker.on('error', (err) => {
      this.failure = err;
      for (const done of this.pending.values()) done();
      this.batchWaiter?.();
    });
    this.worker.postMessage({ type: 'init', algo });
  }

  /** Whether `buf` can be hashed in place (it is a view of a SharedArrayBuffer). */
  static canShare(buf: Uint8Array): boolean {
    return buf.buffer instanceof SharedArrayBuffer;
  }

  /** Queue bytes that live in shared memory; resolves once hashed (the caller must not reuse them before). */
  hashShared(buf: Uint8Array): Promise<void> {
    if (this.failure) return Promise.reject(this.failure);
    const sab = buf.buffer as SharedArrayBuffer;
    let id = this.ids.get(sab);
    if (id === undefined) {
      id = this.nextId++;
      this.ids.set(sab, id);
      this.worker.postMessage({ type: 'buffer', id, sab });
    }
    const seq = this.seq++;
    const done = new Promise<void>((resolve) => this.pending.set(seq, resolve));
    this.worker.postMessage({ type: 'data', id, offset: buf.byteOffset, length: buf.length, seq });
    return done.then(() => {
      if (this.failure) throw this.failure;
    });
  }

  private async takeBatch(): Promise<Buffer> {
    if (this.batches.length < BATCHES) {
      const b = Buffer.from(new SharedArrayBuffer(BATCH));
      this.batches.push(b);
      return b;
    }
    while (this.freeBatches.length === 0) {
      if (this.failure) throw this.failure;
      await new Promise<void>((resolve) => (this.batchWaiter = resolve));
    }
    return this.freeBatches.pop()!;
  }

  private sendBatch(): void {
    const b = this.current;
    if (!b || this.fill === 0) return;
    void this.hashShared(b.subarray(0, this.fill)).then(
      () => {
        this.freeBatches.push(b);
        const w = this.batchWaiter;
        this.batchWaiter = undefined;
        w?.();
      },
      () => undefined,
    );
    this.current = undefined;
    this.fill = 0;
  }

  /** Sends bytes added by copy so far, so that hashShared() calls after this come after them. */
  flush(): void {
    this.sendBatch();
  }

  /** Adds bytes by copy; resolves at once unless every batch is still being hashed. */
  async update(chunk: Uint8Array): Promise<void> {
    let pos = 0;
    while (pos < chunk.length) {
      this.current ??= await this.takeBatch();
      const n = Math.min(chunk.length - pos, BATCH - this.fill);
      this.current.set(chunk.subarray(pos, pos + n), this.fill);
      this.fill += n;
      pos += n;
      if (this.fill === BATCH) this.sendBatch();
    }
  }

  /** The digest of everything queued; the worker ends afterwards. */
  hex(): Promise<string> {
    this.digest ??= new Promise<string>((resolve, reject) => {
      this.sendBatch();
      this.worker.on('message', (m: { type: string; hex: string }) => {
        if (m.type === 'digest') resolve(m.hex);
      });
      this.worker.once('error', reject);
      this.worker.postMessage({ type: 'end' });
    }).finally(() => this.close());
    return this.digest;
  }

  async verify(expected: string | undefined): Promise<void> {
    checkDigest(this.algo, expected, await this.hex());
  }

  close(): void {
    void this.worker.terminate();
  }
}
