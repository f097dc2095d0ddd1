import { connect, isIP, type Socket } from 'node:net';
import { connect as connectTls, type ConnectionOptions } from 'node:tls';

// The hot path of an image download: a GET over a socket whose body lands
// straight in the caller's buffers (the `onread` option of net.Socket and
// tls.TLSSocket), which are the block sink's O_DIRECT write buffers: over
// plain http the kernel reads into them, over https OpenSSL decrypts into
// them. undici copies each byte three times on the way (into its WASM
// parser's memory, out of it, and into the joined chunk a stream hands over);
// measured on 2 cores, those copies cost about as much CPU as the image's
// sha256 over http, and more than the decryption over https (`make bench`).
//
// Only the common case goes this way: http: or https: with no proxy, a
// response with Content-Length and no Transfer-Encoding. The caller gets
// `undefined` for a redirect or a body it cannot stream this way, and asks
// undici instead.

export interface SocketResponse {
  status: number;
  /** Lower-case names; the first value of each. */
  headers: Record<string, string>;
  body: SocketBody;
}

export interface SocketGetOptions {
  /** Connect, response-header and between-reads timeout. */
  timeoutMs: number;
  signal?: AbortSignal;
  /** https: skip certificate verification (ipa-insecure). */
  insecure?: boolean;
  /** https: extra CA bundle (PEM; ipa-cafile). */
  ca?: string;
}

/** Response heads larger than this are refused (a real one is a few hundred bytes). */
const HEAD_MAX = 64 * 1024;
/** Where reads land while no caller buffer is waiting (the head, then at most one read per fill). */
const SCRATCH = 64 * 1024;

const headerSafe = (v: string) => !/[\r\n\0]/.test(v);

function requestHead(url: URL, headers: Record<string, string>): string {
  const lines = [`GET ${url.pathname}${url.search} HTTP/1.1`, `host: ${url.host}`, 'user-agent: metal-agent', 'connection: close'];
  for (const [k, v] of Object.entries(headers)) {
    if (!headerSafe(k) || !headerSafe(v)) throw new Error(`header ${k} holds a line break`);
    lines.push(`${k}: ${v}`);
  }
  return `${lines.join('\r\n')}\r\n\r\n`;
}

/** A response head whose framing is ambiguous or malformed (refused, as undici's parser refuses it). */
export class ResponseFramingError extends Error {}

/** RFC 9110 token characters: what a header name may be made of. */
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
/** A field value after its surrounding whitespace: visible ASCII, spaces, tabs and obs-text; no control characters. */
const FIELD_VALUE = /^[\t\x20-\x7e\x80-\xff]*$/;
/** Optional whitespace around a field value (RFC 9110 OWS): spaces and tabs only. */
const OWS = /^[ \t]+|[ \t]+$/g;

/**
 * Status line and headers; undefined when `text` is not an HTTP/1.x response
 * head. Framing is strict, as undici's llhttp parser does it: a header name
 * must be a token (no whitespace before the colon, no folded lines), values
 * hold no control characters, Content-Length is digits and given once (undici
 * refuses a repeated one even with equal values, which RFC 9110 section 8.6
 * allows a client to do), and never together with Transfer-Encoding.
 * Violations throw ResponseFramingError: a body whose length two parties
 * could read differently is never streamed.
 */
export function parseResponseHead(text: string): { status: number; headers: Record<string, string> } | undefined {
  const [statusLine, ...lines] = text.split('\r\n');
  const m = /^HTTP\/1\.[01] (\d{3})(?: [\t\x20-\x7e\x80-\xff]*)?$/.exec(statusLine ?? '');
  if (!m) return undefined;
  const headers: Record<string, string> = {};
  const lengths: string[] = [];
  for (const line of lines) {
    if (/^[ \t]/.test(line)) throw new ResponseFramingError('folded header line (obs-fold) in the response');
    const colon = line.indexOf(':');
    const rawName = colon < 0 ? '' : line.slice(0, colon);
    if (!TOKEN.test(rawName)) {
      throw new ResponseFramingError(
        /[ \t]$/.test(rawName) && TOKEN.test(rawName.trimEnd())
          ? `whitespace before the colon in response header '${rawName.trimEnd()}'`
          : 'malformed response header line',
      );
    }
    const name = rawName.toLowerCase();
    const value = line.slice(colon + 1).replace(OWS, '');
    if (!FIELD_VALUE.test(value)) throw new ResponseFramingError(`control character in response header '${name}'`);
    if (name === 'content-length') lengths.push(value);
    headers[name] ??= value;
  }
  if (lengths.length > 0) {
    if (lengths.length > 1 || lengths[0]!.includes(',')) {
      const values = lengths.join(',').split(',').map((v) => v.replace(OWS, ''));
      throw new ResponseFramingError(
        values.every((v) => v === values[0]) ? 'repeated Content-Length in the response' : 'conflicting Content-Length values in the response',
      );
    }
    if (!/^\d+$/.test(lengths[0]!)) throw new ResponseFramingError('Content-Length of the response is not a number');
    if (headers['transfer-encoding'] !== undefined) {
      throw new ResponseFramingError('response has both Transfer-Encoding and Content-Length');
    }
  }
  return { status: Number(m[1]), headers };
}

