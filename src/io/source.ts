import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { constants } from 'node:fs';
import { open, readlink, realpath, type FileHandle } from 'node:fs/promises';
import { isAbsolute, relative, resolve } from 'node:path';
// undici only when a download needs it (https, proxies, redirects, chunked bodies):
// plain http goes through socket-http.ts, and undici's module and WebAssembly
// parser cost the idle agent ~10 MiB (docs/footprint.md).
import type { Dispatcher } from 'undici';
import { log } from '../log.ts';
import { redactUrl } from '../redact.ts';
import { ImageDownloadError } from './errors.ts';
import { socketGet } from './socket-http.ts';
import { proxyFor, type ProxySettings } from './proxy.ts';

// Where image bytes come from: http(s) via undici (resuming with Range after a
// dropped connection, bounded retries, several mirror URLs tried in order) or
// file:// (Ironic sends those when the image sits on a local/NFS path).
// The caller sees one async iterable of chunks, in order, as served.
//
// Chunks are whole buffers filled by the source. Once the writer hands it a
// pool of its own write buffers (useBuffers), the source fills those, chunk
// boundaries fall on write-buffer boundaries, and an http(s) or file source
// reads straight into them (socket-http.ts): the bytes are not copied in user
// space on their way to the disk. A chunk belongs to whoever receives it.

export interface SourceOptions extends ProxySettings {
  /** Connection attempts after the first one, per URL and per resume. */
  retries: number;
  retryIntervalSec: number;
  /** Connect, response-header and between-chunks timeout. */
  timeoutSec: number;
  /** Skip TLS certificate verification (ipa-insecure). */
  insecure?: boolean;
  /** Extra CA bundle (PEM) for https. */
  ca?: string;
  /** Basic auth for the image server (credentials in the URL work too). */
  basicAuth?: { username: string; password: string };
  /**
   * A whole Authorization header value, given by the conductor (Ironic 29.0's
   * image_request_authorization, e.g. a bearer token for an OCI registry).
   * Wins over basicAuth; credentials in the URL still win over both.
   */
  authorization?: string;
  signal?: AbortSignal;
  /** Size of chunks before a buffer pool is given (bytes). */
  readChunkBytes?: number;
  /**
   * Directories file:// URLs may point into (ipa-image-file-dirs); empty or
   * absent: file:// is refused. Anything else would let whoever names the URL
   * copy any local file (keys, the agent token) onto the disk or into an error.
   */
  fileDirs?: readonly string[];
}

/** Buffers the consumer lends for chunks (the block sink's write buffers). */
export interface ChunkBufferPool {
  /** Every buffer taken has this length. */
  readonly size: number;
  take(): Promise<Buffer>;
  /** A buffer taken and not used (the body ended before a byte went into it). */
  give(b: Buffer): void;
}

export interface ImageSource {
  /** The URL that answered first. */
  url: string;
  /** Total bytes as served, when the server said (Content-Length / file size). */
  size?: number;
  chunks: AsyncIterable<Buffer>;
  /** From now on fill the pool's buffers, with chunk boundaries on multiples of pool.size. */
  useBuffers(pool: ChunkBufferPool): void;
  /** Releases sockets; safe to call more than once. */
  close(): Promise<void>;
}

/** Body bytes of one response, read into buffers the caller gives. */
interface BodyReader {
  /** Fills buf[at, end); resolves with the bytes placed, fewer only at the end of the body. */
  fill(buf: Buffer, at: number, end: number): Promise<number>;
  /** After a rejected fill: bytes it placed before failing. */
  readonly received: number;
  discard(): void;
}

/** undici's body stream as a BodyReader (one copy, into the caller's buffer). */
class StreamBody implements BodyReader {
  private readonly it: AsyncIterator<Buffer>;
  private left?: Buffer;
  received = 0;
  constructor(private readonly body: Dispatcher.ResponseData['body']) {
    this.it = (body as AsyncIterable<Buffer>)[Symbol.asyncIterator]();
  }

  async fill(buf: Buffer, at: number, end: number): Promise<number> {
    let pos = at;
    try {
      while (pos < end) {
        if (!this.left?.length) {
          const r = await this.it.next();
          if (r.done) break;
          this.left = r.value;
        }
        const n = this.left.copy(buf, pos, 0, Math.min(this.left.length, end - pos));
        this.left = this.left.subarray(n);
        pos += n;
      }
    } catch (err) {
      this.received = pos - at;
      throw err;
    }
    return pos - at;
  }

