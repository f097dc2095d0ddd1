import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { isIPv6 } from 'node:net';
import { classifyIp } from '../system/network/addresses.ts';

// One HTTP(S) request to Ironic (lookup, heartbeat, inspection) on Node's own
// http client. Not undici: its module and WebAssembly parser cost the idle
// agent ~10 MiB of RSS (docs/footprint.md), and these few small requests
// seconds apart need none of it. A connection per request (no keep-alive):
// nothing to go stale between heartbeats.
//
// A link-local conductor (http://[fe80::1%25eth0]:6385) is reached through its
// zone: the URL comes zone-free (src/base/url-zone.ts splits it off) and the
// zone is added back to the host we connect to, never to the Host header.

export interface ConductorHttpOptions {
  rejectUnauthorized: boolean;
  ca?: string;
  /** No byte for this long (connect, answer, body): the request fails. */
  timeoutMs: number;
}

export interface ConductorRequest {
  method?: string;
  headers: Record<string, string>;
  body?: string;
}

export interface ConductorAnswer {
  statusCode: number;
  text: string;
}

export function conductorRequest(
  url: string,
  zone: string | undefined,
  init: ConductorRequest,
  opts: ConductorHttpOptions,
): Promise<ConductorAnswer> {
  const u = new URL(url);
  let host = u.hostname.startsWith('[') ? u.hostname.slice(1, -1) : u.hostname;
  if (zone && isIPv6(host) && classifyIp(host) === 'link-local') host = `${host}%${zone}`;
  const https = u.protocol === 'https:';
  if (!https && u.protocol !== 'http:') return Promise.reject(new Error(`unsupported API URL ${url}`));
  const body = init.body === undefined ? undefined : Buffer.from(init.body, 'utf8');
  const headers: Record<string, string> = { ...init.headers, host: u.host };
  if (body) headers['content-length'] = String(body.length);
  return new Promise((resolve, reject) => {
    const onResponse = (res: IncomingMessage) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ statusCode: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    };
    const common = {
      host,
      port: u.port || undefined,
      path: `${u.pathname}${u.search}`,
      method: init.method ?? 'GET',
      headers,
      agent: false as const,
      timeout: opts.timeoutMs,
    };
    const req = https
      ? httpsRequest({ ...common, rejectUnauthorized: opts.rejectUnauthorized, ...(opts.ca ? { ca: opts.ca } : {}) }, onResponse)
      : httpRequest(common, onResponse);
    req.on('timeout', () => req.destroy(new Error(`no answer from ${u.host} within ${opts.timeoutMs} ms`)));
    req.on('error', reject);
    req.end(body);
  });
}