/**
 * The body of one response. `fill` hands the socket a caller buffer; reads land
 * in it directly until it is full or the body ends. Between fills the socket is
 * paused, so a slow consumer holds data back in the kernel, not in memory.
 */
export class SocketBody {
  private readonly scratch = Buffer.allocUnsafe(SCRATCH);
  /** Body bytes that arrived before a caller buffer was there for them. */
  private pending?: Buffer;
  private target?: { buf: Buffer; at: number; end: number; start: number };
  /** The region the socket was last told to read into. */
  private readRegion: Buffer = this.scratch;
  private waiter?: { resolve: (n: number) => void; reject: (e: Error) => void };
  private failure?: Error;
  private remaining = 0;
  private headParts: Buffer[] = [];
  private headLen = 0;
  private onHead?: (r: { status: number; headers: Record<string, string> } | Error) => void;
  /**
   * The whole response head must arrive within one timeout of its first byte,
   * however slowly it trickles in (the socket's idle timeout alone would wait
   * forever for a head sent a byte at a time).
   */
  private headDeadline?: NodeJS.Timeout;
  socket!: Socket;
  /** Bytes the last failed fill placed before the failure. */
  received = 0;
  /** Body bytes the kernel read straight into caller buffers, and bytes that had to be copied there. */
  readonly bytes = { inPlace: 0, copied: 0 };

  constructor(private readonly timeoutMs: number) {}

  /** Starts the exchange; resolves once the response head has arrived. */
  open(url: URL, head: string, opts: SocketGetOptions): Promise<{ status: number; headers: Record<string, string> }> {
    const { signal } = opts;
    return new Promise((resolve, reject) => {
      this.onHead = (r) => {
        this.onHead = undefined;
        if (r instanceof Error) reject(r);
        else resolve(r);
      };
      const host = url.hostname.replace(/^\[(.*)\]$/, '$1');
      const onread = { buffer: () => this.nextRegion(), callback: (n: number, buf: Uint8Array) => this.onRead(n, buf) };
      const https = url.protocol === 'https:';
      this.socket = https
        ? connectTls({
            host,
            port: Number(url.port || 443),
            servername: isIP(host) ? undefined : host,
            rejectUnauthorized: !opts.insecure,
            ...(opts.ca ? { ca: opts.ca } : {}),
            // Documented for tls.connect (as for net.connect); @types/node lacks it.
            onread,
          } as ConnectionOptions)
        : connect({ host, port: Number(url.port || 80), onread });
      this.socket.setNoDelay(true);
      this.socket.setTimeout(this.timeoutMs, () => this.socket.destroy(new Error(`no data for ${this.timeoutMs / 1000} s`)));
      this.socket.once('close', () => clearTimeout(this.headDeadline));
      this.socket.on('error', (err) => this.fail(err));
      this.socket.on('close', () => this.fail(new Error(this.onHead ? 'connection closed before a response' : 'connection closed early')));
      this.socket.on(https ? 'secureConnect' : 'connect', () => this.socket.write(head));
      if (signal) {
        const abort = () => this.socket.destroy(signal.reason as Error);
        if (signal.aborted) abort();
        signal.addEventListener('abort', abort, { once: true });
        this.socket.once('close', () => signal.removeEventListener('abort', abort));
      }
    });
  }

  /** Body bytes the response announced; reading stops there. */
  expect(length: number): void {
    this.remaining = length;
    if (this.pending && this.pending.length > length) this.pending = this.pending.subarray(0, length);
    this.remaining -= this.pending?.length ?? 0;
  }

  private nextRegion(): Buffer {
    const t = this.target;
    this.readRegion = t && t.at < t.end ? t.buf.subarray(t.at, Math.min(t.end, t.at + this.remaining)) : this.scratch;
    if (this.readRegion.length === 0) this.readRegion = this.scratch;
    return this.readRegion;
  }

  private onRead(n: number, buf: Uint8Array): boolean {
    if (this.onHead) return this.readHead(n, buf);
    const t = this.target;
    if (buf === this.readRegion && buf !== this.scratch && t) {
      // The kernel wrote into the caller's buffer: nothing to copy.
      const got = Math.min(n, this.remaining);
      t.at += got;
      this.bytes.inPlace += got;
      this.remaining -= got;
    } else {
      // Landed in scratch (first read after a pause): copy what fits, keep the rest.
      const data = Buffer.from(buf.buffer, buf.byteOffset, Math.min(n, this.remaining));
      this.remaining -= data.length;
      this.deliver(data);
    }
    return this.settle();
  }

  private deliver(data: Buffer): void {
    const t = this.target;
    if (!t) {
      this.pending = this.pending ? Buffer.concat([this.pending, data]) : Buffer.from(data);
      return;
    }
    const n = Math.min(data.length, t.end - t.at);
    data.copy(t.buf, t.at, 0, n);
    this.bytes.copied += n;
    t.at += n;
    if (n < data.length) this.pending = Buffer.from(data.subarray(n));
  }

