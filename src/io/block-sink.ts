import { constants, type Stats } from 'node:fs';
import { open, stat, type FileHandle } from 'node:fs/promises';
import { ImageTooLargeError, ImageWriteError } from './errors.ts';

// The end of the pipeline: bytes go to a block device (or a staging file) in
// large positional writes. Memory is bounded by inFlight write buffers
// whatever the image size; a write past `maxBytes` fails before it happens;
// nothing counts as written until fdatasync has returned.

export interface Progress {
  /** Bytes handed to the device (completed writes). */
  bytesWritten: number;
  /** Total expected, when known. */
  totalBytes?: number;
  /** Average bytes per second since the first byte. */
  bytesPerSec: number;
}

export interface BlockSinkOptions {
  path: string;
  /** Device/file offset of the first byte (staging area); default 0. */
  offset?: number;
  /** Refuse to write beyond this many bytes from `offset`. */
  maxBytes: number;
  /** Size of each write; default DEFAULT_WRITE_BYTES (4 MiB). */
  writeBytes?: number;
  /** Write buffers in all: while one is being filled the others are written; default 2. */
  inFlight?: number;
  /** Create/truncate a regular file instead of opening an existing device. */
  createFile?: boolean;
  /** Use O_DIRECT on block devices when possible (default true). */
  direct?: boolean;
  /**
   * Sees each filled write buffer (in byte order) once its write is handed to
   * the kernel; the buffer is reused only after both finished. The image hash
   * runs here when the written bytes are the served bytes.
   */
  onFilled?: (bytes: Buffer) => Promise<void>;
  /** Sees the first `headBytes` (or the whole stream if shorter) before anything is written; throw to refuse. */
  beforeFirstWrite?: (head: Buffer) => void;
  headBytes?: number;
  totalBytes?: number;
  onProgress?: (p: Progress) => void;
  /** Minimum milliseconds between progress events; default 1000. */
  progressIntervalMs?: number;
}

const MiB = 1024 * 1024;

/**
 * One write's size, and one buffer's: inFlight of them are most of what a write adds to the
 * agent's RSS. Smaller writes used to be slower (docs/footprint.md, levers 7 and 9) while the hash
 * ran before each write was handed to the kernel; with the write handed over first, 2 MiB writes
 * took the time of 4 MiB ones (2030 vs 2027 ms for 2 GiB, medians of 12 in one A/B) for 4 MiB
 * less peak (lever 14). A power of two, so that writes stay whole stripes of md parity RAID.
 */
export const DEFAULT_WRITE_BYTES = 2 * MiB;
/** Write buffers, by default: one filled while the other is written. */
export const DEFAULT_WRITE_BUFFERS = 2;

/** Unit for O_DIRECT sizes and offsets: a multiple of every logical block size in use. */
const DIRECT_UNIT = 4096;

/** A write buffer of its own memory (not Node's small-buffer pool), freed with it. */
function rawBuffer(size: number): Buffer {
  return Buffer.allocUnsafeSlow(size);
}

/**
 * Buffers usable with O_DIRECT. Node cannot ask for aligned memory, so we
 * over-allocate and find, with O_DIRECT reads of the device's first block
 * (harmless), the offset at which the kernel accepts the buffer.
 */
async function alignedBuffer(probe: FileHandle, size: number): Promise<Buffer | undefined> {
  const raw = rawBuffer(size + DIRECT_UNIT);
  for (let k = 0; k < DIRECT_UNIT; k += 8) {
    try {
      await probe.read(raw, k, DIRECT_UNIT, 0);
      return raw.subarray(k, k + size);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EINVAL') break;
    }
  }
  return undefined;
}

/**
 * The sink's write buffers, lent to the image source so that it reads into
 * them (see ChunkBufferPool in source.ts). A chunk that is one of these, whole,
 * is written as it is instead of being copied.
 */
