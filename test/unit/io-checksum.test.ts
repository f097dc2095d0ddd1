import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { algoByLength, checksumFromImageInfo, ImageHasher, pickChecksumLine } from '../../src/io/checksum.ts';
import { ImageChecksumError } from '../../src/io/errors.ts';

const md5 = 'd41d8cd98f00b204e9800998ecf8427e';
const sha256 = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';

describe('checksumFromImageInfo', () => {
  it('prefers os_hash_algo/os_hash_value over the legacy checksum', () => {
    expect(checksumFromImageInfo({ checksum: md5, os_hash_algo: 'sha512', os_hash_value: 'ab' })).toEqual({
      algo: 'sha512',
      value: 'ab',
    });
  });

  it('tells a legacy checksum algorithm by its length', () => {
    expect(checksumFromImageInfo({ checksum: md5 })?.algo).toBe('md5');
    expect(checksumFromImageInfo({ checksum: sha256 })?.algo).toBe('sha256');
    expect(checksumFromImageInfo({ checksum: 'a'.repeat(128) })?.algo).toBe('sha512');
    expect(() => algoByLength('abc')).toThrow(/not a hex/);
    expect(() => algoByLength('z'.repeat(32))).toThrow(/not a hex/);
  });

  it('defers the algorithm of a legacy checksum URL until the file is read', () => {
    expect(checksumFromImageInfo({ checksum: 'http://h/SUMS' })).toEqual({ algo: 'md5', value: 'http://h/SUMS', algoFromLength: true });
  });

  it('returns nothing without a checksum and refuses unknown algorithms', () => {
    expect(checksumFromImageInfo({})).toBeUndefined();
    expect(() => checksumFromImageInfo({ os_hash_algo: 'crc32', os_hash_value: '00' })).toThrow(/unsupported/);
  });
});

describe('pickChecksumLine', () => {
  const url = 'http://example.org/images/disk.qcow2?x=1';

  it('accepts a file with a bare digest', () => {
    expect(pickChecksumLine(`${sha256}\n`, url)).toBe(sha256);
  });

  it('picks the line for the image file name (GNU and BSD styles)', () => {
    expect(pickChecksumLine(`${md5}  other.img\n${sha256} *disk.qcow2\n`, url)).toBe(sha256);
    expect(pickChecksumLine(`# comment\n${md5}  ./sub/disk.qcow2\n`, url)).toBe(md5);
    expect(pickChecksumLine(`SHA256 (disk.qcow2) = ${sha256}\n`, url)).toBe(sha256);
  });

  it('fails when the name is missing or the file is empty', () => {
    expect(() => pickChecksumLine(`${md5}  other.img\n`, url)).toThrow(/does not list 'disk.qcow2'/);
    expect(() => pickChecksumLine('\n\n', url)).toThrow(/empty/);
  });
});

describe('ImageHasher', () => {
  it('verifies the digest of what it saw, case-insensitively', () => {
    const h = new ImageHasher('sha256');
    h.update(Buffer.from('hello '));
    h.update(Buffer.from('world'));
    const want = createHash('sha256').update('hello world').digest('hex');
    expect(h.hex()).toBe(want);
    expect(() => h.verify(want.toUpperCase())).not.toThrow();
    expect(() => h.verify(sha256)).toThrow(ImageChecksumError);
  });
});
