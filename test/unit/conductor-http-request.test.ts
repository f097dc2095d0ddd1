import { writeFileSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateSelfSigned } from '../../src/api/tls.ts';
import { ConductorClient } from '../../src/conductor/client.ts';
import { conductorRequest } from '../../src/conductor/http-request.ts';

// The conductor client's requests go through Node's own http/https (undici is
// not loaded at idle: docs/footprint.md). What it must keep doing: method,
// headers and body as given, the Host of the URL, TLS verified against the
// CA file (or not at all when insecure), a timeout when Ironic goes silent.

const seen: Array<{ method?: string; url?: string; host?: string; type?: string; body: string }> = [];
function record(req: IncomingMessage, done: (body: string) => void) {
  let body = '';
  req.on('data', (d: Buffer) => (body += d));
  req.on('end', () => {
    seen.push({ method: req.method, url: req.url, host: req.headers.host, type: req.headers['content-type'], body });
    done(body);
  });
}

const work = mkdtempSync(join(tmpdir(), 'conductor-http-'));
const tlsPair = generateSelfSigned('127.0.0.1');
const cafile = join(work, 'ca.pem');
writeFileSync(cafile, tlsPair.cert);
let plain: Server;
let secure: Server;
let silent: Server;
const url = (s: Server, scheme = 'http') => `${scheme}://127.0.0.1:${(s.address() as AddressInfo).port}`;

beforeAll(async () => {
  plain = createServer((req, res) => record(req, (body) => {
    if (req.url === '/v1/heartbeat/n1') {
      res.writeHead(202).end();
    } else if (req.url?.startsWith('/v1/lookup')) {
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ node: { uuid: 'n1' }, config: { heartbeat_timeout: 300 } }));
    } else res.writeHead(404).end(JSON.stringify({ error_message: JSON.stringify({ faultstring: `no ${body}` }) }));
  }));
  secure = createHttpsServer({ cert: tlsPair.cert, key: tlsPair.key }, (req, res) => record(req, () => res.end('secure')));
  silent = createServer(() => undefined); // never answers
  for (const s of [plain, secure, silent]) await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
});
afterAll(async () => {
  for (const s of [plain, secure, silent]) {
    s.closeAllConnections?.();
    await new Promise((r) => s.close(r));
  }
  rmSync(work, { recursive: true, force: true });
});

describe('conductor requests on node:http', () => {
  it('lookup and heartbeat: method, path, headers, body, Host as in the URL', async () => {
    const c = new ConductorClient({ apiUrl: `${url(plain)}/`, apiVersion: '1.68', insecure: false });
    expect(c.apiUrl).toBe(url(plain));
    const found = await c.lookup(['52:54:00:12:34:56'], 'n1');
    expect(found).toEqual({ kind: 'found', result: { node: { uuid: 'n1' }, config: { heartbeat_timeout: 300 } } });
    expect(await c.heartbeat('n1', { callback_url: 'http://10.0.0.2:9999', agent_version: '10.0.0', agent_token: 't' })).toEqual({ kind: 'ok' });
    expect(await c.heartbeat('n 2', { callback_url: 'x', agent_version: 'y' })).toEqual({ kind: 'relookup', status: 404, message: expect.stringContaining('no ') });
    const [lookup, hb] = seen.slice(-3);
    expect(lookup).toMatchObject({ method: 'GET', url: '/v1/lookup?addresses=52%3A54%3A00%3A12%3A34%3A56&node_uuid=n1', host: `127.0.0.1:${(plain.address() as AddressInfo).port}` });
    expect(hb).toMatchObject({ method: 'POST', url: '/v1/heartbeat/n1', type: 'application/json' });
    expect(JSON.parse(hb!.body)).toEqual({ callback_url: 'http://10.0.0.2:9999', agent_version: '10.0.0', agent_token: 't' });
    expect(seen.at(-1)!.url).toBe('/v1/heartbeat/n%202');
  });

  it('https: verified against the CA file, refused without it, accepted unverified when insecure', async () => {
    const withCa = new ConductorClient({ apiUrl: url(secure, 'https'), apiVersion: '1.68', insecure: false, cafile });
    expect((await withCa.postInspection(`${url(secure, 'https')}/v1/continue_inspection`, { a: 1 })).body).toBe('secure');
    const opts = { rejectUnauthorized: true, timeoutMs: 5000 };
    await expect(conductorRequest(`${url(secure, 'https')}/v1/lookup`, undefined, { headers: {} }, opts)).rejects.toThrow(/self.signed|certificate/i);
    const insecure = await conductorRequest(`${url(secure, 'https')}/v1/lookup`, undefined, { headers: {} }, { rejectUnauthorized: false, timeoutMs: 5000 });
    expect(insecure).toEqual({ statusCode: 200, text: 'secure' });
  });

  it('fails after the timeout when Ironic accepts the connection and says nothing', async () => {
    const t0 = Date.now();
    await expect(conductorRequest(`${url(silent)}/v1/lookup`, undefined, { headers: {} }, { rejectUnauthorized: true, timeoutMs: 300 })).rejects.toThrow(/no answer from 127\.0\.0\.1:\d+ within 300 ms/);
    expect(Date.now() - t0).toBeLessThan(3000);
  });

  it('refuses a scheme other than http(s)', async () => {
    await expect(conductorRequest('ftp://127.0.0.1/v1', undefined, { headers: {} }, { rejectUnauthorized: true, timeoutMs: 300 })).rejects.toThrow(/unsupported API URL/);
  });
});

describe('undici stays off the idle path', () => {
  it('no module of the agent imports it statically (only types; source.ts loads it when a download needs it)', async () => {
    const { readdirSync, readFileSync } = await import('node:fs');
    const root = join(import.meta.dirname, '..', '..');
    const files = ['src', 'steps'].flatMap((d) =>
      readdirSync(join(root, d), { recursive: true, encoding: 'utf8' }).filter((f) => f.endsWith('.ts')).map((f) => join(d, f)),
    );
    const offenders = files.filter((f) => {
      const text = readFileSync(join(root, f), 'utf8');
      return /^import\s+(?!type\b)[^;]*from\s+'undici'/m.test(text);
    });
    // discovery-http.ts builds undici dispatchers for scoped URLs; only tests import it now.
    expect(offenders).toEqual(['src/conductor/discovery-http.ts']);
    const importers = files.filter((f) => /from '\.{1,2}\/(?:conductor\/)?discovery-http\.ts'/.test(readFileSync(join(root, f), 'utf8')));
    expect(importers).toEqual([]);
  });
});
