import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { run } from '../../src/system/exec.ts';
import {
  checksumFromImageInfo,
  ImageChecksumError,
  ImageDownloadError,
  ImageFormatError,
  ImageTooLargeError,
  ImageWriteError,
  requestFromImageInfo,
  writeImage,
  type WriteImageRequest,
} from '../../src/io/index.ts';
import { generateSelfSigned } from '../../src/api/tls.ts';
import { ImageServer, startImageServer, startTunnelProxy } from '../helpers/http-image-server.ts';

// write_image end to end: a local HTTP server, real loop devices, real
// qemu-img/zstd/xz. Every assertion compares bytes on the device.

const MiB = 1024 * 1024;
const DEVICE_SIZE = 48 * MiB;

const work = mkdtempSync(join(tmpdir(), 'io-write-image-'));
const server = new ImageServer();
const loops: string[] = [];
let dev: string;

async function makeLoop(size: number, name: string): Promise<string> {
  const file = join(work, name);
  writeFileSync(file, '');
  const fh = await open(file, 'r+');
  await fh.truncate(size);
  await fh.close();
  const loop = (await run('losetup', ['-f', '--show', file])).stdout.trim();
  loops.push(loop);
  return loop;
}

async function readDevice(device: string, length: number, offset = 0): Promise<Buffer> {
  const fh = await open(device, 'r');
  try {
    const buf = Buffer.alloc(length);
    const { bytesRead } = await fh.read(buf, 0, length, offset);
    return buf.subarray(0, bytesRead);
  } finally {
    await fh.close();
  }
}

/** Fill the device with a recognisable pattern so "untouched" can be checked. */
const PATTERN = Buffer.alloc(MiB, 'untouched!');
async function paint(device: string): Promise<void> {
  const fh = await open(device, 'r+');
  for (let off = 0; off < DEVICE_SIZE; off += MiB) await fh.write(PATTERN, 0, MiB, off);
  await fh.datasync();
  await fh.close();
}
async function expectUntouched(device: string): Promise<void> {
  expect((await readDevice(device, MiB, 0)).equals(PATTERN)).toBe(true);
  expect((await readDevice(device, MiB, DEVICE_SIZE - MiB)).equals(PATTERN)).toBe(true);
}

/** Random data with a run of zeros and text, so compressors and qcow2 have something to work with. */
function makeImage(size: number): Buffer {
  const img = randomBytes(size);
  img.fill(0, 2 * MiB, 5 * MiB);
  img.fill('metal-agent ', 7 * MiB, 8 * MiB);
  return img;
}

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const hash = (algo: string, b: Buffer) => createHash(algo).update(b).digest('hex');

function request(over: Partial<WriteImageRequest>): WriteImageRequest {
  return {
    urls: [],
    device: dev,
    deviceSize: DEVICE_SIZE,
    deepInspection: true,
    retries: 3,
    retryIntervalSec: 0.05,
    timeoutSec: 10,
    // ipa-image-file-dirs: file:// images are read from the test's work dir only.
    fileDirs: [work],
    ...over,
  };
}

const image = makeImage(12 * MiB + 4321);
const imagePath = join(work, 'image.raw');
let rawUrl: string;

beforeAll(async () => {
  writeFileSync(imagePath, image);
  await server.start();
  rawUrl = server.serve('/images/image.raw', { path: imagePath });
  dev = await makeLoop(DEVICE_SIZE, 'disk.img');
});

afterAll(async () => {
  await server.stop();
  for (const l of loops) await run('losetup', ['-d', l]).catch(() => undefined);
  rmSync(work, { recursive: true, force: true });
});

beforeEach(async () => {
  server.misbehave = {};
  server.requests.length = 0;
  await paint(dev);
});

