import { constants, type Stats } from 'node:fs';
import { open, stat, type FileHandle } from 'node:fs/promises';
import { ImageTooLargeError, ImageWriteError } from './errors.ts';

// The end of the pipeline: bytes go to a block device (or a staging file) in
// large positional writes. Memory is bounded by (inFlight + 1) write buffers
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
  /** Size of each write; default DEFAULT_WRITE_BYTES (8 MiB). */
  writeBytes?: number;
  /** Writes allowed in flight at once; default 2. */
  inFlight?: number;
  /** Create/truncate a regular file instead of opening an existing device. */
  createFile?: boolean;
  /** Use O_DIRECT on block devices when possible (default true). */
  direct?: boolean;
  /**
   * Sees each filled write buffer (shared memory, in byte order) while it is
   * being written; the buffer is reused only after both finished. The image
   * hash runs here when the written bytes are the served bytes.
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
 * One write's size, and one buffer's: (inFlight + 1) of them are most of what a write adds to the
 * agent's RSS. 4 MiB takes 5-10 MiB off the peak but was timed 8% slower on two CPUs and 24%
 * on one, on a quiet machine (docs/footprint.md, lever 7), and the write is already below its floors.
 */
const DEFAULT_WRITE_BYTES = 8 * MiB;

/** Unit for O_DIRECT sizes and offsets: a multiple of every logical block size in use. */
const DIRECT_UNIT = 4096;

/**
 * Write buffers of earlier writes, whole (unaligned) SharedArrayBuffers, kept
 * for the next sink of the process. Only a major GC frees a SharedArrayBuffer
 * and an idle agent rarely runs one, so every write_image used to leave its
 * (inFlight + 1) write buffers behind and the next one allocated a fresh set on top
 * (docs/footprint.md). Bounded: at most MAX_SPARE are kept. Since the agent drops
 * them and runs a full GC when a command ends (lever 12) and its write_image opens
 * one sink, the agent no longer hands buffers from one sink to another: the list
 * serves only callers of writeImage outside the agent, and could now go.
 */
const spare: Buffer[] = [];
const MAX_SPARE = 4;

function rawBuffer(size: number): Buffer {
  const i = spare.findIndex((b) => b.length === size);
  return i >= 0 ? spare.splice(i, 1)[0]! : Buffer.from(new SharedArrayBuffer(size));
}

/** Gives `b`'s whole SharedArrayBuffer back for a later sink (nobody may still read or write it). */
function keepSpare(b: Buffer): void {
  const raw = Buffer.from(b.buffer as SharedArrayBuffer);
  if (spare.some((x) => x.buffer === raw.buffer)) return;
  if (spare.length >= MAX_SPARE) {
    // Full: one of another size (an older write's, e.g. a staging file's unaligned ones) makes room.
    const other = spare.findIndex((x) => x.length !== raw.length);
    if (other < 0) return;
    spare.splice(other, 1);
  }
  spare.push(raw);
}

/**
 * Lets go of the spare write buffers (their memory returns at the next major GC): once no write is
 * expected soon, e.g. when write_image has ended. Returns how many bytes they held.
 */
export function dropSpareWriteBuffers(): number {
  const bytes = spare.reduce((sum, b) => sum + b.length, 0);
  spare.length = 0;
  return bytes;
}

/** How many spare write buffers the process holds, or of `bytes` each (whole buffers; tests). */
export function spareWriteBuffers(bytes?: number): number {
  return spare.filter((b) => bytes === undefined || b.length === bytes).length;
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
  keepSpare(raw);
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
  /** Every buffer made for this pool, for handing them on when the sink is done (see keepSpare). */
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

  /** Buffers back with the pool (not lent out): free ones, and `current`. */
  idle(current: Buffer): Buffer[] {
    return this.made.filter((b) => b === current || this.free.includes(b));
  }
}

export class BlockSink {
  private readonly writeBytes: number;
  private readonly maxInFlight: number;
  /** Write buffers: one being filled (`current`), up to maxInFlight being written, the rest free. */
  readonly buffers: WriteBufferPool;
  private readonly inflight: Promise<void>[] = [];
  private current!: Buffer;
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
    this.maxInFlight = Math.max(1, opts.inFlight ?? 2);
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
          sink.current = sink.buffers.register(first);
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
    const sink = new BlockSink(fh, opts);
    sink.current = await sink.buffers.take();
    return sink;
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
    if (this.fill === 0 && chunk !== this.current && this.buffers.owns(chunk)) {
      // The source read into one of our buffers: write it as it is, no copy.
      this.buffers.give(this.current);
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
    this.opts.beforeFirstWrite!(this.current.subarray(0, Math.min(this.fill, this.opts.headBytes ?? 64 * 1024)));
  }

  private async submit(): Promise<void> {
    if (this.fill === 0) return;
    this.checkHead();
    const buf = this.current;
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
      this.fill = 0;
      return;
    }
    this.submitted += len;
    this.touched = true;
    const seen = this.opts.onFilled?.(buf.subarray(0, len));
    const p = Promise.all([this.writeFully(this.fh, buf, 0, len, position), seen]).then(
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
    this.current = await this.buffers.take();
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
    // Every write and hash has ended; buffers the source still holds are left alone (it may be
    // mid-read after an error elsewhere), the others serve the next sink.
    for (const b of this.buffers.idle(this.current)) keepSpare(b);
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