  /** Drops the body unread (destroy alone emits an unhandled AbortError). */
  discard(): void {
    this.body.on('error', () => undefined);
    this.body.destroy();
  }
}

/** Hands out chunk buffers: the pool's once given, fresh ones before. */
class ChunkBuffers {
  pool?: ChunkBufferPool;
  constructor(private readonly plainSize: number) {}

  /** A buffer for the chunk starting at stream offset `offset`, and where that chunk must end in it. */
  async next(offset: number): Promise<{ buf: Buffer; end: number }> {
    if (!this.pool) return { buf: Buffer.allocUnsafe(this.plainSize), end: this.plainSize };
    const buf = await this.pool.take();
    // Keep chunks on write-buffer boundaries of the stream, so that each one is
    // exactly one of the writer's buffers.
    return { buf, end: this.pool.size - (offset % this.pool.size) };
  }

  /** `buf` came from next() and holds none of the image: back to the pool it came from. */
  unused(buf: Buffer): void {
    this.pool?.give(buf);
  }
}

const READ_CHUNK = 1024 * 1024;

class Dispatchers {
  private readonly cache = new Map<string, Dispatcher>();
  private readonly bases: Dispatcher[] = [];
  constructor(private readonly opts: SourceOptions) {}

  async for(url: URL): Promise<Dispatcher> {
    const { Agent, ProxyAgent, interceptors } = await import('undici');
    const proxy = proxyFor(url, this.opts);
    const key = proxy ?? '';
    let d = this.cache.get(key);
    if (!d) {
      const timeout = this.opts.timeoutSec * 1000;
      const tls = { rejectUnauthorized: !this.opts.insecure, ...(this.opts.ca ? { ca: this.opts.ca } : {}), timeout };
      const common = { headersTimeout: timeout, bodyTimeout: timeout, connect: tls };
      const base = proxy ? new ProxyAgent({ ...common, uri: proxy, requestTls: tls }) : new Agent(common);
      this.bases.push(base);
      // Image servers (object stores, mirrors) may redirect; follow a few hops.
      d = base.compose(interceptors.redirect({ maxRedirections: 5 }));
      this.cache.set(key, d);
    }
    return d;
  }

  async close(): Promise<void> {
    // destroy, not close: close waits for bodies nobody will read after a failure.
    await Promise.allSettled(this.bases.map((d) => d.destroy()));
    this.bases.length = 0;
    this.cache.clear();
  }
}

/** Codes worth retrying on the same URL; other 4xx move on to the next URL at once. */
const retryableStatus = (s: number) => s >= 500 || s === 408 || s === 429;

class HttpStatusError extends Error {
  constructor(readonly status: number, url: string) {
    super(`HTTP ${status} from ${url}`);
  }
}

function describe(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const cause = (err as { cause?: unknown }).cause;
  const code = (err as { code?: string }).code;
  const msg = err.message + (code && !err.message.includes(code) ? ` (${code})` : '');
  return cause instanceof Error && !msg.includes(cause.message) ? `${msg}: ${cause.message}` : msg;
}

const redact = (url: string): string => redactUrl(url);

function authHeader(url: URL, opts: SourceOptions): Record<string, string> {
  const basic = (user: string, pass: string) => ({ authorization: `Basic ${Buffer.from(`${user}:${pass}`).toString('base64')}` });
  if (url.username) return basic(decodeURIComponent(url.username), decodeURIComponent(url.password));
  if (opts.authorization) return { authorization: opts.authorization };
  if (opts.basicAuth) return basic(opts.basicAuth.username, opts.basicAuth.password);
  return {};
}

interface Response {
  body: BodyReader;
  /** Bytes of the body to drop before `offset` is reached (server ignored Range). */
  skip: number;
  total?: number;
  validator?: string;
}

const parseContentRange = (v: string | undefined) => {
  const m = v ? /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(v.trim()) : null;
  return m ? { start: Number(m[1]), total: m[3] === '*' ? undefined : Number(m[3]) } : undefined;
};

/** A response as either client gave it. */
interface Exchange {
  status: number;
  /** Lower-case names; the first value of each. */
  headers: Record<string, string>;
  body: BodyReader;
}

/** Drops the bytes a server that ignored Range sends again (the image before `skip`). */
async function skipBytes(res: Response): Promise<void> {
  const scratch = Buffer.allocUnsafe(Math.min(res.skip, READ_CHUNK));
  while (res.skip > 0) {
    const n = await res.body.fill(scratch, 0, Math.min(res.skip, scratch.length));
    if (n === 0) throw new Error(`connection closed while skipping to the resume offset`);
    res.skip -= n;
  }
}