describe('raw images', () => {
  it('writes a raw image byte-identical and reports the verified checksum', async () => {
    const progress: number[] = [];
    const res = await writeImage(
      request({
        urls: [rawUrl],
        checksum: { algo: 'sha256', value: sha256(image) },
        diskFormat: 'raw',
        onProgress: (p) => progress.push(p.bytesWritten),
      }),
    );
    expect(res).toMatchObject({
      bytesWritten: image.length,
      imageSize: image.length,
      detectedFormat: 'raw',
      checksum: { algo: 'sha256', value: sha256(image) },
      checksumVerified: true,
    });
    expect((await readDevice(dev, image.length)).equals(image)).toBe(true);
    // The final progress event reports the whole image.
    expect(progress.at(-1)).toBe(image.length);
  });

  it('fails on a checksum mismatch and wipes the head so the image cannot boot', async () => {
    const wrong = sha256(Buffer.from('something else'));
    const err = await writeImage(request({ urls: [rawUrl], checksum: { algo: 'sha256', value: wrong } })).catch(
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(ImageChecksumError);
    expect((err as ImageChecksumError).diskTouched).toBe(true);
    expect((err as Error).message).toContain(wrong);
    expect((await readDevice(dev, MiB)).equals(Buffer.alloc(MiB))).toBe(true);
    expect((await readDevice(dev, MiB, DEVICE_SIZE - MiB)).equals(Buffer.alloc(MiB))).toBe(true);
  });

  it('resumes dropped connections with Range and ends byte-identical', async () => {
    let drops = 0;
    server.misbehave.dropAfter = () => (drops++ < 4 ? 1 * MiB + Math.floor(Math.random() * 2 * MiB) : undefined);
    const res = await writeImage(request({ urls: [rawUrl], checksum: { algo: 'sha256', value: sha256(image) } }));
    expect(res.bytesWritten).toBe(image.length);
    expect((await readDevice(dev, image.length)).equals(image)).toBe(true);
    const ranged = server.requests.filter((r) => r.range);
    expect(ranged.length).toBe(4);
    expect(ranged.every((r) => r.status === 206)).toBe(true);
  });

  it('reads the download straight into the write buffers (http and file://): no copy, same bytes', async () => {
    // 1 MiB write buffers: after the first chunk, which is read before the
    // format is known, every whole MiB of the image is one of the sink's buffers.
    const tuning = { writeBytes: MiB };
    const wholeAfterFirst = Math.floor(image.length / MiB) - 1;
    for (const url of [rawUrl, pathToFileURL(imagePath).toString()]) {
      await paint(dev);
      const res = await writeImage(request({ urls: [url], checksum: { algo: 'sha256', value: sha256(image) }, tuning }));
      expect(res.chunksInPlace).toBe(wholeAfterFirst);
      expect((await readDevice(dev, image.length)).equals(image)).toBe(true);
    }
  });

  it('resumes inside a write buffer the download is reading into, byte-identical', async () => {
    let drops = 0;
    server.misbehave.dropAfter = () => (drops++ < 6 ? 100_000 + Math.floor(Math.random() * 2 * MiB) : undefined);
    const res = await writeImage(request({ urls: [rawUrl], checksum: { algo: 'sha256', value: sha256(image) }, tuning: { writeBytes: MiB } }));
    expect(res.chunksInPlace).toBeGreaterThan(0);
    expect((await readDevice(dev, image.length)).equals(image)).toBe(true);
    expect(server.requests.filter((r) => r.range).length).toBe(6);
  });

  it('follows a redirect to the image', async () => {
    const url = server.serve('/images/moved.raw', { redirect: rawUrl });
    const res = await writeImage(request({ urls: [url], checksum: { algo: 'sha256', value: sha256(image) } }));
    expect(res.bytesWritten).toBe(image.length);
    expect((await readDevice(dev, image.length)).equals(image)).toBe(true);
  });

  it('resumes from a server that ignores Range by skipping what it already has', async () => {
    let drops = 0;
    server.misbehave.ignoreRange = true;
    server.misbehave.dropAfter = (start) => (drops++ < 2 ? 3 * MiB + start : undefined);
    await writeImage(request({ urls: [rawUrl], checksum: { algo: 'sha256', value: sha256(image) } }));
    expect((await readDevice(dev, image.length)).equals(image)).toBe(true);
    expect(server.requests.filter((r) => r.status === 200).length).toBe(3);
  });

  it('gives up after the retry budget when the connection keeps dropping without progress', async () => {
    server.misbehave.dropAfter = (start) => (start === 0 ? MiB : 0);
    const err = await writeImage(request({ urls: [rawUrl], retries: 2 })).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ImageDownloadError);
    // The first response got some way (undici may drop what it had buffered when
    // the server hangs up), then every resume from there dies without a byte.
    const at = Number(/keeps failing at byte (\d+)/.exec((err as Error).message)?.[1]);
    expect(at).toBeGreaterThan(0);
    expect(at).toBeLessThanOrEqual(MiB);
    expect(server.requests.map((r) => r.range)).toEqual([undefined, ...Array(3).fill(`bytes=${at}-`)]);
  });

  it('stops when aborted, reports failure and wipes a touched disk', async () => {
    // 9 MiB arrive (one 8 MiB write lands), then the server stalls and the
    // agent waits out a long retry interval, during which we abort.
    server.misbehave.dropAfter = (start) => (start === 0 ? 9 * MiB : 0);
    const ctl = new AbortController();
    const pending = writeImage(request({ urls: [rawUrl], retryIntervalSec: 60, signal: ctl.signal }));
    setTimeout(() => ctl.abort(), 500);
    const err = await pending.catch((e: unknown) => e);
    expect((err as Error).name).toBe('AbortError');
    expect((await readDevice(dev, MiB)).equals(Buffer.alloc(MiB))).toBe(true);
  });

  it('verifies md5 and sha512 legacy checksums chosen by length', async () => {
    for (const algo of ['md5', 'sha512']) {
      const checksum = checksumFromImageInfo({ checksum: hash(algo, image) });
      expect(checksum?.algo).toBe(algo);
      const res = await writeImage(request({ urls: [rawUrl], checksum }));
      expect(res.checksum).toEqual({ algo, value: hash(algo, image) });
    }
    const bad = checksumFromImageInfo({ os_hash_algo: 'sha512', os_hash_value: hash('sha512', Buffer.from('x')) });
    await expect(writeImage(request({ urls: [rawUrl], checksum: bad }))).rejects.toBeInstanceOf(ImageChecksumError);
  });

  it('fetches a checksum given as a URL and picks the image file name', async () => {
    const sums = `${sha256(Buffer.from('other'))}  other.raw\n${sha256(image)} *image.raw\n`;
    const sumsUrl = server.serve('/images/SHA256SUMS', { body: sums });
    const checksum = checksumFromImageInfo({ os_hash_algo: 'sha256', os_hash_value: sumsUrl });
    const res = await writeImage(request({ urls: [rawUrl], checksum }));
    expect(res.checksumVerified).toBe(true);
    expect((await readDevice(dev, image.length)).equals(image)).toBe(true);

    // Legacy `checksum` as URL: the algorithm follows from the digest found there.
    const md5Url = server.serve('/images/MD5SUMS', { body: `${hash('md5', image)}  image.raw\n` });
    const legacy = await writeImage(request({ urls: [rawUrl], checksum: checksumFromImageInfo({ checksum: md5Url }) }));
    expect(legacy.checksum.algo).toBe('md5');

    const missing = server.serve('/images/EMPTYSUMS', { body: `${sha256(image)}  not-this-one.raw\n` });
    await expect(
      writeImage(request({ urls: [rawUrl], checksum: { algo: 'sha256', value: missing } })),
    ).rejects.toThrow(/does not list 'image.raw'/);
  });

  it('refuses an image larger than the device before writing anything', async () => {
    const big = join(work, 'big.raw');
    writeFileSync(big, Buffer.alloc(DEVICE_SIZE + MiB, 1));
    const url = server.serve('/images/big.raw', { path: big });
    const err = await writeImage(request({ urls: [url] })).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ImageTooLargeError);
    expect((err as ImageTooLargeError).diskTouched).toBe(false);
    await expectUntouched(dev);
  });

  it('stops a stream of unknown size as soon as it exceeds the device, and reports failure', async () => {
    const big = join(work, 'big-chunked.raw');
    writeFileSync(big, Buffer.alloc(DEVICE_SIZE + 4 * MiB, 1));
    const url = server.serve('/images/big-chunked.raw', { path: big });
    server.misbehave.chunked = true;
    const err = await writeImage(request({ urls: [url] })).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ImageTooLargeError);
    expect((err as ImageTooLargeError).diskTouched).toBe(true);
    expect((await readDevice(dev, MiB)).equals(Buffer.alloc(MiB))).toBe(true);
  });

  it('reads file:// URLs', async () => {
    const res = await writeImage(
      request({ urls: [pathToFileURL(imagePath).toString()], checksum: { algo: 'sha256', value: sha256(image) } }),
    );
    expect(res.imageSize).toBe(image.length);
    expect((await readDevice(dev, image.length)).equals(image)).toBe(true);
  });

  it('refuses a file:// URL outside ipa-image-file-dirs (none by default): nothing of the file reaches the disk or the error', async () => {
    const outside = mkdtempSync(join(tmpdir(), 'io-write-image-outside-'));
    try {
      const secretPath = join(outside, 'secret.raw');
      const secret = Buffer.alloc(MiB, 'private-key-material ');
      writeFileSync(secretPath, secret);
      symlinkSync(secretPath, join(work, 'link-to-secret.raw'));
      for (const [urls, fileDirs] of [
        [[pathToFileURL(secretPath).toString()], undefined],
        [[pathToFileURL(secretPath).toString()], [work]],
        [[pathToFileURL(join(work, 'link-to-secret.raw')).toString()], [work]],
      ] as const) {
        const err = await writeImage(request({ urls: [...urls], fileDirs })).catch((e: unknown) => e);
        expect(err).toBeInstanceOf(ImageDownloadError);
        expect((err as Error).message).toMatch(/refused/);
        expect((err as Error).message).not.toContain('private-key');
        expect((err as ImageDownloadError).diskTouched).toBe(false);
        await expectUntouched(dev);
      }
    } finally {
      rmSync(outside, { recursive: true, force: true });
    }
  });
});

