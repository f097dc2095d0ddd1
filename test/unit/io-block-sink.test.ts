import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { BlockSink, dropSpareWriteBuffers, spareWriteBuffers } from '../../src/io/block-sink.ts';
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

  it('hands its write buffers to the next sink once finished, never after an abort', async () => {
    const writeBytes = 192 * 1024; // a size no other test uses: the spares counted are this test's
    const image = (fill: number) => Buffer.alloc(5 * writeBytes + 100, fill);
    const first = await BlockSink.open({ path: join(dir, 'd1'), createFile: true, maxBytes: 1 << 30, writeBytes });
    await first.write(image(1));
    const before = spareWriteBuffers();
    await first.finish();
    const kept = spareWriteBuffers() - before;
    expect(kept).toBeGreaterThan(0);
    // The next write takes them (no new allocation) and its bytes are its own, not the last image's.
    const second = await BlockSink.open({ path: join(dir, 'd2'), createFile: true, maxBytes: 1 << 30, writeBytes });
    expect(spareWriteBuffers()).toBe(before + kept - 1);
    await second.write(image(2));
    await second.finish();
    expect(readFileSync(join(dir, 'd2')).equals(image(2))).toBe(true);
    // An aborted sink keeps its buffers out of the spares (a reader may still hold one).
    const held = spareWriteBuffers();
    const third = await BlockSink.open({ path: join(dir, 'd3'), createFile: true, maxBytes: 1 << 30, writeBytes });
    await third.write(image(3));
    await third.abort();
    expect(spareWriteBuffers()).toBeLessThan(held);
  });

  it('lets go of every spare when told (the agent does when a command ends), and the next sink makes its own', async () => {
    const writeBytes = 224 * 1024; // a size no other test uses
    const sink = await BlockSink.open({ path: join(dir, 'd4'), createFile: true, maxBytes: 1 << 30, writeBytes });
    await sink.write(Buffer.alloc(3 * writeBytes, 4));
    await sink.finish();
    expect(spareWriteBuffers(writeBytes)).toBeGreaterThan(0);
    const held = spareWriteBuffers(writeBytes) * writeBytes;
    expect(dropSpareWriteBuffers()).toBeGreaterThanOrEqual(held);
    expect(spareWriteBuffers()).toBe(0);
    const next = await BlockSink.open({ path: join(dir, 'd5'), createFile: true, maxBytes: 1 << 30, writeBytes });
    await next.write(Buffer.alloc(2 * writeBytes + 7, 5));
    await next.finish();
    expect(readFileSync(join(dir, 'd5')).equals(Buffer.alloc(2 * writeBytes + 7, 5))).toBe(true);
  });

  it('gets back every write buffer the source read into, as write_image uses them (none left to the GC)', async () => {
    // write_image's raw path: the first chunk (plain, read before the sink's
    // pool is lent) is peeked at, then the source reads into the sink's write
    // buffers. Its first chunk there ends on a write-buffer boundary of the
    // stream, short of the buffer (copied, then the buffer is the sink's
    // again), and an image that ends on a boundary leaves the buffer taken for
    // more bytes empty (given back). Each used to be lost: two 8 MiB buffers a write.
    const writeBytes = 160 * 1024; // a size no other test uses
    const image = randomBytes(6 * writeBytes);
    const server = createServer((_req, res) => {
      res.writeHead(200, { 'content-length': image.length });
      res.end(image);
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    try {
      const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/img`;
      const made: ArrayBufferLike[][] = [];
      for (const round of [1, 2]) {
        const src = await openImageSource([url], { retries: 0, retryIntervalSec: 0, timeoutSec: 5, readChunkBytes: 48 * 1024 });
        const it = src.chunks[Symbol.asyncIterator]();
        const head = await it.next();
        const path = join(dir, `e${round}`);
        const sink = await BlockSink.open({ path, createFile: true, maxBytes: 1 << 30, writeBytes });
        src.useBuffers(sink.buffers);
        await sink.write(head.value as Buffer);
        for (let r = await it.next(); !r.done; r = await it.next()) await sink.write(r.value);
        await src.close();
        expect(spareWriteBuffers(writeBytes)).toBe(0); // all taken by this sink (round 2: the first one's)
        await sink.finish();
        expect(sink.adopted).toBeGreaterThan(0);
        expect(readFileSync(path).equals(image)).toBe(true);
        // Every buffer it made is handed on (spares of other sizes, older, make room).
        expect(sink.buffers.made.length).toBeLessThanOrEqual(4);
        expect(spareWriteBuffers(writeBytes)).toBe(sink.buffers.made.length);
        made.push(sink.buffers.made.map((b) => b.buffer));
      }
      // The second write allocated nothing new: it ran on the first one's buffers.
      expect(new Set(made[1])).toEqual(new Set(made[0]));
    } finally {
      await new Promise((r) => server.close(r));
    }
  });
});
