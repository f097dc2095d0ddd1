import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.ts';
import { ImageDownloadError } from '../../src/io/errors.ts';
import { requestFromImageInfo } from '../../src/io/image-info.ts';
import { fetchToBuffer, openImageSource } from '../../src/io/source.ts';

// file:// image URLs read only files under the directories named by
// ipa-image-file-dirs (none by default), judged after symlinks are resolved;
// a refusal never carries the file's contents. Plain files in a temp dir.

const work = mkdtempSync(join(tmpdir(), 'io-file-source-'));
const allowed = join(work, 'images');
const outside = join(work, 'private');
const lookalike = join(work, 'images-not'); // shares the allowed dir's name as a prefix
for (const d of [allowed, outside, lookalike]) mkdirSync(d);
const SECRET = 'agent_token=do-not-leak-me';
writeFileSync(join(outside, 'secret'), SECRET);
writeFileSync(join(lookalike, 'secret'), SECRET);
writeFileSync(join(allowed, 'image.raw'), 'image bytes');
symlinkSync(join(outside, 'secret'), join(allowed, 'link-out'));
symlinkSync(outside, join(allowed, 'dir-out'));
symlinkSync(allowed, join(work, 'images-link'));
execFileSync('mkfifo', [join(allowed, 'fifo')]);
afterAll(() => rmSync(work, { recursive: true, force: true }));

const opts = (fileDirs?: string[]) => ({ retries: 0, retryIntervalSec: 0, timeoutSec: 5, fileDirs });
const url = (path: string) => pathToFileURL(path).toString();
const failure = (p: Promise<unknown>) => p.then(() => undefined, (e: unknown) => e as Error);

describe('file:// image URLs', () => {
  it('are refused when no directory is allowed (the default)', async () => {
    for (const fileDirs of [undefined, []]) {
      const err = await failure(openImageSource([url(join(allowed, 'image.raw'))], opts(fileDirs)));
      expect(err).toBeInstanceOf(ImageDownloadError);
      expect(err!.message).toMatch(/no directory is allowed for file:\/\/ images \(set ipa-image-file-dirs\)/);
    }
  });

  it('read a file under an allowed directory, also one allowed by a symlink to it', async () => {
    expect((await fetchToBuffer(url(join(allowed, 'image.raw')), opts([allowed]))).toString()).toBe('image bytes');
    expect((await fetchToBuffer(url(join(work, 'images-link', 'image.raw')), opts([join(work, 'images-link')]))).toString()).toBe('image bytes');
    expect((await fetchToBuffer(url(join(allowed, 'image.raw')), opts([join(work, 'images-link')]))).toString()).toBe('image bytes');
  });

  it('are refused outside the allowed directories, through symlinks, .. and look-alike prefixes, without the contents', async () => {
    const escapes = [
      join(outside, 'secret'),
      join(allowed, 'link-out'),
      join(allowed, 'dir-out', 'secret'),
      `${allowed}/../private/secret`,
      join(lookalike, 'secret'),
      // As written, the path must be under an allowed directory too (nothing outside is even looked up).
      join(work, 'images-link', 'image.raw'),
    ];
    for (const path of escapes) {
      const err = await failure(fetchToBuffer(`file://${path}`, opts([allowed])));
      expect(err, path).toBeInstanceOf(ImageDownloadError);
      expect(err!.message, path).toMatch(/refused: it is not under the allowed directories/);
      expect(err!.message).not.toContain(SECRET);
    }
  });

  it('do not tell whether a path outside exists', async () => {
    const missing = await failure(fetchToBuffer(url(join(outside, 'no-such-file')), opts([allowed])));
    const present = await failure(fetchToBuffer(url(join(outside, 'secret')), opts([allowed])));
    expect(missing!.message.replace('no-such-file', 'X')).toBe(present!.message.replace('secret', 'X'));
  });

  it('are refused for what is not a regular file, without blocking on a FIFO', async () => {
    const err = await failure(openImageSource([url(join(allowed, 'fifo'))], opts([allowed])));
    expect(err!.message).toMatch(/not a regular file/);
  });
});

describe('ipa-image-file-dirs', () => {
  it('reaches the image request from the kernel command line, and is empty by default', () => {
    const load = (cmdlineText: string) => loadConfig({ argv: ['--standalone'], env: {}, cmdlineText });
    expect(load('').imageFileDirs).toEqual([]);
    const cfg = load('ipa-image-file-dirs=/srv/images,/mnt/nfs');
    expect(cfg.imageFileDirs).toEqual(['/srv/images', '/mnt/nfs']);
    const download = { imageDownloadRetries: 0, imageDownloadRetryIntervalSec: 0, imageDownloadTimeoutSec: 5, imageFileDirs: cfg.imageFileDirs };
    const req = requestFromImageInfo({ urls: ['file:///srv/images/disk.raw'] }, {}, { device: '/dev/null', deviceSize: 0 }, download);
    expect(req.fileDirs).toEqual(['/srv/images', '/mnt/nfs']);
  });
});
