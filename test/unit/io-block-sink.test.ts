import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { BlockSink, spareWriteBuffers } from '../../src/io/block-sink.ts';
import { ImageTooLargeError } from '../../src/io/errors.ts';

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
});
