import { createHash, randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { ParallelHasher } from '../../src/io/parallel-hasher.ts';
import { ImageChecksumError } from '../../src/io/errors.ts';

describe('ParallelHasher', () => {
  it('hashes copied chunks and shared buffers in the order given', async () => {
    const data = randomBytes(11 * 1024 * 1024 + 5);
    const h = new ParallelHasher('sha512');
    // First part by copy in odd sizes, the rest in place from shared memory.
    const split = 5 * 1024 * 1024 + 3;
    for (let i = 0; i < split; i += 70_001) await h.update(data.subarray(i, Math.min(i + 70_001, split)));
    h.flush();
    const shared = Buffer.from(new SharedArrayBuffer(data.length - split));
    data.copy(shared, 0, split);
    await Promise.all([h.hashShared(shared.subarray(0, 1000)), h.hashShared(shared.subarray(1000))]);
    const want = createHash('sha512').update(data).digest('hex');
    expect(await h.hex()).toBe(want);
  });

  it('fails verification on a different digest', async () => {
    const h = new ParallelHasher('md5');
    await h.update(Buffer.from('abc'));
    await expect(h.verify('d41d8cd98f00b204e9800998ecf8427e')).rejects.toBeInstanceOf(ImageChecksumError);
  });
});
