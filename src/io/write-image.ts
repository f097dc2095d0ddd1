import { constants } from 'node:fs';
import { mkdtemp, open, rm, statfs } from 'node:fs/promises';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { log } from '../log.ts';
import { redactUrl } from '../redact.ts';
import type { Guard } from '../system/safety.ts';
import { BlockSink, wipeEnds, type Progress } from './block-sink.ts';
import {
  algoByLength,
  isChecksumUrl,
  pickChecksumLine,
  type ExpectedChecksum,
  type HashAlgo,
} from './checksum.ts';
import { decompressor } from './decompress.ts';
import { ImageDownloadError, ImageError, ImageFormatError, ImageTooLargeError, ImageWriteError } from './errors.ts';
import {
  decideFormat,
  inspectHead,
  INSPECT_BYTES,
  isCompression,
  isRawLike,
  type Compression,
  type ImageFormat,
  type Inspection,
} from './format-detect.ts';
import { checkStaged, convertOnto, stagedSpec, type StagedImage } from './qemu-convert.ts';
import { fetchToBuffer, openImageSource, type ImageSource, type SourceOptions } from './source.ts';
import { ImageHasher } from './hasher.ts';
import { peek, tap, through } from './stream-utils.ts';

// write_image's data path: one pass over the bytes as served — hash, inspect,
// decompress, write — with the format decided before the disk is touched and
// success reported only once the checksum matched and the data is flushed.
//
// Failure policy: if anything fails after bytes reached the deploy area of the
// disk (checksum mismatch, dropped download past the retry budget, a stream
// that outgrows the disk, qemu-img failing mid-way), the first and last MiB of
// the device are zeroed before the error is returned. A half-written or
// unverified image then has no partition table or boot sector and cannot
// boot; the previous content is gone either way. Failures found before the
// first write (format, permitted list, declared size, unreachable URL, and a
// qcow2 whose staged copy fails its checksum) leave the disk as it was.

/** Download settings (proxies, retries, timeouts, TLS, auth, abort) are the source's own. */
export interface WriteImageRequest extends Omit<SourceOptions, 'readChunkBytes'> {
  urls: string[];
  /** What the served bytes must hash to; a URL value names a checksums file. Without it sha256 is computed and reported. */
  checksum?: ExpectedChecksum;
  /** Glance disk_format (raw, qcow2, iso, ...). */
  diskFormat?: string;
  device: string;
  deviceSize: number;
  /** [conductor]permitted_image_formats (Ironic 21.4 default: raw, qcow2, iso). */
  permittedFormats?: string[];
  /** False = [conductor]disable_deep_image_inspection: trust diskFormat. */
  deepInspection: boolean;
  onProgress?: (p: Progress & { phase: 'download' | 'convert' }) => void;
  /** When given, asked before the device is opened. */
  guard?: Guard;
  /** Where to stage a qcow2 that does not fit beside itself on the device; default os.tmpdir(). */
  stagingDir?: string;
  /** Benchmarks only. */
  tuning?: { writeBytes?: number; inFlight?: number; readChunkBytes?: number };
}

export interface WriteImageResult {
  /** Bytes now on the device (the virtual size for converted images). */
  bytesWritten: number;
  /** Bytes served by the image server. */
  imageSize: number;
  detectedFormat: ImageFormat;
  compression?: Compression;
  checksum: { algo: HashAlgo; value: string };
  /** Whether the served bytes were compared with an expected checksum. */
  checksumVerified: boolean;
  durationMs: number;
  /** Write buffers the download was read into directly, written without a copy in user space. */
  chunksInPlace: number;
}

export const DEFAULT_PERMITTED_FORMATS = ['raw', 'qcow2', 'iso'];
const MiB = 1024 * 1024;
const alignUp = (n: number, a: number) => Math.ceil(n / a) * a;

function sourceOptions(req: WriteImageRequest): SourceOptions {
  return {
    proxies: req.proxies,
    noProxy: req.noProxy,
    retries: req.retries,
    retryIntervalSec: req.retryIntervalSec,
    timeoutSec: req.timeoutSec,
    insecure: req.insecure,
    ca: req.ca,
    basicAuth: req.basicAuth,
    authorization: req.authorization,
    signal: req.signal,
    readChunkBytes: req.tuning?.readChunkBytes,
    fileDirs: req.fileDirs,
  };
}

