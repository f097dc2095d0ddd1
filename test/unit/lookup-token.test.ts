import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, describe, expect, it } from 'vitest';
import { Agent } from '../../src/agent.ts';
import { TOKEN_PLACEHOLDER } from '../../src/api/token.ts';
import { loadConfig } from '../../src/config.ts';
import { freePort } from '../helpers/ironic.ts';

// The agent's lookup/heartbeat loop against a stand-in conductor on loopback
// that answers as Ironic's ramdisk API does (api/controllers/v1/ramdisk.py,
// conductor/manager.py): lookup hands out the node's token, or "******" when
// the node already holds one; a heartbeat without the node's token is refused
// with 400 "Invalid or missing agent token received.".
// (The same story against a real Ironic: test/integration/security-token.test.ts.)

const REAL = 'Ab3dEf6hIj9lMn2pQr5tUv8xYz1bCd4fGh7jKl0nPq'; // 42 chars, like secrets.token_urlsafe()

interface Seen {
  at: number;
  kind: 'lookup' | 'heartbeat';
  token?: string;
  status: number;
}

/** `lookupToken()`: what lookup answers in config.agent_token; `nodeToken()`: what heartbeats must carry. */
async function fakeIronic(lookupToken: () => string | undefined, nodeToken: () => string | undefined) {
  const seen: Seen[] = [];
  const server: Server = createServer((req, res) => {
    let body = '';
    req.on('data', (d: Buffer) => (body += d.toString()));
    req.on('end', () => {
      const reply = (status: number, value: unknown) => {
        res.writeHead(status, { 'content-type': 'application/json' });
        res.end(JSON.stringify(value));
      };
      if (req.url?.startsWith('/v1/lookup')) {
        seen.push({ at: Date.now(), kind: 'lookup', status: 200 });
        return reply(200, {
          node: { uuid: 'node-1', provision_state: 'clean wait' },
          config: { heartbeat_timeout: 300, agent_token: lookupToken(), agent_token_required: true },
        });
      }
      if (req.url === '/v1/heartbeat/node-1') {
        const token = (JSON.parse(body) as { agent_token?: string }).agent_token;
        const ok = token !== undefined && token === nodeToken();
        seen.push({ at: Date.now(), kind: 'heartbeat', token, status: ok ? 202 : 400 });
        if (ok) return reply(202, {});
        return reply(400, { error_message: JSON.stringify({ faultstring: 'Invalid or missing agent token received.' }) });
      }
      reply(404, {});
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return { url, seen, close: () => new Promise<void>((r) => server.close(() => r())) };
}

async function until(what: string, cond: () => boolean, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`never happened: ${what}`);
    await sleep(20);
  }
}

describe('lookup answering "******"', () => {
  const cleanups: Array<() => Promise<void>> = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  async function startAgent(apiUrl: string, extra: string[] = []) {
    const port = await freePort();
    const config = loadConfig({
      argv: ['--api-url', apiUrl, '--listen-host', '127.0.0.1', '--listen-port', String(port), '--advertise-port', String(port),
        '--no-enable-auto-tls', '--lookup-interval', '0', '--bootif', '01-52-54-00-21-00-01', ...extra],
      env: {},
      cmdlineText: '',
    });
    const agent = new Agent(config);
    cleanups.push(() => agent.stop());
    await agent.start();
    const post = (query: string) =>
      fetch(`http://127.0.0.1:${port}/v1/commands/${query}`, { method: 'POST', body: JSON.stringify({ name: 'standby.power_off', params: {} }) });
    return { agent, post };
  }

  it('a restarted agent (no token) stays token-less, sends no heartbeat, backs off its lookups, and takes a real token once Ironic issues one', async () => {
    let issued: string | undefined; // Ironic holds a token the restarted agent never saw
    const ironic = await fakeIronic(() => issued ?? TOKEN_PLACEHOLDER, () => issued ?? 'the-lost-token-of-the-killed-agent-0123456789');
    cleanups.push(ironic.close);
    const { agent, post } = await startAgent(ironic.url);

    await until('six lookups', () => ironic.seen.filter((s) => s.kind === 'lookup').length >= 6);
    expect(agent.tokens.value).toBeUndefined();
    expect(ironic.seen.filter((s) => s.kind === 'heartbeat')).toEqual([]);
    // Each wait is at least 0.75 of a doubling nominal delay from 100 ms
    // (lower bounds only: a slow machine makes the gaps longer, never shorter).
    const lookups = ironic.seen.filter((s) => s.kind === 'lookup').map((s) => s.at);
    for (let k = 1; k < lookups.length; k++) {
      expect(lookups[k]! - lookups[k - 1]!, `gap ${k}`).toBeGreaterThanOrEqual(Math.floor(0.75 * 100 * 2 ** (k - 1)) - 5);
    }
    const refused = await post(`?agent_token=${encodeURIComponent(TOKEN_PLACEHOLDER)}`);
    expect(refused.status).toBe(401);
    expect(await refused.json()).toEqual({ faultcode: 'Client', faultstring: '401 Unauthorized: Token invalid.' });
    expect((await post('')).status).toBe(401);

    // Ironic wipes the old token (the step timed out, a power cycle) and hands out a new one.
    issued = REAL;
    await until('an accepted heartbeat', () => ironic.seen.some((s) => s.kind === 'heartbeat' && s.status === 202));
    expect(agent.tokens.value).toBe(REAL);
    expect(ironic.seen.filter((s) => s.kind === 'heartbeat').map((s) => s.token)).toEqual([REAL]);
  });

  it('a token given at boot (virtual media\'s ipa-agent-token) is kept: heartbeats carry it, "******" is never used', async () => {
    const ironic = await fakeIronic(() => TOKEN_PLACEHOLDER, () => REAL);
    cleanups.push(ironic.close);
    const { agent, post } = await startAgent(ironic.url, ['--agent-token', REAL]);
    await until('an accepted heartbeat', () => ironic.seen.some((s) => s.kind === 'heartbeat'));
    expect(ironic.seen.filter((s) => s.kind === 'heartbeat')).toMatchObject([{ token: REAL, status: 202 }]);
    expect(agent.tokens.value).toBe(REAL);
    expect((await post(`?agent_token=${encodeURIComponent(TOKEN_PLACEHOLDER)}`)).status).toBe(401);
  });
});
