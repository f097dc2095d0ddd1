import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { Agent, ProxyAgent, interceptors, request, type Dispatcher } from 'undici';
import { log } from '../log.ts';
import { ImageDownloadError } from './errors.ts';
import { proxyFor, type ProxySettings } from './proxy.ts';

// Where image bytes come from: http(s) via undici (resuming with Range after a
// dropped connection, bounded retries, several mirror URLs tried in order) or
// file:// (Ironic sends those when the image sits on a local/NFS path).
// The caller sees one async iterable of chunks, in order, as served.

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
  /** Size of chunks undici hands over (bytes). */
  readChunkBytes?: number;
}

export interface ImageSource {
  /** The URL that answered first. */
  url: string;
  /** Total bytes as served, when the server said (Content-Length / file size). */
  size?: number;
  chunks: AsyncIterable<Buffer>;
  /** Releases sockets; safe to call more than once. */
  close(): Promise<void>;
}

const READ_CHUNK = 1024 * 1024;

class Dispatchers {
  private readonly cache = new Map<string, Dispatcher>();
  private readonly bases: Dispatcher[] = [];
  constructor(private readonly opts: SourceOptions) {}

  for(url: URL): Dispatcher {
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

function redact(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return url;
  }
}

function authHeader(url: URL, opts: SourceOptions): Record<string, string> {
  const basic = (user: string, pass: string) => ({ authorization: `Basic ${Buffer.from(`${user}:${pass}`).toString('base64')}` });
  if (url.username) return basic(decodeURIComponent(url.username), decodeURIComponent(url.password));
  if (opts.authorization) return { authorization: opts.authorization };
  if (opts.basicAuth) return basic(opts.basicAuth.username, opts.basicAuth.password);
  return {};
}

interface Response {
  body: Dispatcher.ResponseData['body'];
  /** Bytes of the body to drop before `offset` is reached (server ignored Range). */
  skip: number;
  total?: number;
  validator?: string;
}

/** Drop a response body we will not read (destroy alone emits an unhandled AbortError). */
function discard(body: Dispatcher.ResponseData['body']): void {
  body.on('error', () => undefined);
  body.destroy();
}

const parseContentRange = (v: string | undefined) => {
  const m = v ? /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(v.trim()) : null;
  return m ? { start: Number(m[1]), total: m[3] === '*' ? undefined : Number(m[3]) } : undefined;
};

const header = (h: Record<string, string | string[] | undefined>, k: string) => {
  const v = h[k];
  return Array.isArray(v) ? v[0] : v;
};

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
    const res = await request(url, {
      method: 'GET',
      headers,
      dispatcher: this.dispatchers.for(url),
      signal: this.opts.signal,
      highWaterMark: this.opts.readChunkBytes ?? READ_CHUNK,
    });
    const h = res.headers;
    if (res.statusCode === 200) {
      const len = header(h, 'content-length');
      const total = len !== undefined ? Number(len) : undefined;
      if (offset > 0 && this.total !== undefined && total !== undefined && total !== this.total) {
        discard(res.body);
        throw new ImageDownloadError(`image at ${redact(urlText)} changed size during download (${this.total} → ${total})`);
      }
      return { body: res.body, skip: offset, total, validator: this.validatorOf(h) };
    }
    if (res.statusCode === 206 && offset > 0) {
      const range = parseContentRange(header(h, 'content-range'));
      if (!range || range.start !== offset || (this.total !== undefined && range.total !== undefined && range.total !== this.total)) {
        discard(res.body);
        throw new ImageDownloadError(`bad Content-Range '${header(h, 'content-range')}' resuming ${redact(urlText)} at ${offset}`);
      }
      return { body: res.body, skip: 0, total: range.total, validator: this.validatorOf(h) };
    }
    discard(res.body);
    throw new HttpStatusError(res.statusCode, redact(urlText));
  }

  private validatorOf(h: Record<string, string | string[] | undefined>): string | undefined {
    const etag = header(h, 'etag');
    if (etag && !etag.startsWith('W/')) return etag;
    return header(h, 'last-modified');
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

  async *chunks(first: Response): AsyncGenerator<Buffer> {
    let res = first;
    let offset = 0;
    let stalled = 0;
    for (;;) {
      const startedAt = offset;
      try {
        for await (const chunk of res.body as AsyncIterable<Buffer>) {
          let c = chunk;
          if (res.skip > 0) {
            const drop = Math.min(res.skip, c.length);
            res.skip -= drop;
            c = c.subarray(drop);
            if (c.length === 0) continue;
          }
          offset += c.length;
          yield c;
        }
        if (this.total !== undefined && offset < this.total) {
          throw new Error(`connection closed at ${offset} of ${this.total} bytes`);
        }
        return;
      } catch (err) {
        discard(res.body);
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

async function openFile(url: string, opts: SourceOptions): Promise<ImageSource> {
  const path = fileURLToPath(url);
  let size: number;
  try {
    const st = await stat(path);
    if (!st.isFile()) throw new Error('not a regular file');
    size = st.size;
  } catch (err) {
    throw new ImageDownloadError(`cannot read image ${url}: ${describe(err)}`);
  }
  const stream = createReadStream(path, { highWaterMark: opts.readChunkBytes ?? READ_CHUNK, signal: opts.signal });
  return {
    url,
    size,
    chunks: stream,
    close: async () => {
      stream.destroy();
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
        return { url: dl.currentUrl, size: dl.size, chunks: dl.chunks(first), close: () => dl.close() };
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