/** The expected digest, fetching a checksums file when the value is a URL. */
export async function resolveChecksum(
  expected: ExpectedChecksum | undefined,
  imageUrl: string,
  opts: SourceOptions,
): Promise<ExpectedChecksum | undefined> {
  if (!expected) return undefined;
  let value = expected.value.trim();
  if (isChecksumUrl(value)) {
    const text = (await fetchToBuffer(value, { ...opts, maxBytes: 4 * MiB })).toString('utf8');
    value = pickChecksumLine(text, imageUrl);
  }
  const algo = expected.algoFromLength ? algoByLength(value) : expected.algo;
  return { algo, value: value.toLowerCase() };
}

export async function writeImage(req: WriteImageRequest): Promise<WriteImageResult> {
  const started = Date.now();
  req.guard?.assertWritable(req.device);
  const opts = sourceOptions(req);
  const expected = await resolveChecksum(req.checksum, req.urls[0] ?? '', opts);
  if (!expected) log.warn({ urls: req.urls }, 'no image checksum given: computing sha256 without verifying');
  const hasher = new ImageHasher(expected?.algo ?? 'sha256');

  const src = await openImageSource(req.urls, opts);
  let served = 0;
  const job = new Job(req, src, hasher, expected?.value);
  try {
    // Until we know whether the written bytes are the served bytes, hash each
    // chunk as it is read; once they are (no compression), the sink hashes its
    // own buffers and this stage only counts.
    let hashInTap = true;
    const hashed = tap(src.chunks, (c) => {
      served += c.length;
      if (hashInTap) hasher.update(c);
    });
    const outer = await peek(hashed, INSPECT_BYTES);
    if (outer.head.length === 0) throw new ImageFormatError('image is empty');
    let found: Inspection = inspectHead(outer.head);
    let stream = outer.stream;
    let compression: Compression | undefined;
    if (isCompression(found.format)) {
      compression = found.format;
      const inner = await peek(through(stream, decompressor(compression, req.signal)), INSPECT_BYTES);
      found = inspectHead(inner.head);
      stream = inner.stream;
    } else if (found.format === 'bzip2') {
      throw new ImageFormatError('bzip2-compressed images are not supported (use gzip, zstd or xz)');
    }
    let onFilled: ((bytes: Buffer) => Promise<void>) | undefined;
    if (!compression) {
      // The written bytes are the served bytes: from here each write buffer is
      // hashed once the sink has handed it to the kernel, so the device writes
      // while this thread hashes. What tap already hashed (the peeked head) is
      // skipped there.
      hashInTap = false;
      let skip = served;
      onFilled = (bytes) => {
        if (skip >= bytes.length) {
          skip -= bytes.length;
          return Promise.resolve();
        }
        const rest = bytes.subarray(skip);
        skip = 0;
        hasher.update(rest);
        return Promise.resolve();
      };
    }
    const format = decideFormat(found, {
      declared: req.diskFormat,
      permitted: req.permittedFormats ?? DEFAULT_PERMITTED_FORMATS,
      deepInspection: req.deepInspection,
    });
    log.info({ url: src.url, size: src.size, format, compression, device: req.device }, 'writing image');

    const bytesWritten = isRawLike(format)
      ? await job.writeRaw(stream, compression, onFilled)
      : await job.convert(stream, found, compression, onFilled);

    if (src.size !== undefined && served !== src.size) {
      throw new ImageDownloadError(`image stream ended at ${served} of ${src.size} bytes`);
    }
    return {
      bytesWritten,
      imageSize: served,
      detectedFormat: format,
      compression,
      checksum: { algo: hasher.algo, value: hasher.hex() },
      checksumVerified: expected !== undefined,
      durationMs: Date.now() - started,
      chunksInPlace: job.chunksInPlace,
    };
  } catch (err) {
    await job.cleanUpAfterFailure();
    if (err instanceof ImageError) err.diskTouched = job.touchedDeployArea;
    throw err;
  } finally {
    await src.close();
  }
}

