import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { connect, type ConnectionOptions } from 'node:tls';
import { afterEach, describe, expect, it } from 'vitest';
import { Agent } from '../../src/agent.ts';
import { loadConfig, ConfigError } from '../../src/config.ts';
import { Backoff } from '../../src/conductor/backoff.ts';
import { ConductorClient } from '../../src/conductor/client.ts';
import { postInspectionWithRetry } from '../../src/conductor/inspection-post.ts';
import { ConductorSession, heartbeatRetryMs, HEARTBEAT_RETRY_MS } from '../../src/conductor/session.ts';
import { startFakeIronic, until } from '../helpers/fake-ironic.ts';
import { freePort } from '../helpers/ironic.ts';

// What Ironic 2026.2 (39.0) asks of an agent, against stand-in conductors on
// loopback: a heartbeat answered 409 is retried 5 to 10 s later; an API that
// answers 403 (ramdisk endpoints off there) hands over to the next ipa-api-url;
// the lookup's tls_min_version / tls_cipher_suites shape the agent's HTTPS
// server (never below TLS 1.2) and agent_skip_bmc_detect its inventory; the
// inspection callback is retried with back-off when its endpoint is down.

const TOKEN = 'Ab3dEf6hIj9lMn2pQr5tUv8xYz1bCd4fGh7jKl0nPq';
const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function client(apiUrl: string) {
  const c = new ConductorClient({ apiUrl, apiVersion: '1.72', insecure: false });
  cleanups.push(() => c.close());
  return c;
}

describe('heartbeat answered 409', () => {
  it('the retry wait is 5 to 10 s, whatever the jitter', () => {
    expect(heartbeatRetryMs(() => 0)).toBe(HEARTBEAT_RETRY_MS.min);
    expect(heartbeatRetryMs(() => 1)).toBe(HEARTBEAT_RETRY_MS.max);
    for (let i = 0; i < 200; i++) {
      const ms = heartbeatRetryMs();
      expect(ms).toBeGreaterThanOrEqual(5_000);
      expect(ms).toBeLessThanOrEqual(10_000);
    }
  });

  it('the session plans a 5-10 s retry after a 409 (not heartbeat_timeout), and the retried heartbeat is accepted', async () => {
    let conflicts = 1;
    const ironic = await startFakeIronic({
      lookupToken: () => TOKEN,
      nodeToken: () => TOKEN,
      heartbeatTimeoutSec: 300,
      heartbeatOverride: () => (conflicts-- > 0 ? 409 : undefined),
    });
    cleanups.push(ironic.close);
    const waits: Array<[number, string]> = [];
    const session = new ConductorSession({
      client: client(ironic.url),
      macs: ['52:54:00:39:00:01'],
      lookupTimeoutSec: 10,
      lookupIntervalSec: 0.1,
      heartbeatBody: () => ({ callback_url: 'http://127.0.0.1:1', agent_version: 'test' }),
      onLookup: () => true,
      token: () => TOKEN,
      onWait: (ms, why) => waits.push([ms, why]),
      random: () => 0, // the shortest retry (5 s): the test waits for it
    });
    cleanups.push(() => session.stop());
    await session.lookup(10);
    void session.heartbeatLoop();
    await until('a heartbeat accepted after the 409', () => ironic.heartbeats().some((h) => h.status === 202), 20_000);
    expect(ironic.heartbeats().map((h) => h.status)).toEqual([409, 202]);
    expect(waits[0]).toEqual([5_000, 'retry']);
    // Once accepted, the next one is due at 0.3 x heartbeat_timeout (random 0).
    await until('the wait after the accepted heartbeat is planned', () => waits.length >= 2);
    expect(waits[1]).toEqual([90_000, 'interval']);
  }, 30_000);
});

