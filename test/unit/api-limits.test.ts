import { connect } from 'node:net';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import type { FastifyInstance } from 'fastify';
import { buildApi, type ApiOptions } from '../../src/api/server.ts';
import { TokenKeeper } from '../../src/api/token.ts';
import { CommandEngine } from '../../src/commands/engine.ts';
import { helpText, loadConfig } from '../../src/config.ts';

// Issue 21: what reaches the agent's API before the token is checked. Bodies
// are read only for POST /commands and only with the token; a request must
// arrive whole within the deadline; the inventory needs the token once held.
// The deadline tests talk raw TCP to a listening server (inject has no sockets).

const TOKEN = 's3cret-0123456789abcdef0123456789abcdef';
const UNAUTHORIZED = { faultcode: 'Client', faultstring: '401 Unauthorized: Token invalid.' };

let app: FastifyInstance | undefined;
afterEach(async () => {
  await app?.close();
  app = undefined;
});

function build(opts: ApiOptions = {}, tokens = new TokenKeeper(TOKEN)) {
  const engine = new CommandEngine();
  engine.register('demo', {
    quick: { async: false, run: async () => ({ ok: true }) },
    // Longer than the 1 s deadline of the deadline tests: answering late is fine.
    slow: { async: false, run: async () => (await new Promise((r) => setTimeout(r, 2500)), { slept: true }) },
  });
  app = buildApi({ engine, tokens, status: () => ({ started_at: 1, version: 'v' }), steps: () => [], inventory: async () => ({ cpu: { count: 2 } }) }, opts);
  return app;
}

interface Exchange {
  /** Everything the server sent. */
  response: string;
  /** The server ended the connection (rather than the client giving up). */
  closedByServer: boolean;
  /** Body bytes the client got to send. */
  sent: number;
}

/**
 * Sends `head`, then the body one byte every `dribbleMs` (all at once when
 * dribbleMs is 0), until the server closes or `giveUpMs` passes.
 */
function exchange(port: number, head: string, body: Buffer, dribbleMs: number, giveUpMs: number): Promise<Exchange> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    let response = '';
    let sent = 0;
    let timer: NodeJS.Timeout | undefined;
    const giveUp = setTimeout(() => finish(false), giveUpMs);
    function finish(closedByServer: boolean) {
      clearTimeout(giveUp);
      clearInterval(timer);
      socket.destroy();
      resolve({ response, closedByServer, sent });
    }
    socket.on('data', (d) => (response += d.toString()));
    socket.on('error', () => undefined);
    socket.on('close', () => finish(true));
    socket.on('connect', () => {
      socket.write(head);
      if (dribbleMs === 0) {
        socket.write(body);
        sent = body.length;
        return;
      }
      timer = setInterval(() => {
        if (sent < body.length && !socket.destroyed) socket.write(body.subarray(sent, ++sent));
      }, dribbleMs);
    });
  });
}

const listen = async (a: FastifyInstance) => {
  await a.listen({ host: '127.0.0.1', port: 0 });
  return (a.server.address() as AddressInfo).port;
};
const statusOf = (response: string) => Number(/^HTTP\/1\.1 (\d{3})/.exec(response)?.[1]);
const bodyOf = (response: string) => JSON.parse(response.slice(response.indexOf('\r\n\r\n') + 4));

describe('API limits before the token', () => {
  it('answers 401 to a command without the token before reading its body (not 413)', async () => {
    const a = build({ bodyLimit: 100 });
    const big = JSON.stringify({ name: 'demo.quick', params: { pad: 'x'.repeat(5000) } });
    for (const q of ['', '?agent_token=wrong']) {
      const res = await a.inject({ method: 'POST', url: `/v1/commands/${q}`, payload: big });
      expect(res.statusCode).toBe(401);
      expect(res.json()).toEqual(UNAUTHORIZED);
    }
    const withToken = await a.inject({ method: 'POST', url: `/v1/commands/?agent_token=${TOKEN}`, payload: big });
    expect(withToken.statusCode).toBe(413);
  });

  it('reads no body on other routes: 404 and 405 stay 404 and 405 whatever the body size', async () => {
    const a = build({ bodyLimit: 100 });
    const big = 'x'.repeat(5000);
    expect((await a.inject({ method: 'POST', url: '/v1/nowhere', payload: big })).statusCode).toBe(404);
    expect((await a.inject({ method: 'POST', url: '/v1/status', payload: big })).statusCode).toBe(405);
    expect((await a.inject({ method: 'PUT', url: '/v1/commands/', payload: big })).statusCode).toBe(405);
  });

  it('puts the inventory behind the token once one is held', async () => {
    const a = build();
    for (const url of ['/v1/inventory', '/inventory', '/v1/inventory?agent_token=wrong']) {
      const res = await a.inject({ url });
      expect(res.statusCode, url).toBe(401);
      expect(res.json()).toEqual(UNAUTHORIZED);
    }
    const ok = await a.inject({ url: `/v1/inventory?agent_token=${TOKEN}` });
    expect(ok.statusCode).toBe(200);
    expect(ok.json()).toEqual({ cpu: { count: 2 } });
    await a.close();
    // Before any token is known (standalone, or before lookup) it is served as before.
    const before = build({}, new TokenKeeper());
    expect((await before.inject({ url: '/v1/inventory' })).statusCode).toBe(200);
  });
});