/** One write_image run; remembers what it touched so a failure can clean up exactly that. */
class Job {
  /** Whether bytes reached the area the image is deployed to (not just a staging area). */
  touchedDeployArea = false;
  /** Chunks the source read straight into the sink's write buffers. */
  chunksInPlace = 0;
  private sink?: BlockSink;
  private sinkIsDeployArea = false;
  private stagingFileDir?: string;

  constructor(
    private readonly req: WriteImageRequest,
    private readonly src: ImageSource,
    private readonly hasher: ImageHasher,
    private readonly expected: string | undefined,
  ) {}

  private progress(phase: 'download' | 'convert') {
    const cb = this.req.onProgress;
    return cb ? (p: Progress) => cb({ ...p, phase }) : undefined;
  }

  private async drain(stream: AsyncIterable<Buffer>, sink: BlockSink): Promise<void> {
    for await (const chunk of stream) {
      this.req.signal?.throwIfAborted();
      await sink.write(chunk);
    }
  }

  /** Raw/ISO bytes straight onto the device. */
  async writeRaw(
    stream: AsyncIterable<Buffer>,
    compression: Compression | undefined,
    onFilled?: (bytes: Buffer) => Promise<void>,
  ): Promise<number> {
    const { req } = this;
    if (!compression && this.src.size !== undefined && this.src.size > req.deviceSize) {
      throw new ImageTooLargeError(this.src.size, req.deviceSize, `${redactUrl(this.src.url)} is larger than ${req.device}`);
    }
    const sink = await BlockSink.open({
      path: req.device,
      maxBytes: req.deviceSize,
      totalBytes: compression ? undefined : this.src.size,
      onProgress: this.progress('download'),
      writeBytes: req.tuning?.writeBytes,
      inFlight: req.tuning?.inFlight,
      onFilled,
    });
    this.sink = sink;
    this.sinkIsDeployArea = true;
    if (!compression) this.src.useBuffers(sink.buffers);
    await this.drain(stream, sink);
    await sink.writeBuffered();
    this.touchedDeployArea = sink.touched;
    this.hasher.verify(this.expected);
    const n = await sink.finish();
    this.sink = undefined;
    this.chunksInPlace = sink.adopted;
    return n;
  }

  /** qcow2: stage (on the device past the virtual size, or in a file), verify, inspect again, convert. */
  async convert(
    stream: AsyncIterable<Buffer>,
    found: Inspection,
    compression: Compression | undefined,
    onFilled?: (bytes: Buffer) => Promise<void>,
  ): Promise<number> {
    const { req } = this;
    const vsize = found.virtualSize;
    if (vsize === undefined) throw new ImageFormatError('cannot tell the virtual size of the image');
    if (vsize > req.deviceSize) {
      throw new ImageTooLargeError(vsize, req.deviceSize, `virtual size of the ${found.format} image exceeds ${req.device}`);
    }
    const stageOffset = alignUp(vsize, MiB);
    const knownLen = compression ? undefined : this.src.size;
    const roomOnDevice = req.deviceSize - stageOffset;
    let staged: StagedImage;
    let onDevice: boolean;
    /** What the staging file may grow to: the free space checked, less the reserve. */
    let stagingRoom = 0;
    if (knownLen !== undefined ? alignUp(knownLen, 512) <= roomOnDevice : roomOnDevice >= 64 * MiB) {
      onDevice = true;
      staged = { path: req.device, offset: stageOffset, length: 0, format: 'qcow2' };
    } else {
      onDevice = false;
      const dir = req.stagingDir ?? tmpdir();
      stagingRoom = await roomToStage(dir, knownLen, vsize, req.device);
      this.stagingFileDir = await mkdtemp(join(dir, 'metal-agent-stage-'));
      staged = { path: join(this.stagingFileDir, 'image.qcow2'), offset: 0, length: 0, format: 'qcow2' };
    }
    log.info({ staging: staged.path, offset: staged.offset, onDevice }, 'staging image for conversion');
    const sink = await BlockSink.open({
      path: staged.path,
      offset: staged.offset,
      createFile: !onDevice,
      maxBytes: onDevice ? roomOnDevice : stagingRoom,
      totalBytes: knownLen,
      onProgress: this.progress('download'),
      writeBytes: req.tuning?.writeBytes,
      inFlight: req.tuning?.inFlight,
      onFilled,
    });
    this.sink = sink;
    this.sinkIsDeployArea = false;
    if (!compression) this.src.useBuffers(sink.buffers);
    await this.drain(stream, sink);
    await sink.writeBuffered();
    this.hasher.verify(this.expected);
    staged.length = await sink.finish();
    this.sink = undefined;
    this.chunksInPlace = sink.adopted;

    const spec = stagedSpec(staged, onDevice);
    await checkStaged(spec, req.deviceSize);
    this.touchedDeployArea = true;
    const onConvert = this.progress('convert');
    const t0 = Date.now();
    let lastReport = 0;
    await convertOnto(
      spec,
      req.device,
      onConvert && ((pct) => {
        // qemu-img prints every percent; pass on at most one a second (and the end).
        const now = Date.now();
        if (now - lastReport < 1000 && pct < 100) return;
        lastReport = now;
        const done = Math.round((pct / 100) * vsize);
        onConvert({ bytesWritten: done, totalBytes: vsize, bytesPerSec: done / Math.max((now - t0) / 1000, 0.001) });
      }),
      req.signal,
    );
    await flushDevice(req.device);
    await this.dropStaging(staged, onDevice);
    return vsize;
  }