export class WriteBufferPool {
  private readonly free: Buffer[] = [];
  private readonly mine = new WeakSet<Buffer>();
  /** Each buffer by its memory, to know a part of one (a chunk that ends short of it) as ours. */
  private readonly byMemory = new WeakMap<ArrayBufferLike, Buffer>();
  /** Every buffer made for this pool (tests count them). */
  readonly made: Buffer[] = [];
  constructor(readonly size: number, private readonly alloc: () => Promise<Buffer>) {}

  async take(): Promise<Buffer> {
    return this.free.pop() ?? this.register(await this.alloc());
  }

  /** A buffer back from its last user; others are ignored (left to the GC). */
  give(b: Buffer): void {
    if (this.mine.has(b)) this.free.push(b);
  }

  /** Whether `b` is one of ours, whole (not a view of part of one). */
  owns(b: Buffer): boolean {
    return this.mine.has(b);
  }

  /** The buffer of ours that `b` is a view of (whole or part), if any. */
  ownerOf(b: Buffer): Buffer | undefined {
    return this.byMemory.get(b.buffer);
  }

  register(b: Buffer): Buffer {
    this.mine.add(b);
    this.byMemory.set(b.buffer, b);
    this.made.push(b);
    return b;
  }
}

export class BlockSink {
  private readonly writeBytes: number;
  private readonly maxInFlight: number;
  /**
   * Write buffers: one being filled (by the source's reads, or `current` by copy) while the
   * last one submitted is written, so maxInFlight of them in all. A buffer is taken only
   * when bytes are there for it: keeping a spare `current` ready cost one more.
   */
  readonly buffers: WriteBufferPool;
  private readonly inflight: Promise<void>[] = [];
  private current?: Buffer;
  private fill = 0;
  /** Bytes accepted (buffered or written). */
  private accepted = 0;
  private written = 0;
  private submitted = 0;
  private headChecked: boolean;
  private startedAt = 0;
  private lastProgressAt = 0;
  private failure?: unknown;
  /** True once any write was issued to the target. */
  touched = false;
  /** Chunks written from the source's reads without a copy (one of our buffers, whole). */
  adopted = 0;
  /** Buffered descriptor for an O_DIRECT sink's unaligned last bytes. */
  private tail?: FileHandle;

  private constructor(
    private readonly fh: FileHandle,
    private readonly opts: BlockSinkOptions,
    /** Set when `fh` is O_DIRECT: reads for buffer alignment. */
    private readonly probe?: FileHandle,
  ) {
    this.writeBytes = opts.writeBytes ?? DEFAULT_WRITE_BYTES;
    this.maxInFlight = Math.max(1, opts.inFlight ?? DEFAULT_WRITE_BUFFERS);
    this.headChecked = !opts.beforeFirstWrite;
    this.buffers = new WriteBufferPool(this.writeBytes, () => this.newBuffer());
    if ((opts.headBytes ?? 0) > this.writeBytes) throw new Error('headBytes must not exceed writeBytes');
    if (probe && (this.writeBytes % DIRECT_UNIT || (opts.offset ?? 0) % DIRECT_UNIT)) {
      throw new Error('direct I/O needs writeBytes and offset aligned to 4 KiB');
    }
  }

  /** Whether writes bypass the page cache (O_DIRECT). */
  get direct(): boolean {
    return this.probe !== undefined;
  }

  private async newBuffer(): Promise<Buffer> {
    if (this.probe) {
      const b = await alignedBuffer(this.probe, this.writeBytes);
      if (b) return b;
      throw new ImageWriteError(`no O_DIRECT-aligned buffer for ${this.opts.path}`);
    }
    return rawBuffer(this.writeBytes);
  }

