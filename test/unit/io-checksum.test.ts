import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { algoByLength, checksumFromImageInfo, pickChecksumLine } from '../../src/io/checksum.ts';
import { ImageDownloadError } from '../../src/io/errors.ts';
import { resolveChecksum } from '../../src/io/write-image.ts';

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

  it('returns only a well-formed digest, and never quotes the file in its error', () => {
    for (const text of ['s3cr3t-agent-token\n', 'abcdef\n', `${'a'.repeat(63)}\n`, `SHA256 (disk.qcow2) = ${'b'.repeat(40)}\n`]) {
      const err = (() => {
        try {
          pickChecksumLine(text, url);
        } catch (e) {
          return e as Error;
        }
      })();
      expect(err).toBeInstanceOf(ImageDownloadError);
      expect(err!.message).toMatch(/no md5, sha256 or sha512 hex digest/);
      expect(err!.message).not.toContain(text.trim().split(' = ').pop());
    }
  });
});

describe('checksum files given as file:// URLs', () => {
  const work = mkdtempSync(join(tmpdir(), 'io-checksum-'));
  const allowed = join(work, 'images');
  const outside = join(work, 'private');
  mkdirSync(allowed);
  mkdirSync(outside);
  const secret = 'token=0123456789abcdef-do-not-print';
  writeFileSync(join(outside, 'secret'), `${secret}\n`);
  writeFileSync(join(allowed, 'one-line'), `${secret}\n`);
  writeFileSync(join(allowed, 'SHA256SUMS'), `${sha256}  disk.raw\n`);
  symlinkSync(join(outside, 'secret'), join(allowed, 'link-out'));
  afterAll(() => rmSync(work, { recursive: true, force: true }));

  const opts = (fileDirs?: string[]) => ({ retries: 0, retryIntervalSec: 0, timeoutSec: 5, fileDirs });
  const imageUrl = 'http://example.org/disk.raw';
  const resolveFrom = (path: string, fileDirs?: string[]) =>
    resolveChecksum({ algo: 'sha256', value: pathToFileURL(path).toString() }, imageUrl, opts(fileDirs));
  const failure = (p: Promise<unknown>) => p.then(() => undefined, (e: unknown) => e as Error);

  it('reads one from an allowed directory', async () => {
    expect(await resolveFrom(join(allowed, 'SHA256SUMS'), [allowed])).toEqual({ algo: 'sha256', value: sha256 });
  });

  it('refuses one outside the allowed directories (none by default), without reading it', async () => {
    for (const fileDirs of [undefined, [], [allowed]]) {
      const err = await failure(resolveFrom(join(outside, 'secret'), fileDirs));
      expect(err).toBeInstanceOf(ImageDownloadError);
      expect(err!.message).toMatch(/refused/);
      expect(err!.message).not.toContain(secret);
    }
  });

  it('refuses a symlink out of an allowed directory', async () => {
    const err = await failure(resolveFrom(join(allowed, 'link-out'), [allowed]));
    expect(err!.message).toMatch(/refused: it is not under the allowed directories/);
    expect(err!.message).not.toContain(secret);
  });

  it('does not echo a one-line file that is not a digest, in either checksum field', async () => {
    const path = join(allowed, 'one-line');
    const legacy = { algo: 'md5' as const, value: pathToFileURL(path).toString(), algoFromLength: true };
    for (const expected of [legacy, { algo: 'sha256' as const, value: pathToFileURL(path).toString() }]) {
      const err = await failure(resolveChecksum(expected, imageUrl, opts([allowed])));
      expect(err).toBeInstanceOf(ImageDownloadError);
      expect(err!.message).not.toContain(secret);
    }
  });
});
