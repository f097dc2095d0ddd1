import { createHash, randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { ParallelHasher } from '../../src/io/parallel-hasher.ts';
import { InlineHasher, newImageHasher, usableMemory, WORKER_HASH_MIN_MEMORY } from '../../src/io/image-hasher.ts';
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

describe('newImageHasher', () => {
  it('hashes on a worker thread with two CPUs and 1 GiB, inline with one CPU or less memory, to the same digest', async () => {
    const data = randomBytes(3 * 1024 * 1024 + 7);
    const shared = Buffer.from(new SharedArrayBuffer(data.length));
    data.copy(shared);
    const digests: string[] = [];
    const GiB = 1024 ** 3;
    expect(WORKER_HASH_MIN_MEMORY).toBe(GiB);
    const cases = [
      { cpus: 1, memory: 64 * GiB, worker: false },
      { cpus: 2, memory: 256 * 1024 ** 2, worker: false },
      { cpus: 2, memory: GiB, worker: true },
    ];
    for (const { cpus, memory, worker } of cases) {
      const h = newImageHasher('sha256', cpus, memory);
      expect(h).toBeInstanceOf(worker ? ParallelHasher : InlineHasher);
      await h.update(data.subarray(0, 100_003));
      h.flush();
      await h.hashShared(shared.subarray(100_003));
      digests.push(await h.hex());
      h.close();
    }
    expect(digests).toEqual(Array(3).fill(createHash('sha256').update(data).digest('hex')));
  });

  it("takes a cgroup's memory limit as the node's memory when it is lower", () => {
    const GiB = 1024 ** 3;
    expect(usableMemory(8 * GiB, 256 * 1024 ** 2)).toBe(256 * 1024 ** 2);
    expect(usableMemory(8 * GiB, undefined)).toBe(8 * GiB);
    expect(usableMemory(8 * GiB, 0)).toBe(8 * GiB);
    expect(usableMemory(8 * GiB, 2 ** 64)).toBe(8 * GiB);
    expect(usableMemory()).toBeGreaterThan(0);
  });

  it('inline: fails verification on a different digest, passes on the same in any case', async () => {
    const h = new InlineHasher('md5');
    await h.update(Buffer.from('abc'));
    await expect(h.verify('d41d8cd98f00b204e9800998ecf8427e')).rejects.toBeInstanceOf(ImageChecksumError);
    await expect(h.verify(' 900150983CD24FB0D6963F7D28E17F72 ')).resolves.toBeUndefined();
  });
});