  /** Resolves the waiting fill when its buffer is full or the body is done; returns whether to keep reading. */
  private settle(): boolean {
    const t = this.target;
    // No buffer waiting: stay paused, so nothing piles up in `pending`.
    if (!t) return false;
    if (t.at < t.end && this.remaining > 0) return true;
    this.target = undefined;
    this.socket.setTimeout(0);
    const w = this.waiter;
    this.waiter = undefined;
    w?.resolve(t.at - t.start);
    if (this.remaining === 0) this.socket.destroy();
    return false;
  }

  private readHead(n: number, buf: Uint8Array): boolean {
    this.headDeadline ??= setTimeout(
      () => this.socket.destroy(new Error(`response head not complete ${this.timeoutMs / 1000} s after its first byte`)),
      this.timeoutMs,
    );
    this.headParts.push(Buffer.from(buf.subarray(0, n)));
    // Counted over interim (1xx) heads too: a stream of them cannot go on forever.
    this.headLen += n;
    let all = Buffer.concat(this.headParts);
    for (;;) {
      const end = all.indexOf('\r\n\r\n');
      if (end < 0) {
        this.headParts = [all];
        if (this.headLen > HEAD_MAX) this.socket.destroy(new Error(`response head larger than ${HEAD_MAX} bytes`));
        return true;
      }
      let parsed: ReturnType<typeof parseResponseHead>;
      try {
        parsed = parseResponseHead(all.subarray(0, end).toString('latin1'));
      } catch (err) {
        this.socket.destroy(err as Error);
        return false;
      }
      if (!parsed) {
        this.socket.destroy(new Error('not an HTTP/1.x response'));
        return false;
      }
      if (parsed.status === 101) {
        // Nothing here asked to switch protocols (undici refuses it too).
        this.socket.destroy(new Error('unexpected 101 Switching Protocols'));
        return false;
      }
      all = all.subarray(end + 4);
      // 100 Continue, 103 Early Hints, ...: interim heads without a body; the final one follows.
      if (parsed.status < 200) continue;
      this.headParts = [];
      if (all.length > 0) this.pending = all;
      clearTimeout(this.headDeadline);
      this.socket.setTimeout(0);
      this.onHead!(parsed);
      // Paused until a caller asks for the body.
      return false;
    }
  }

  private fail(err: Error): void {
    this.failure ??= err;
    this.onHead?.(err);
    const w = this.waiter;
    this.waiter = undefined;
    this.target = undefined;
    if (w && this.remaining > 0) w.reject(this.failure);
    else w?.resolve(0);
  }

  /**
   * Reads body bytes into buf[at, end); resolves with how many arrived: all of
   * them, or fewer when the body ended. Rejects if the connection fails first;
   * `received` then tells how far this fill got.
   */
  fill(buf: Buffer, at: number, end: number): Promise<number> {
    if (this.waiter) throw new Error('fill() while another fill is pending');
    this.target = { buf, at, end, start: at };
    if (this.pending) {
      const p = this.pending;
      this.pending = undefined;
      this.deliver(p);
    }
    const t = this.target;
    if (t.at === t.end || (this.remaining === 0 && !this.pending)) {
      this.target = undefined;
      if (this.remaining === 0) this.socket.destroy();
      return Promise.resolve(t.at - t.start);
    }
    if (this.failure) {
      this.target = undefined;
      this.received = t.at - t.start;
      return Promise.reject(this.failure);
    }
    return new Promise<number>((resolve, reject) => {
      this.waiter = {
        resolve,
        reject: (e) => {
          this.received = t.at - t.start;
          reject(e);
        },
      };
      this.socket.setTimeout(this.timeoutMs);
      this.socket.resume();
    });
  }

  /** Drops the connection (and whatever of the body is left). */
  discard(): void {
    this.socket.destroy();
  }
}

/**
 * GET `url` (http or https) over one socket. Resolves with the response when its body can be
 * streamed here (or it has no body worth reading: a status the caller will
 * refuse), or undefined when undici should handle it (redirects, chunked or
 * length-less bodies). Network errors reject, and so does a response head
 * with ambiguous framing (ResponseFramingError); interim 1xx heads are skipped.
 */
export async function socketGet(url: URL, headers: Record<string, string>, opts: SocketGetOptions): Promise<SocketResponse | undefined> {
  const request = requestHead(url, headers);
  const body = new SocketBody(opts.timeoutMs);
  let head: { status: number; headers: Record<string, string> };
  try {
    head = await body.open(url, request, opts);
  } catch (err) {
    body.discard();
    throw err;
  }
  const { status, headers: h } = head;
  if (status < 200 || status >= 300) {
    body.discard();
    return status >= 300 && status < 400 ? undefined : { status, headers: h, body };
  }
  const len = h['content-length'];
  if (h['transfer-encoding'] || len === undefined || !/^\d+$/.test(len)) {
    body.discard();
    return undefined;
  }
  body.expect(Number(len));
  return { status, headers: h, body };
}
