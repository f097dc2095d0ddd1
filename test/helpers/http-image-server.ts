import { closeSync, createReadStream, openSync, readSync, statSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';

// A small image server for tests and benchmarks, on 127.0.0.1 unless told
// otherwise (the fleet lab's hub address). Serves registered files (or
// in-memory bodies, or any file of `root` by name) with Range support and a strong ETag,
// and can misbehave on purpose: drop the connection after some bytes, ignore
// Range, or answer a fixed status.

export interface ServedFile {
  /** Path on disk, or a body held in memory (small files: checksums). */
  path?: string;
  body?: Buffer | string;
  /** Answer this status with no body instead of serving. */
  status?: number;
  /** Require HTTP basic auth with these 'user:password' credentials. */
  auth?: string;
  /** Require exactly this Authorization header value (a bearer token, say). */
  authorization?: string;
  /** Answer 302 with this Location instead of serving. */
  redirect?: string;
}

export interface Misbehaviour {
  /**
   * Bytes to send on this response before cutting the connection, or undefined
   * to send everything. Called once per GET with the request's start offset.
   */
  dropAfter?: (start: number, requestNo: number) => number | undefined;
  /** Serve the whole file with 200 even when a Range is asked for. */
  ignoreRange?: boolean;
  /** Omit Content-Length (chunked transfer). */
  chunked?: boolean;
  /** Send each response body no faster than this (a slow image store: downloads stay in flight). */
  paceBytesPerSec?: number;
}

export interface RequestRecord {
  method?: string;
  path: string;
  range?: string;
  status: number;
  /** The client's address (which node asked). */
  client?: string;
}

export class ImageServer {
  readonly files = new Map<string, ServedFile>();
  readonly requests: RequestRecord[] = [];
  misbehave: Misbehaviour = {};
  private server?: Server;
  private port = 0;
  private host = '127.0.0.1';
  /** Files not registered are looked up here by name (a directory of images). */
  root?: string;
  /** Sees every request as it arrives (a server in another process prints it). */
  onRequest?: (r: RequestRecord) => void;

  /** With a certificate and key (PEM), serves https instead of http. */
  constructor(private readonly tls?: { cert: string; key: string }) {}

  serve(urlPath: string, file: ServedFile): string {
    this.files.set(urlPath, file);
    return this.url(urlPath);
  }

  url(urlPath: string): string {
    return `${this.tls ? 'https' : 'http'}://${this.host}:${this.port}${urlPath}`;
  }

  /** Listens on 127.0.0.1 and a free port unless told otherwise. */
  async start(port = 0, host = '127.0.0.1'): Promise<this> {
    const handler = (req: IncomingMessage, res: ServerResponse) => this.handle(req, res);
    this.server = this.tls ? createHttpsServer(this.tls, handler) : createServer(handler);
    this.host = host;
    await new Promise<void>((resolve) => this.server!.listen(port, host, resolve));
    this.port = (this.server.address() as AddressInfo).port;
    return this;
  }

  async stop(): Promise<void> {
    if (!this.server) return;
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server!.close(() => resolve()));
    this.server = undefined;
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const path = new URL(req.url ?? '/', 'http://x').pathname;
    const file = this.files.get(path) ?? this.fromRoot(path);
    const record: RequestRecord = { method: req.method, path, range: req.headers.range, status: 0, client: req.socket.remoteAddress };
    this.requests.push(record);
    const reply = (status: number) => {
      record.status = status;
      res.statusCode = status;
      this.onRequest?.(record);
    };
    if (!file) {
      reply(404);
      res.end('not found');
      return;
    }
    const wanted = file.authorization ?? (file.auth && `Basic ${Buffer.from(file.auth).toString('base64')}`);
    if (wanted && req.headers.authorization !== wanted) {
      reply(401);
      res.setHeader('www-authenticate', 'Basic realm="images"');
      res.end('unauthorized');
      return;
    }
    if (file.redirect) {
      reply(302);
      res.setHeader('location', file.redirect);
      res.end();
      return;
    }
    if (file.status) {
      reply(file.status);
      res.end(`status ${file.status}`);
      return;
    }
    const size = file.path ? statSync(file.path).size : Buffer.byteLength(file.body ?? '');
    const etag = `"${size}-${file.path ?? 'mem'}"`;
    let start = 0;
    const m = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
    const ifRange = req.headers['if-range'];
    if (m && !this.misbehave.ignoreRange && (!ifRange || ifRange === etag)) {
      start = Number(m[1]);
      if (start >= size) {
        reply(416);
        res.setHeader('content-range', `bytes */${size}`);
        res.end();
        return;
      }
      reply(206);
      res.setHeader('content-range', `bytes ${start}-${size - 1}/${size}`);
    } else {
      reply(200);
    }
    res.setHeader('etag', etag);
    res.setHeader('accept-ranges', 'bytes');
    if (!this.misbehave.chunked) res.setHeader('content-length', String(size - start));
    if (req.method === 'HEAD') {
      res.end();
      return;
    }
    const limit = this.misbehave.dropAfter?.(start, this.requests.length);
    if (file.body !== undefined) {
      const body = Buffer.from(file.body).subarray(start);
      if (limit !== undefined && limit < body.length) {
        res.write(body.subarray(0, limit));
        res.socket?.end();
      } else {
        res.end(body);
      }
      return;
    }
    if (limit === 0) {
      // Headers only, then the connection dies.
      res.flushHeaders();
      res.socket?.end();
      return;
    }
    if (limit !== undefined && start + limit < size) {
      // Misbehaving responses are test-sized: read the part to send, then
      // half-close (FIN after the data). destroy() could reset the connection
      // and make the client's kernel drop bytes it already received.
      const part = Buffer.alloc(limit);
      const fd = openSync(file.path!, 'r');
      readSync(fd, part, 0, limit, start);
      closeSync(fd);
      res.write(part);
      res.socket?.end();
      return;
    }
    const stream = createReadStream(file.path!, { start, highWaterMark: 1024 * 1024 });
    const pace = this.misbehave.paceBytesPerSec;
    const body = pace ? Readable.from(paced(stream, pace)) : stream;
    body.pipe(res);
    body.on('error', () => res.destroy());
  }

  private fromRoot(path: string): ServedFile | undefined {
    const name = path.slice(1);
    if (!this.root || !/^[\w.-]+$/.test(name)) return undefined;
    try {
      return statSync(join(this.root, name)).isFile() ? { path: join(this.root, name) } : undefined;
    } catch {
      return undefined;
    }
  }
}