  /** The staged copy is no longer needed; on the device, clear its header so nothing mistakes it for data. */
  private async dropStaging(staged: StagedImage, onDevice: boolean): Promise<void> {
    if (onDevice) {
      const fh = await open(staged.path, constants.O_WRONLY);
      try {
        await fh.write(Buffer.alloc(Math.min(MiB, alignUp(staged.length, 512))), 0, undefined, staged.offset);
        await fh.datasync();
      } finally {
        await fh.close();
      }
    }
    if (this.stagingFileDir) {
      await rm(this.stagingFileDir, { recursive: true, force: true });
      this.stagingFileDir = undefined;
    }
  }

  async cleanUpAfterFailure(): Promise<void> {
    if (this.sink) {
      if (this.sinkIsDeployArea && this.sink.touched) this.touchedDeployArea = true;
      await this.sink.abort();
    }
    if (this.stagingFileDir) await rm(this.stagingFileDir, { recursive: true, force: true }).catch(() => undefined);
    if (this.touchedDeployArea) {
      // A half-written or unverified image must never boot: clear both ends.
      log.warn({ device: this.req.device }, 'image write failed after the disk was touched: wiping its first and last MiB');
      await wipeEnds(this.req.device, this.req.deviceSize).catch((err: unknown) =>
        log.error({ err: (err as Error).message }, 'wiping the device after a failed write failed too'),
      );
    }
  }
}

/** Left free on a staging filesystem (in a ramdisk, /tmp is RAM the agent and the kernel still need). */
const STAGING_RESERVE = 64 * MiB;

/**
 * How many bytes a staging file in `dir` may take; refuses, before any of it
 * is written, when the qcow2 will not fit. Its size is the served length when
 * known (uncompressed, with Content-Length); otherwise (compressed, or no
 * length given) the virtual size from its header stands for it: a qcow2 file
 * holds at most that much data, plus tables the reserve covers.
 */
async function roomToStage(dir: string, knownLen: number | undefined, vsize: number, device: string): Promise<number> {
  const fs = await statfs(dir);
  const room = fs.bavail * fs.bsize - STAGING_RESERVE;
  const needed = knownLen ?? vsize;
  if (needed > room) {
    const mib = (n: number) => `${Math.ceil(n / MiB)} MiB`;
    throw new ImageWriteError(
      `no room to stage the qcow2 image for conversion: ${device} has no room beside it, and ${dir} has ` +
        `${mib(Math.max(room, 0))} free (keeping ${mib(STAGING_RESERVE)} in reserve) for ` +
        `${knownLen !== undefined ? `its ${mib(knownLen)}` : `up to ${mib(vsize)} (its virtual size; the file's size is not known before the download)`}`,
    );
  }
  return room;
}

async function flushDevice(device: string): Promise<void> {
  const fh = await open(device, constants.O_WRONLY);
  try {
    await fh.datasync();
  } finally {
    await fh.close();
  }
}