describe('download failures', () => {
  it('fails clearly on an unreachable URL', async () => {
    const err = await writeImage(request({ urls: ['http://127.0.0.1:9/none.raw'], retries: 1 })).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ImageDownloadError);
    expect((err as Error).message).toMatch(/127\.0\.0\.1:9\/none\.raw.*ECONNREFUSED.*after 2 attempts/);
    await expectUntouched(dev);
  });

  it('names the HTTP status of a missing image and does not retry a 404', async () => {
    const err = await writeImage(request({ urls: [server.url('/images/missing.raw')] })).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ImageDownloadError);
    expect((err as Error).message).toMatch(/HTTP 404/);
    expect(server.requests.length).toBe(1);
  });

  it('tries the next URL when the first one fails', async () => {
    const res = await writeImage(
      request({ urls: [server.url('/images/missing.raw'), rawUrl], checksum: { algo: 'sha256', value: sha256(image) } }),
    );
    expect(res.bytesWritten).toBe(image.length);
  });
});

describe('proxies and authentication', () => {
  it('goes through the proxy for the scheme, unless no_proxy names the host', async () => {
    const proxy = await startTunnelProxy();
    try {
      const checksum = { algo: 'sha256' as const, value: sha256(image) };
      await writeImage(request({ urls: [rawUrl], checksum, proxies: { http: proxy.url } }));
      expect((await readDevice(dev, image.length)).equals(image)).toBe(true);
      expect(proxy.targets.length).toBe(1);
      expect(proxy.targets[0]).toBe(new URL(rawUrl).host);

      await writeImage(request({ urls: [rawUrl], checksum, proxies: { http: proxy.url }, noProxy: 'localhost,127.0.0.1' }));
      expect(proxy.targets.length).toBe(1);
    } finally {
      await proxy.stop();
    }
  });

  it('sends basic auth from the URL or the request, and names a 401', async () => {
    const url = server.serve('/private/image.raw', { path: imagePath, auth: 'ironic:s3cret' });
    const withCreds = url.replace('http://', 'http://ironic:s3cret@');
    await writeImage(request({ urls: [withCreds], checksum: { algo: 'sha256', value: sha256(image) } }));
    await writeImage(request({ urls: [url], basicAuth: { username: 'ironic', password: 's3cret' } }));
    const err = await writeImage(request({ urls: [url.replace('http://', 'http://ironic:wrong@')] })).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ImageDownloadError);
    expect((err as Error).message).toMatch(/HTTP 401/);
    expect((err as Error).message).not.toContain('wrong');
  });

  it("sends the conductor's Authorization header value (Ironic 29.0 image_request_authorization)", async () => {
    const url = server.serve('/registry/image.raw', { path: imagePath, authorization: 'Bearer registry-token-1' });
    const info = { urls: [url], image_request_authorization: Buffer.from('Bearer registry-token-1').toString('base64') };
    const mapped = requestFromImageInfo(info, {}, { device: dev, deviceSize: DEVICE_SIZE }, { imageDownloadRetries: 0, imageDownloadRetryIntervalSec: 0, imageDownloadTimeoutSec: 10 });
    expect(mapped.authorization).toBe('Bearer registry-token-1');
    await writeImage(request({ urls: [url], authorization: mapped.authorization, checksum: { algo: 'sha256', value: sha256(image) } }));
    expect((await readDevice(dev, image.length)).equals(image)).toBe(true);
    const without = await writeImage(request({ urls: [url] })).catch((e: unknown) => e);
    expect((without as Error).message).toMatch(/HTTP 401/);
  });

  it('https image servers: verified with the CA given (ipa-cafile), refused without it, accepted with insecure', async () => {
    const tls = generateSelfSigned('127.0.0.1');
    const secure = await startImageServer(tls);
    try {
      const url = secure.serve('/tls/image.raw', { path: imagePath });
      const checksum = { algo: 'sha256' as const, value: sha256(image) };
      const untrusted = await writeImage(request({ urls: [url], checksum, retries: 0 })).catch((e: unknown) => e);
      expect(untrusted).toBeInstanceOf(ImageDownloadError);
      expect((untrusted as Error).message).toMatch(/certificate/i);
      await writeImage(request({ urls: [url], checksum, ca: tls.cert }));
      expect((await readDevice(dev, image.length)).equals(image)).toBe(true);
      await writeImage(request({ urls: [url], checksum, insecure: true }));
    } finally {
      await secure.stop();
    }
  });
});