describe('several ipa-api-url, the first answering 403', () => {
  it('the config takes comma-separated URLs and checks each one', () => {
    const load = (v: string) => loadConfig({ argv: [], env: {}, cmdlineText: `ipa-api-url=${v}` });
    expect(load('http://192.0.2.1:6385,http://192.0.2.2:6385').apiUrl).toBe('http://192.0.2.1:6385,http://192.0.2.2:6385');
    expect(() => load('http://192.0.2.1:6385,ftp://x')).toThrow(ConfigError);
    expect(() => load('http://192.0.2.1:6385,notaurl')).toThrow(/"notaurl" is neither a URL/);
  });

  it('lookup and heartbeats move to the second API, which then stays first', async () => {
    const off = await startFakeIronic({ lookupToken: () => TOKEN, nodeToken: () => TOKEN, forbidden: true });
    const on = await startFakeIronic({ lookupToken: () => TOKEN, nodeToken: () => TOKEN });
    cleanups.push(off.close, on.close);
    const c = client(`${off.url},${on.url}`);
    const found = await c.lookup(['52:54:00:39:00:02']);
    expect(found.kind).toBe('found');
    expect(c.apiUrl).toBe(on.url);
    expect(await c.heartbeat('node-1', { callback_url: 'http://127.0.0.1:1', agent_version: 't', agent_token: TOKEN })).toEqual({ kind: 'ok' });
    expect(off.requests.map((r) => [r.kind, r.status])).toEqual([['lookup', 403]]);
    expect(on.requests.map((r) => [r.kind, r.status])).toEqual([['lookup', 200], ['heartbeat', 202]]);
  });

  it('an unreachable first API is skipped too; every API refusing gives the 403 back', async () => {
    const on = await startFakeIronic({ lookupToken: () => TOKEN, nodeToken: () => TOKEN });
    const off = await startFakeIronic({ lookupToken: () => TOKEN, nodeToken: () => TOKEN, forbidden: true });
    cleanups.push(on.close, off.close);
    const dead = `http://127.0.0.1:${await freePort()}`;
    expect((await client(`${dead},${on.url}`).lookup(['52:54:00:39:00:03'])).kind).toBe('found');
    const refused = await client(`${off.url},${off.url}/`).lookup(['52:54:00:39:00:03']);
    expect(refused).toMatchObject({ kind: 'not-found', status: 403 });
  });
});

describe('TLS and BMC settings from the lookup', () => {
  async function agentWith(config: Record<string, unknown>) {
    const ironic = await startFakeIronic({ lookupToken: () => TOKEN, nodeToken: () => TOKEN, config: () => config });
    cleanups.push(ironic.close);
    const port = await freePort();
    const agent = new Agent(
      loadConfig({
        argv: ['--api-url', ironic.url, '--listen-host', '127.0.0.1', '--listen-port', String(port), '--advertise-port', String(port),
          '--advertise-host', '127.0.0.1', '--lookup-interval', '0', '--bootif', '01-52-54-00-39-00-04'],
        env: {},
        cmdlineText: '',
      }),
    );
    cleanups.push(() => agent.stop());
    await agent.start();
    const hello = (o: ConnectionOptions) =>
      new Promise<string>((resolve) => {
        const s = connect({ host: '127.0.0.1', port, rejectUnauthorized: false, ...o }, () => {
          resolve(`${s.getProtocol()} ${s.getCipher().name}`);
          s.end();
        });
        s.on('error', () => resolve('refused'));
      });
    return { agent, hello };
  }

  it('by default: TLS 1.3 served, 1.2 still accepted, 1.1 refused', async () => {
    const { hello } = await agentWith({});
    expect(await hello({})).toMatch(/^TLSv1\.3 /);
    expect(await hello({ maxVersion: 'TLSv1.2' })).toMatch(/^TLSv1\.2 ECDHE-/);
    expect(await hello({ minVersion: 'TLSv1', maxVersion: 'TLSv1.1' })).toBe('refused');
  });

  it('tls_min_version "1.3" (39.0\'s default): a TLS 1.2 client is refused from the lookup on', async () => {
    const { hello, agent } = await agentWith({ tls_min_version: '1.3', tls_cipher_suites: null, agent_skip_bmc_detect: false });
    expect(await hello({})).toMatch(/^TLSv1\.3 /);
    expect(await hello({ maxVersion: 'TLSv1.2' })).toBe('refused');
    expect(agent.hardware.skipBmcDetect).toBe(false);
  });

  it('tls_cipher_suites limits TLS 1.2 to those suites; tls_min_version "1.0" is not honoured (never below 1.2)', async () => {
    const { hello } = await agentWith({ tls_min_version: '1.0', tls_cipher_suites: 'ECDHE-ECDSA-AES128-GCM-SHA256' });
    expect(await hello({ maxVersion: 'TLSv1.2' })).toBe('TLSv1.2 ECDHE-ECDSA-AES128-GCM-SHA256');
    expect(await hello({ maxVersion: 'TLSv1.2', ciphers: 'ECDHE-ECDSA-AES256-GCM-SHA384' })).toBe('refused');
    expect(await hello({ minVersion: 'TLSv1', maxVersion: 'TLSv1.1' })).toBe('refused');
    expect(await hello({})).toMatch(/^TLSv1\.3 /);
  });

  it('agent_skip_bmc_detect reaches the inventory: no BMC probing, null addresses', async () => {
    const { agent } = await agentWith({ agent_skip_bmc_detect: true });
    expect(agent.hardware.skipBmcDetect).toBe(true);
    const inventory = (await agent.hardware.inventory()) as { bmc_address: unknown; bmc_v6address: unknown };
    expect(inventory.bmc_address).toBeNull();
    expect(inventory.bmc_v6address).toBeNull();
  }, 60_000);
});