  static async open(opts: BlockSinkOptions): Promise<BlockSink> {
    let fh: FileHandle;
    const blockDevice = !opts.createFile && (await isBlockDevice(opts.path));
    const aligned = (opts.offset ?? 0) % DIRECT_UNIT === 0 && (opts.writeBytes ?? DEFAULT_WRITE_BYTES) % DIRECT_UNIT === 0;
    // O_EXCL on a block device (without O_CREAT) is the kernel's "nobody has
    // it mounted or claimed" check: a mounted disk fails with EBUSY.
    const flags = opts.createFile
      ? constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC
      : constants.O_WRONLY | (blockDevice ? constants.O_EXCL : 0);
    if (blockDevice && aligned && opts.direct !== false) {
      // O_DIRECT skips a copy through the page cache and the flush of a huge
      // dirty cache at the end: less CPU, steadier progress. Fall back to
      // buffered writes if the device or the memory alignment does not allow it.
      try {
        const direct = await open(opts.path, flags | constants.O_DIRECT);
        const probe = await open(opts.path, constants.O_RDONLY | constants.O_DIRECT);
        const sink = new BlockSink(direct, opts, probe);
        const first = await alignedBuffer(probe, sink.writeBytes);
        if (first) {
          sink.buffers.give(sink.buffers.register(first));
          return sink;
        }
        await Promise.all([direct.close(), probe.close()]);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'EBUSY') {
          throw new ImageWriteError(`cannot open ${opts.path} for writing: it is in use (mounted?)`, { cause: err });
        }
      }
    }
    try {
      fh = await open(opts.path, flags, 0o600);
    } catch (err) {
      throw new ImageWriteError(`cannot open ${opts.path} for writing: ${(err as Error).message}`, { cause: err });
    }
    return new BlockSink(fh, opts);
  }

  get bytesAccepted(): number {
    return this.accepted;
  }

  get bytesWritten(): number {
    return this.written;
  }

  /** Queue `chunk`; resolves when the sink can take more (backpressure). */
  async write(chunk: Buffer): Promise<void> {
    if (this.failure) throw this.failure;
    if (this.accepted + chunk.length > this.opts.maxBytes) {
      throw new ImageTooLargeError(
        this.accepted + chunk.length,
        this.opts.maxBytes,
        `more than ${this.opts.maxBytes} bytes arrived for ${this.opts.path}`,
      );
    }
    if (this.startedAt === 0) this.startedAt = this.lastProgressAt = Date.now();
    this.accepted += chunk.length;
    if (this.fill === 0 && this.buffers.owns(chunk)) {
      // The source read into one of our buffers: write it as it is, no copy.
      this.current = chunk;
      this.fill = chunk.length;
      this.adopted++;
      if (this.fill === this.writeBytes) await this.submit();
      return;
    }
    // A chunk that is part of one of our buffers (the source's first chunk in
    // them ends on a write-buffer boundary of the stream, short of the buffer's
    // end) is copied; the buffer is then ours again, not left to the GC.
    const owner = this.buffers.ownerOf(chunk);
    let pos = 0;
    while (pos < chunk.length) {
      this.current ??= await this.buffers.take();
      const n = Math.min(chunk.length - pos, this.writeBytes - this.fill);
      chunk.copy(this.current, this.fill, pos, pos + n);
      this.fill += n;
      pos += n;
      if (this.fill === this.writeBytes) await this.submit();
    }
    if (owner && owner !== this.current) this.buffers.give(owner);
  }

  private checkHead(): void {
    if (this.headChecked) return;
    this.headChecked = true;
    this.opts.beforeFirstWrite!(this.current!.subarray(0, Math.min(this.fill, this.opts.headBytes ?? 64 * 1024)));
  }

  private async submit(): Promise<void> {
    if (this.fill === 0) return;
    this.checkHead();
    const buf = this.current!;
    const len = this.fill;
    const position = (this.opts.offset ?? 0) + this.submitted;
    if (this.probe && len % DIRECT_UNIT !== 0) {
      // Only the last write can be short; O_DIRECT wants whole blocks, so the
      // odd tail goes through a buffered descriptor (flushed in finish()).
      const whole = len - (len % DIRECT_UNIT);
      const seen = this.opts.onFilled?.(buf.subarray(0, len));
      if (whole > 0) await this.writeFully(this.fh, buf, 0, whole, position);
      this.tail = await open(this.opts.path, constants.O_WRONLY);
      await this.writeFully(this.tail, buf, whole, len - whole, position + whole);
      await seen;
      this.submitted += len;
      this.written += len;
      this.touched = true;
      this.current = undefined;
      this.fill = 0;
      return;
    }
    this.submitted += len;
    this.touched = true;
    // The write goes to the kernel first, so that the device works while this thread hashes
    // the same bytes (the hash runs here, before onFilled returns).
    const wrote = this.writeFully(this.fh, buf, 0, len, position);
    let seen: Promise<void> | undefined;
    try {
      seen = this.opts.onFilled?.(buf.subarray(0, len));
    } catch (err) {
      // Thrown, not rejected: still joined with the write below, so neither failure goes unhandled.
      seen = Promise.reject(err);
    }
    const p = Promise.all([wrote, seen]).then(
      () => {
        this.written += len;
        this.buffers.give(buf);
        this.maybeProgress();
      },
      (err: unknown) => {
        this.failure ??= err instanceof ImageWriteError || !(err as NodeJS.ErrnoException).code
          ? err
          : new ImageWriteError(`write to ${this.opts.path} at ${position} failed: ${(err as Error).message}`, { cause: err });
      },
    );
    this.inflight.push(p);
    if (this.inflight.length >= this.maxInFlight) await this.inflight.shift();
    if (this.failure) throw this.failure;
    this.current = undefined;
    this.fill = 0;
  }

  private async writeFully(fh: FileHandle, buf: Buffer, from: number, len: number, position: number): Promise<void> {
    let done = 0;
    while (done < len) {
      const { bytesWritten } = await fh.write(buf, from + done, len - done, position + done);
      if (bytesWritten === 0) throw new Error('device accepted no bytes (end of device?)');
      done += bytesWritten;
    }
  }

  private maybeProgress(force = false): void {
    if (!this.opts.onProgress) return;
    const now = Date.now();
    if (!force && now - this.lastProgressAt < (this.opts.progressIntervalMs ?? 1000)) return;
    this.lastProgressAt = now;
    const secs = Math.max((now - this.startedAt) / 1000, 0.001);
    this.opts.onProgress({ bytesWritten: this.written, totalBytes: this.opts.totalBytes, bytesPerSec: this.written / secs });
  }

  /** Write what is buffered and wait for every write (and onFilled) to finish; no flush yet. */
  async writeBuffered(): Promise<void> {
    await this.submit();
    await Promise.all(this.inflight.splice(0));
    if (this.failure) throw this.failure;
  }

  /** Write what is buffered, wait for every write, fdatasync, close. Returns bytes written. */
  async finish(): Promise<number> {
    await this.writeBuffered();
    try {
      // Even O_DIRECT data may sit in the drive's volatile cache: flush both descriptors.
      await this.tail?.datasync();
      await this.fh.datasync();
    } catch (err) {
      throw new ImageWriteError(`flushing ${this.opts.path} failed: ${(err as Error).message}`, { cause: err });
    } finally {
      await this.closeAll();
    }
    this.maybeProgress(true);
    return this.written;
  }

  /** Stop: wait for writes in flight (so nothing lands later), close without flushing. */
  async abort(): Promise<void> {
    await Promise.allSettled(this.inflight.splice(0));
    await this.closeAll();
  }

  private async closeAll(): Promise<void> {
    await Promise.allSettled([this.fh.close(), this.probe?.close(), this.tail?.close()]);
  }
}

async function isBlockDevice(path: string): Promise<boolean> {
  let st: Stats;
  try {
    st = await stat(path);
  } catch {
    return false;
  }
  return st.isBlockDevice();
}

/**
 * Make a half-written disk unbootable and unrecognisable: zero its first MiB
 * (MBR, primary GPT, most boot sectors and filesystem superblocks) and its
 * last MiB (backup GPT), then flush. A corrupt image must never boot.
 */
export async function wipeEnds(path: string, deviceSize: number): Promise<void> {
  const fh = await open(path, constants.O_WRONLY);
  try {
    const zeros = Buffer.alloc(Math.min(MiB, deviceSize));
    await fh.write(zeros, 0, zeros.length, 0);
    if (deviceSize > 2 * MiB) await fh.write(zeros, 0, zeros.length, deviceSize - MiB);
    await fh.datasync();
  } finally {
    await fh.close();
  }
}