describe('compressed raw images', () => {
  async function compress(kind: 'gzip' | 'zstd' | 'xz'): Promise<string> {
    if (kind === 'gzip') {
      const out = join(work, 'image.raw.gz');
      writeFileSync(out, gzipSync(image));
      return out;
    }
    await run(kind, ['-q', '-1', '-k', '-f', imagePath]);
    return `${imagePath}.${kind === 'zstd' ? 'zst' : 'xz'}`;
  }

  for (const kind of ['gzip', 'zstd', 'xz'] as const) {
    it(`decompresses ${kind} on the fly; the checksum covers the bytes as served`, async () => {
      const path = await compress(kind);
      const served = readFileSync(path);
      expect(served.length).toBeLessThan(image.length);
      const url = server.serve(`/images/image.raw.${kind}`, { path });
      const res = await writeImage(
        request({ urls: [url], diskFormat: 'raw', checksum: { algo: 'sha256', value: sha256(served) } }),
      );
      expect(res).toMatchObject({ compression: kind, detectedFormat: 'raw', bytesWritten: image.length, imageSize: served.length });
      expect((await readDevice(dev, image.length)).equals(image)).toBe(true);
    });
  }

  it('fails a compressed image whose served bytes do not match the checksum', async () => {
    const path = await compress('gzip');
    const url = server.serve('/images/image.raw.gz', { path });
    const err = await writeImage(request({ urls: [url], checksum: { algo: 'sha256', value: sha256(image) } })).catch(
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(ImageChecksumError);
  });
});

describe('qcow2 images', () => {
  let qcowPath: string;
  let qcowUrl: string;
  let qcowBytes: Buffer;

  beforeAll(async () => {
    qcowPath = join(work, 'image.qcow2');
    await run('qemu-img', ['convert', '-f', 'raw', '-O', 'qcow2', imagePath, qcowPath]);
    qcowBytes = readFileSync(qcowPath);
    qcowUrl = server.serve('/images/image.qcow2', { path: qcowPath });
  });

  it('converts a qcow2 onto the device, staged beside itself on the disk', async () => {
    const phases = new Set<string>();
    const res = await writeImage(
      request({
        urls: [qcowUrl],
        diskFormat: 'qcow2',
        checksum: { algo: 'sha256', value: sha256(qcowBytes) },
        onProgress: (p) => phases.add(p.phase),
      }),
    );
    // qemu-img keeps the virtual size a multiple of 512.
    const vsize = Math.ceil(image.length / 512) * 512;
    expect(res).toMatchObject({ detectedFormat: 'qcow2', bytesWritten: vsize, imageSize: qcowBytes.length });
    expect((await readDevice(dev, image.length)).equals(image)).toBe(true);
    // The staged copy's header was cleared after conversion.
    const staged = await readDevice(dev, 4, Math.ceil(vsize / MiB) * MiB);
    expect(staged.equals(Buffer.alloc(4))).toBe(true);
    expect(phases.has('download')).toBe(true);
  });

  it('stages in a file when the device has no room beside the image', async () => {
    const small = await makeLoop(Math.ceil(image.length / MiB) * MiB, 'small-disk.img');
    const stagingDir = mkdtempSync(join(work, 'staging-'));
    const size = Math.ceil(image.length / MiB) * MiB;
    const res = await writeImage(
      request({ urls: [qcowUrl], device: small, deviceSize: size, stagingDir, checksum: { algo: 'sha256', value: sha256(qcowBytes) } }),
    );
    expect(res.detectedFormat).toBe('qcow2');
    expect((await readDevice(small, image.length)).equals(image)).toBe(true);
    expect(readdirSync(stagingDir)).toEqual([]);
  });

  it('refuses to stage where there is no room for the qcow2, before writing any of it (a small tmpfs stands for a ramdisk /tmp)', async () => {
    const gz = join(work, 'image-staging.qcow2.gz');
    writeFileSync(gz, gzipSync(qcowBytes));
    const gzUrl = server.serve('/images/image-staging.qcow2.gz', { path: gz });
    // The device has no room beside the image, so staging goes to the staging dir.
    const size = Math.ceil(image.length / MiB) * MiB;
    const small = await makeLoop(size, 'small-disk-2.img');
    const mnt = mkdtempSync(join(work, 'tmpfs-'));
    const mountTmpfs = (mib: number) => run('mount', ['-t', 'tmpfs', '-o', `size=${mib}m,mode=700`, 'tmpfs', mnt]);
    await mountTmpfs(32);
    try {
      // 32 MiB less the 64 MiB reserve: no room, whether the size is known (Content-Length)
      // or only bounded by the virtual size (a compressed qcow2, whose file size is not known up front).
      for (const url of [qcowUrl, gzUrl]) {
        const err = await writeImage(request({ urls: [url], device: small, deviceSize: size, stagingDir: mnt })).catch((e: unknown) => e);
        expect(err, url).toBeInstanceOf(ImageWriteError);
        expect((err as Error).message).toMatch(/no room to stage the qcow2 image for conversion: .* has no room beside it, and .*tmpfs-\w+ has 0 MiB free/);
        expect((err as ImageWriteError).diskTouched).toBe(false);
        expect(readdirSync(mnt)).toEqual([]);
        expect((await readDevice(small, MiB)).equals(Buffer.alloc(MiB))).toBe(true);
      }
    } finally {
      await run('umount', [mnt]);
    }
    // With room for it (the image's virtual size plus the reserve), the same compressed qcow2 is staged there and converted.
    await mountTmpfs(96);
    try {
      const res = await writeImage(request({ urls: [gzUrl], device: small, deviceSize: size, stagingDir: mnt }));
      expect(res).toMatchObject({ detectedFormat: 'qcow2', compression: 'gzip' });
      expect((await readDevice(small, image.length)).equals(image)).toBe(true);
      expect(readdirSync(mnt)).toEqual([]);
    } finally {
      await run('umount', [mnt]);
    }
  });

  it('fails a qcow2 with a bad checksum before converting, leaving the deploy area untouched', async () => {
    const err = await writeImage(
      request({ urls: [qcowUrl], checksum: { algo: 'sha256', value: sha256(image) } }),
    ).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ImageChecksumError);
    expect((err as ImageChecksumError).diskTouched).toBe(false);
    expect((await readDevice(dev, MiB)).equals(PATTERN)).toBe(true);
  });

  it('refuses a qcow2 declared as raw, with the disk untouched', async () => {
    const err = await writeImage(request({ urls: [qcowUrl], diskFormat: 'raw' })).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ImageFormatError);
    expect((err as Error).message).toMatch(/declared as 'raw' but its content is 'qcow2'/);
    await expectUntouched(dev);
  });

  it('refuses a qcow2 with a backing file, with the disk untouched', async () => {
    const overlay = join(work, 'overlay.qcow2');
    await run('qemu-img', ['create', '-f', 'qcow2', '-b', imagePath, '-F', 'raw', overlay]);
    const url = server.serve('/images/overlay.qcow2', { path: overlay });
    const err = await writeImage(request({ urls: [url], diskFormat: 'qcow2' })).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ImageFormatError);
    expect((err as Error).message).toMatch(/backing file/);
    await expectUntouched(dev);
  });

  it('refuses a qcow2 with an external data file, with the disk untouched', async () => {
    const withData = join(work, 'data-file.qcow2');
    await run('qemu-img', ['create', '-f', 'qcow2', '-o', `data_file=${join(work, 'data.raw')}`, withData, '16M']);
    const url = server.serve('/images/data-file.qcow2', { path: withData });
    await expect(writeImage(request({ urls: [url] }))).rejects.toThrow(/external data file/);
    await expectUntouched(dev);
  });

  it('refuses a qcow2 whose virtual size exceeds the device', async () => {
    const huge = join(work, 'huge.qcow2');
    await run('qemu-img', ['create', '-f', 'qcow2', huge, String(DEVICE_SIZE + MiB)]);
    const url = server.serve('/images/huge.qcow2', { path: huge });
    await expect(writeImage(request({ urls: [url] }))).rejects.toBeInstanceOf(ImageTooLargeError);
    await expectUntouched(dev);
  });

  it('refuses a format that is not permitted', async () => {
    const err = await writeImage(request({ urls: [qcowUrl], permittedFormats: ['raw'] })).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ImageFormatError);
    expect((err as Error).message).toMatch(/'qcow2' is not permitted/);
    await expectUntouched(dev);
  });

  it('trusts disk_format when deep inspection is disabled', async () => {
    const res = await writeImage(request({ urls: [qcowUrl], diskFormat: 'raw', deepInspection: false }));
    expect(res.detectedFormat).toBe('raw');
    expect((await readDevice(dev, qcowBytes.length)).equals(qcowBytes)).toBe(true);
  });

  it('converts a gzip-compressed qcow2', async () => {
    const gz = join(work, 'image.qcow2.gz');
    writeFileSync(gz, gzipSync(qcowBytes));
    const url = server.serve('/images/image.qcow2.gz', { path: gz });
    const res = await writeImage(request({ urls: [url], checksum: { algo: 'sha256', value: sha256(readFileSync(gz)) } }));
    expect(res).toMatchObject({ detectedFormat: 'qcow2', compression: 'gzip' });
    expect((await readDevice(dev, image.length)).equals(image)).toBe(true);
  });
});

describe('URL order', () => {
  it('falls back from a failing http URL to a file:// URL listed after it', async () => {
    const res = await writeImage(
      request({
        urls: [server.url('/images/missing.raw'), 'ftp://nowhere/x', pathToFileURL(imagePath).toString()],
        checksum: { algo: 'sha256', value: sha256(image) },
      }),
    );
    expect(res.imageSize).toBe(image.length);
  });

  it('names every URL that failed', async () => {
    const err = await writeImage(
      request({ urls: [server.url('/images/missing.raw'), 'file:///nonexistent/image.raw'] }),
    ).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ImageDownloadError);
    expect((err as Error).message).toMatch(/missing\.raw: HTTP 404.*nonexistent\/image\.raw/);
  });
});