describe('inspection endpoint down', () => {
  it('retries with back-off, logs why, and the third try lands', async () => {
    const statuses: number[] = [];
    let calls = 0;
    const server = createServer((req, res) => {
      req.resume();
      req.on('end', () => {
        calls++;
        const status = calls === 1 ? 503 : calls === 2 ? 409 : 202;
        statuses.push(status);
        res.writeHead(status, { 'content-type': 'application/json' }).end('{}');
      });
    });
    // The first try finds nothing listening at all: the port is taken only after it.
    const port = await freePort();
    const url = `http://127.0.0.1:${port}/v1/continue_inspection`;
    const waits: number[] = [];
    const backoff = new Backoff({ baseMs: 50, capMs: 200 });
    const next = backoff.next.bind(backoff);
    backoff.next = () => {
      const ms = next();
      waits.push(ms);
      if (waits.length === 1) server.listen(port, '127.0.0.1');
      return ms;
    };
    cleanups.push(() => new Promise<void>((r) => server.close(() => r())));
    const result = await postInspectionWithRetry(client('http://127.0.0.1:1'), url, { inventory: {} }, { backoff });
    expect(result).toMatchObject({ ok: true, status: 202 });
    expect(statuses).toEqual([503, 409, 202]);
    expect(waits.length).toBe(3); // after: unreachable, 503, 409
    expect(waits[1]!).toBeGreaterThan(waits[0]!);
  });

  it('gives up after five tries without throwing; a 400 is final at once', async () => {
    const dead = `http://127.0.0.1:${await freePort()}/v1/continue_inspection`;
    const gaveUp = await postInspectionWithRetry(client('http://127.0.0.1:1'), dead, {}, { backoff: new Backoff({ baseMs: 1, capMs: 2 }) });
    expect(gaveUp).toMatchObject({ ok: false });
    expect((gaveUp as { reason: string }).reason).toMatch(/^unreachable: /);

    let calls = 0;
    const server = createServer((req, res) => {
      calls++;
      req.resume();
      res.writeHead(400, { 'content-type': 'application/json' }).end('{"faultstring":"No lookup information provided"}');
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    cleanups.push(() => new Promise<void>((r) => server.close(() => r())));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1/continue_inspection`;
    const bad = await postInspectionWithRetry(client('http://127.0.0.1:1'), url, {}, { backoff: new Backoff({ baseMs: 1, capMs: 2 }) });
    expect(bad).toMatchObject({ ok: false, status: 400 });
    expect(calls).toBe(1);
  });
});
