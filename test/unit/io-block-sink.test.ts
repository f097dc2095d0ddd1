import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { BlockSink } from '../../src/io/block-sink.ts';
import { ImageTooLargeError } from '../../src/io/errors.ts';
import { openImageSource } from '../../src/io/source.ts';

const dir = mkdtempSync(join(tmpdir(), 'io-block-sink-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('BlockSink (file target)', () => {
  it('writes odd-sized chunks in order at the given offset and reports the total', async () => {
    const path = join(dir, 'a');
    const data = randomBytes(3 * 1024 * 1024 + 17);
    const progress: number[] = [];
    const sink = await BlockSink.open({
      path, createFile: true, offset: 4096, maxBytes: data.length, writeBytes: 64 * 1024, onProgress: (p) => progress.push(p.bytesWritten),
    });
    for (let i = 0; i < data.length; i += 10_007) await sink.write(data.subarray(i, i + 10_007));
    expect(await sink.finish()).toBe(data.length);
    const out = readFileSync(path);
    expect(out.subarray(4096).equals(data)).toBe(true);
    expect(progress.at(-1)).toBe(data.length);
  });

  it('refuses the chunk that would pass maxBytes', async () => {
    const sink = await BlockSink.open({ path: join(dir, 'b'), createFile: true, maxBytes: 100 });
    await sink.write(Buffer.alloc(60));
    await expect(sink.write(Buffer.alloc(41))).rejects.toBeInstanceOf(ImageTooLargeError);
    await sink.abort();
  });

  it('lets beforeFirstWrite refuse before a byte is written', async () => {
    const path = join(dir, 'c');
    const sink = await BlockSink.open({
      path, createFile: true, maxBytes: 1 << 30, writeBytes: 1024 * 1024, headBytes: 512,
      beforeFirstWrite: (head) => {
        if (head[0] === 0xee) throw new Error('refused');
      },
    });
    await sink.write(Buffer.alloc(700, 0xee));
    await expect(sink.finish()).rejects.toThrow('refused');
    await sink.abort();
    expect(sink.touched).toBe(false);
    expect(statSync(path).size).toBe(0);
  });

  it('fills one write buffer while the last one is written: two buffers in all, with copied chunks', async () => {
    const writeBytes = 64 * 1024;
    const data = randomBytes(9 * writeBytes + 5);
    const path = join(dir, 'd1');
    const sink = await BlockSink.open({ path, createFile: true, maxBytes: 1 << 30, writeBytes });
    for (let i = 0; i < data.length; i += 10_007) await sink.write(data.subarray(i, i + 10_007));
    await sink.finish();
    expect(readFileSync(path).equals(data)).toBe(true);
    expect(sink.buffers.made.length).toBe(2);
  });

  it('fails the write, not the process, when the hash throws instead of rejecting', async () => {
    const writeBytes = 64 * 1024;
    const sink = await BlockSink.open({
      path: join(dir, 'f'), createFile: true, maxBytes: 1 << 30, writeBytes,
      onFilled: () => {
        throw new Error('hash broke');
      },
    });
    await expect(sink.write(Buffer.alloc(3 * writeBytes))).rejects.toThrow('hash broke');
    await sink.abort();
  });

  it('reads into two write buffers in turn, as write_image uses them (none idle, none left to the GC)', async () => {
    // write_image's raw path: the first chunk (plain, read before the sink's
    // pool is lent) is peeked at, then the source reads into the sink's write
    // buffers. Its first chunk there ends on a write-buffer boundary of the
    // stream, short of the buffer (copied, then the buffer is the sink's
    // again), and an image that ends on a boundary leaves the buffer taken for
    // more bytes empty (given back). Each used to be lost (two 8 MiB buffers a
    // write), and a third buffer used to wait idle as the next copy target.
    const writeBytes = 160 * 1024;
    const image = randomBytes(6 * writeBytes);
    const server = createServer((_req, res) => {
      res.writeHead(200, { 'content-length': image.length });
      res.end(image);
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    try {
      const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/img`;
      const src = await openImageSource([url], { retries: 0, retryIntervalSec: 0, timeoutSec: 5, readChunkBytes: 48 * 1024 });
      const it = src.chunks[Symbol.asyncIterator]();
      const head = await it.next();
      const path = join(dir, 'e');
      const sink = await BlockSink.open({ path, createFile: true, maxBytes: 1 << 30, writeBytes });
      src.useBuffers(sink.buffers);
      await sink.write(head.value as Buffer);
      for (let r = await it.next(); !r.done; r = await it.next()) await sink.write(r.value);
      await src.close();
      await sink.finish();
      expect(sink.adopted).toBeGreaterThan(0);
      expect(readFileSync(path).equals(image)).toBe(true);
      expect(sink.buffers.made.length).toBe(2);
    } finally {
      await new Promise((r) => server.close(r));
    }
  });
});