describe('API deadlines', () => {
  const post = (query: string, length: number, extra = '') =>
    `POST /v1/commands/${query} HTTP/1.1\r\nHost: agent\r\nContent-Type: application/json\r\nContent-Length: ${length}\r\n${extra}\r\n`;

  it('cuts off a body dribbled a byte at a time with IPA\'s 408', async () => {
    const port = await listen(build({ requestTimeoutMs: 1000 }));
    const body = Buffer.from(JSON.stringify({ name: 'demo.quick', params: { pad: 'x'.repeat(2000) } }));
    // At a byte per 50 ms the body would take ~100 s; the server must end it long before the client gives up.
    const ex = await exchange(port, post(`?agent_token=${TOKEN}`, body.length), body, 50, 20_000);
    expect(ex.closedByServer).toBe(true);
    expect(ex.sent).toBeLessThan(body.length);
    expect(statusOf(ex.response)).toBe(408);
    expect(bodyOf(ex.response)).toEqual({ faultcode: 'Client', faultstring: '408 Request Timeout: the request was not received in time.' });
  });

  it('answers a dribbling client without the token at once, and still ends the connection', async () => {
    const port = await listen(build({ requestTimeoutMs: 1000 }));
    const body = Buffer.alloc(2000, 0x61);
    const ex = await exchange(port, post('', body.length), body, 50, 20_000);
    expect(ex.closedByServer).toBe(true);
    expect(ex.sent).toBeLessThan(body.length);
    expect(statusOf(ex.response)).toBe(401);
    expect(bodyOf(ex.response.split(/(?=HTTP\/1\.1 )/)[0]!)).toEqual(UNAUTHORIZED);
  });

  it('answers an announced big upload without the token at once and drops it unread', async () => {
    const port = await listen(build({ requestTimeoutMs: 60_000 }));
    // 16 MiB announced, a byte every 50 ms sent: the 401 comes first, then the close,
    // long before the request deadline (60 s) or the client giving up (20 s).
    const ex = await exchange(port, post('', 16 * 1024 * 1024), Buffer.alloc(1000, 0x61), 50, 20_000);
    expect(ex.closedByServer).toBe(true);
    expect(ex.sent).toBeLessThan(1000);
    expect(statusOf(ex.response)).toBe(401);
    expect(ex.response).toMatch(/\r\nConnection: close\r\n/i);
    expect(bodyOf(ex.response)).toEqual(UNAUTHORIZED);
  });

  it('closes a connection that never sends its headers', async () => {
    const port = await listen(build({ requestTimeoutMs: 1000 }));
    const ex = await exchange(port, 'POST /v1/commands/ HTTP/1.1\r\nHost: ag', Buffer.alloc(0), 0, 20_000);
    expect(ex.closedByServer).toBe(true);
    expect(statusOf(ex.response)).toBe(408);
  });

  it('takes the deadline from ipa-api-request-timeout (flag, env, kernel), documented in --help', () => {
    expect(helpText()).toMatch(/--api-request-timeout N\s+seconds a client has to send a whole request.*\[default: 120\]/);
    const cfg = (argv: string[], cmdlineText = '') => loadConfig({ argv: ['--standalone', ...argv], env: {}, cmdlineText });
    expect(cfg([]).apiRequestTimeout).toBe(120);
    expect(cfg(['--api-request-timeout', '5']).apiRequestTimeout).toBe(5);
    expect(cfg([], 'ipa-api-request-timeout=30').apiRequestTimeout).toBe(30);
    expect(() => build({ requestTimeoutMs: 0 })).toThrow(/must be positive/);
  });

  it('lets a command answer after the deadline once its request has arrived (POST ?wait=true)', async () => {
    const port = await listen(build({ requestTimeoutMs: 1000 }));
    const body = Buffer.from(JSON.stringify({ name: 'demo.slow', params: {} }));
    const ex = await exchange(port, post(`?agent_token=${TOKEN}&wait=true`, body.length, 'Connection: close\r\n'), body, 0, 20_000);
    expect(ex.closedByServer).toBe(true);
    expect(statusOf(ex.response)).toBe(200);
    expect(ex.response).toContain('"slept":true');
  });
});
