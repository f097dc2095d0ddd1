import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { ImageHasher } from '../../src/io/hasher.ts';
import { ImageChecksumError } from '../../src/io/errors.ts';

describe('ImageHasher', () => {
  it('digests chunks in the order given, as one pass over the whole would', () => {
    const data = Buffer.from(Array.from({ length: 300_007 }, (_, i) => (i * 31) & 0xff));
    for (const algo of ['md5', 'sha256', 'sha512'] as const) {
      const h = new ImageHasher(algo);
      h.update(data.subarray(0, 1));
      h.update(data.subarray(1, 100_003));
      h.update(data.subarray(100_003));
      expect(h.hex()).toBe(createHash(algo).update(data).digest('hex'));
      expect(h.hex()).toBe(h.hex()); // asked twice: the same digest, not a second digest() call
    }
  });

  it('fails verification on a different digest, passes on the same in any case and with spaces', () => {
    const h = new ImageHasher('md5');
    h.update(Buffer.from('abc'));
    expect(() => h.verify('d41d8cd98f00b204e9800998ecf8427e')).toThrow(ImageChecksumError);
    expect(() => h.verify(' 900150983CD24FB0D6963F7D28E17F72 ')).not.toThrow();
    expect(() => h.verify(undefined)).not.toThrow(); // no checksum given: computed, not checked
  });

  it('refuses bytes after the digest was taken (they would be silently left out)', () => {
    const h = new ImageHasher('sha256');
    h.update(Buffer.from('a'));
    h.hex();
    expect(() => h.update(Buffer.from('b'))).toThrow(/already finished/);
  });
});