class HttpDownload {
  private readonly dispatchers: Dispatchers;
  private urlIndex = 0;
  private validator?: string;
  private total?: number;

  constructor(private readonly urls: readonly string[], private readonly opts: SourceOptions) {
    this.dispatchers = new Dispatchers(opts);
  }

  get currentUrl(): string {
    return this.urls[this.urlIndex]!;
  }

  /** One GET from `offset`; throws HttpStatusError or network errors. */
  private async get(urlText: string, offset: number): Promise<Response> {
    const url = new URL(urlText);
    const auth = authHeader(url, this.opts);
    url.username = '';
    url.password = '';
    const headers: Record<string, string> = { ...auth, 'accept-encoding': 'identity' };
    if (offset > 0) {
      headers.range = `bytes=${offset}-`;
      if (this.validator) headers['if-range'] = this.validator;
    }
    const { timeoutSec, signal, insecure, ca } = this.opts;
    const exchange = (!proxyFor(url, this.opts)
      ? await socketGet(url, headers, { timeoutMs: timeoutSec * 1000, signal, insecure, ca })
      : undefined) ?? (await this.undiciGet(url, headers));
    return this.accept(exchange, urlText, offset);
  }

  /** The general way: proxies, redirects, chunked bodies. */
  private async undiciGet(url: URL, headers: Record<string, string>): Promise<Exchange> {
    // Timeouts, TLS and the proxy come with the dispatcher.
    const { request } = await import('undici');
    const res = await request(url, {
      method: 'GET',
      headers,
      dispatcher: await this.dispatchers.for(url),
      signal: this.opts.signal,
      highWaterMark: this.opts.readChunkBytes ?? READ_CHUNK,
    });
    const h: Record<string, string> = {};
    for (const [k, v] of Object.entries(res.headers)) if (v !== undefined) h[k] = Array.isArray(v) ? v[0]! : v;
    return { status: res.statusCode, headers: h, body: new StreamBody(res.body) };
  }

  /** Checks a response against what was asked (status, range, size). */
  private accept(res: Exchange, urlText: string, offset: number): Response {
    const h = res.headers;
    if (res.status === 200) {
      const len = h['content-length'];
      const total = len !== undefined ? Number(len) : undefined;
      if (offset > 0 && this.total !== undefined && total !== undefined && total !== this.total) {
        res.body.discard();
        throw new ImageDownloadError(`image at ${redact(urlText)} changed size during download (${this.total} → ${total})`);
      }
      return { body: res.body, skip: offset, total, validator: this.validatorOf(h) };
    }
    if (res.status === 206 && offset > 0) {
      const range = parseContentRange(h['content-range']);
      if (!range || range.start !== offset || (this.total !== undefined && range.total !== undefined && range.total !== this.total)) {
        res.body.discard();
        throw new ImageDownloadError(`bad Content-Range '${h['content-range']}' resuming ${redact(urlText)} at ${offset}`);
      }
      return { body: res.body, skip: 0, total: range.total, validator: this.validatorOf(h) };
    }
    res.body.discard();
    throw new HttpStatusError(res.status, redact(urlText));
  }

  private validatorOf(h: Record<string, string>): string | undefined {
    const etag = h.etag;
    if (etag && !etag.startsWith('W/')) return etag;
    return h['last-modified'];
  }

  /**
   * Connect at `offset`, trying the current URL `retries + 1` times, then the
   * following URLs (resuming at the same offset: mirrors serve the same image,
   * and the checksum catches it if they do not).
   */
  async connect(offset: number): Promise<Response> {
    const failures: string[] = [];
    for (; this.urlIndex < this.urls.length; this.urlIndex++) {
      const url = this.urls[this.urlIndex]!;
      for (let attempt = 0; attempt <= this.opts.retries; attempt++) {
        this.opts.signal?.throwIfAborted();
        try {
          const res = await this.get(url, offset);
          if (offset === 0) {
            this.total = res.total;
            this.validator = res.validator;
          }
          return res;
        } catch (err) {
          if (this.opts.signal?.aborted) throw err;
          if (err instanceof ImageDownloadError) throw err;
          const why = describe(err);
          log.warn({ url: redact(url), offset, attempt, err: why }, 'image download attempt failed');
          const lastAttempt = attempt === this.opts.retries;
          if ((err instanceof HttpStatusError && !retryableStatus(err.status)) || lastAttempt) {
            failures.push(`${redact(url)}: ${why}${lastAttempt && !(err instanceof HttpStatusError && !retryableStatus(err.status)) ? ` (after ${attempt + 1} attempts)` : ''}`);
            break;
          }
          await sleep(this.opts.retryIntervalSec * 1000, undefined, { signal: this.opts.signal });
        }
      }
    }
    throw new ImageDownloadError(`could not download image: ${failures.join('; ')}`);
  }