/** Passes chunks on no faster than `bytesPerSec` on average. */
async function* paced(source: AsyncIterable<Buffer>, bytesPerSec: number): AsyncGenerator<Buffer> {
  const t0 = Date.now();
  let sent = 0;
  for await (const chunk of source) {
    // 64 KiB pieces, so that pacing is smooth and a cut connection leaves a partial chunk behind.
    for (let at = 0; at < chunk.length; at += 65536) {
      const piece = chunk.subarray(at, at + 65536);
      sent += piece.length;
      const wait = t0 + (sent / bytesPerSec) * 1000 - Date.now();
      if (wait > 0) await sleep(wait);
      yield piece;
    }
  }
}

export async function startImageServer(tls?: { cert: string; key: string }): Promise<ImageServer> {
  return new ImageServer(tls).start();
}

/**
 * A forward proxy on 127.0.0.1 that only tunnels (HTTP CONNECT), which is how
 * undici's ProxyAgent talks to proxies. Records the targets it was asked for.
 */
export async function startTunnelProxy(): Promise<{ url: string; targets: string[]; stop(): Promise<void> }> {
  const { connect } = await import('node:net');
  const targets: string[] = [];
  const server = createServer((_req, res) => {
    res.statusCode = 405;
    res.end();
  });
  server.on('connect', (req, clientSocket, head) => {
    targets.push(req.url ?? '');
    const [host, port] = (req.url ?? '').split(':');
    const upstream = connect(Number(port), host!, () => {
      clientSocket.write('HTTP/1.1 200 Connection Established\r\n\r\n');
      upstream.write(head);
      upstream.pipe(clientSocket);
      clientSocket.pipe(upstream);
    });
    upstream.on('error', () => clientSocket.destroy());
    clientSocket.on('error', () => upstream.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    targets,
    stop: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