  get size(): number | undefined {
    return this.total;
  }

  async *chunks(first: Response, buffers: ChunkBuffers): AsyncGenerator<Buffer> {
    let res = first;
    /** Bytes of the image placed in buffers so far (yielded or in `chunk`). */
    let offset = 0;
    let stalled = 0;
    let chunk = await buffers.next(0);
    let at = 0;
    for (;;) {
      const startedAt = offset;
      try {
        if (res.skip > 0) await skipBytes(res);
        for (;;) {
          let n: number;
          try {
            n = await res.body.fill(chunk.buf, at, chunk.end);
          } catch (err) {
            // What arrived before the failure stays: the resume starts after it.
            at += res.body.received;
            offset += res.body.received;
            throw err;
          }
          at += n;
          offset += n;
          if (at < chunk.end) break;
          yield chunk.end === chunk.buf.length ? chunk.buf : chunk.buf.subarray(0, chunk.end);
          chunk = await buffers.next(offset);
          at = 0;
        }
        if (this.total !== undefined && offset < this.total) {
          throw new Error(`connection closed at ${offset} of ${this.total} bytes`);
        }
        if (at > 0) yield chunk.buf.subarray(0, at);
        // An image that ends on a buffer boundary leaves the buffer taken for more bytes empty.
        else buffers.unused(chunk.buf);
        return;
      } catch (err) {
        res.body.discard();
        if (this.opts.signal?.aborted) throw err;
        if (err instanceof ImageDownloadError) throw err;
        stalled = offset > startedAt ? 0 : stalled + 1;
        if (stalled > this.opts.retries) {
          throw new ImageDownloadError(
            `download of ${redact(this.currentUrl)} keeps failing at byte ${offset}: ${describe(err)}`,
          );
        }
        log.warn({ url: redact(this.currentUrl), offset, err: describe(err) }, 'image download interrupted; resuming');
        if (stalled > 0) await sleep(this.opts.retryIntervalSec * 1000, undefined, { signal: this.opts.signal });
        res = await this.connect(offset);
      }
    }
  }

  close(): Promise<void> {
    return this.dispatchers.close();
  }
}

/** Whether absolute, normalised `path` is `dir` or lies inside it. */
function isInside(path: string, dir: string): boolean {
  const rel = relative(dir, path);
  return rel === '' || (rel !== '..' && !rel.startsWith('../') && !isAbsolute(rel));
}

/**
 * The real path of a file:// URL's file, when it lies under one of the allowed
 * directories both as written and once symlinks are resolved (so a link inside
 * an allowed directory cannot point out of it), with those directories' real
 * paths. A path outside is refused before it is looked up, so the answer does
 * not tell whether it exists.
 */
async function allowedFilePath(url: string, dirs: readonly string[]): Promise<{ path: string; roots: string[] }> {
  const refused = () =>
    new ImageDownloadError(
      dirs.length === 0
        ? `file:// image ${url} refused: no directory is allowed for file:// images (set ipa-image-file-dirs)`
        : `file:// image ${url} refused: it is not under the allowed directories (ipa-image-file-dirs: ${dirs.join(',')})`,
    );
  let path: string;
  try {
    path = resolve(fileURLToPath(url));
  } catch (err) {
    throw new ImageDownloadError(`cannot read image ${url}: ${describe(err)}`);
  }
  const given = dirs.filter((d) => isAbsolute(d)).map((d) => resolve(d));
  const real = (await Promise.all(given.map((d) => realpath(d).catch(() => undefined)))).filter((d) => d !== undefined);
  if (!given.some((d) => isInside(path, d)) && !real.some((d) => isInside(path, d))) throw refused();
  let resolved: string;
  try {
    resolved = await realpath(path);
  } catch (err) {
    throw new ImageDownloadError(`cannot read image ${url}: ${describe(err)}`);
  }
  if (!real.some((d) => isInside(resolved, d))) throw refused();
  return { path: resolved, roots: real };
}

/** A local file (file:// URL) read with positional reads straight into the chunk buffers. */
async function openFile(url: string, opts: SourceOptions): Promise<ImageSource> {
  const { path, roots } = await allowedFilePath(url, opts.fileDirs ?? []);
  let fh: FileHandle | undefined;
  let size: number;
  try {
    // O_NOFOLLOW and the check below: a directory swapped for a symlink after
    // the check above still cannot lead out. O_NONBLOCK: a FIFO does not hang the open.
    fh = await open(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
    const opened = await readlink(`/proc/self/fd/${fh.fd}`);
    if (!roots.some((d) => isInside(opened, d))) throw new Error('it moved out of the allowed directories while being opened');
    const st = await fh.stat();
    if (!st.isFile()) throw new Error('not a regular file');
    size = st.size;
  } catch (err) {
    await fh?.close().catch(() => undefined);
    throw new ImageDownloadError(`cannot read image ${url}: ${describe(err)}`);
  }
  const file = fh;
  const buffers = new ChunkBuffers(opts.readChunkBytes ?? READ_CHUNK);
  async function* chunks(): AsyncGenerator<Buffer> {
    let offset = 0;
    while (offset < size) {
      opts.signal?.throwIfAborted();
      const { buf, end } = await buffers.next(offset);
      let at = 0;
      while (at < end && offset < size) {
        const { bytesRead } = await file.read(buf, at, Math.min(end - at, size - offset), offset);
        if (bytesRead === 0) throw new ImageDownloadError(`${url} shrank while being read (at ${offset} of ${size} bytes)`);
        at += bytesRead;
        offset += bytesRead;
      }
      yield at === buf.length ? buf : buf.subarray(0, at);
    }
  }
  return {
    url,
    size,
    chunks: chunks(),
    useBuffers: (pool) => (buffers.pool = pool),
    close: async () => {
      await file.close().catch(() => undefined);
    },
  };
}

/**
 * Open the first URL that answers. Fails with ImageDownloadError naming every
 * URL and why it failed. The returned chunks resume transparently.
 */
export async function openImageSource(urls: readonly string[], opts: SourceOptions): Promise<ImageSource> {
  if (urls.length === 0) throw new ImageDownloadError('no image URL given');
  const errors: string[] = [];
  // URLs are tried in the order given. Consecutive http(s) URLs form one
  // mirror group: a download that breaks on one resumes on the next.
  for (let i = 0; i < urls.length; ) {
    const u = urls[i]!;
    const scheme = /^([a-z][a-z0-9+.-]*):/i.exec(u)?.[1]?.toLowerCase();
    if (scheme === 'file') {
      i++;
      try {
        return await openFile(u, opts);
      } catch (err) {
        errors.push(describe(err));
      }
    } else if (scheme === 'http' || scheme === 'https') {
      const group: string[] = [];
      while (i < urls.length && /^https?:/i.test(urls[i]!)) group.push(urls[i++]!);
      const dl = new HttpDownload(group, opts);
      try {
        const first = await dl.connect(0);
        const buffers = new ChunkBuffers(opts.readChunkBytes ?? READ_CHUNK);
        return {
          url: dl.currentUrl,
          size: dl.size,
          chunks: dl.chunks(first, buffers),
          useBuffers: (pool) => (buffers.pool = pool),
          close: () => dl.close(),
        };
      } catch (err) {
        await dl.close();
        if (!(err instanceof ImageDownloadError)) throw err;
        errors.push(err.message.replace(/^could not download image: /, ''));
      }
    } else {
      i++;
      errors.push(`unsupported URL '${redact(u)}'`);
    }
  }
  throw new ImageDownloadError(`could not download image: ${errors.join('; ')}`);
}

/** Small downloads (checksum files, config drives given as URLs), capped at `maxBytes`. */
export async function fetchToBuffer(
  url: string,
  opts: SourceOptions & { maxBytes?: number },
): Promise<Buffer> {
  const max = opts.maxBytes ?? 64 * 1024 * 1024;
  const src = await openImageSource([url], opts);
  try {
    if (src.size !== undefined && src.size > max) {
      throw new ImageDownloadError(`${redact(url)} is ${src.size} bytes, more than the ${max} allowed`);
    }
    const parts: Buffer[] = [];
    let n = 0;
    for await (const c of src.chunks) {
      n += c.length;
      if (n > max) throw new ImageDownloadError(`${redact(url)} is more than the ${max} bytes allowed`);
      parts.push(c);
    }
    return Buffer.concat(parts);
  } finally {
    await src.close();
  }
}
