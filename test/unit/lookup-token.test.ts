import { afterEach, describe, expect, it } from 'vitest';
import { Agent } from '../../src/agent.ts';
import { TOKEN_PLACEHOLDER } from '../../src/api/token.ts';
import { loadConfig } from '../../src/config.ts';
import { startFakeIronic, until } from '../helpers/fake-ironic.ts';
import { freePort } from '../helpers/ironic.ts';

// The agent's lookup/heartbeat loop against a stand-in conductor on loopback
// that answers as Ironic's ramdisk API does (api/controllers/v1/ramdisk.py,
// conductor/manager.py): lookup hands out the node's token, or "******" when
// the node already holds one; a heartbeat without the node's token is refused
// with 400 "Invalid or missing agent token received.".
// (The same story against a real Ironic: test/integration/security-token.test.ts.)

const REAL = 'Ab3dEf6hIj9lMn2pQr5tUv8xYz1bCd4fGh7jKl0nPq'; // 42 chars, like secrets.token_urlsafe()

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
    const ironic = await startFakeIronic({
      lookupToken: () => issued ?? TOKEN_PLACEHOLDER,
      nodeToken: () => issued ?? 'the-lost-token-of-the-killed-agent-0123456789',
    });
    cleanups.push(ironic.close);
    const { agent, post } = await startAgent(ironic.url);

    await until('six lookups', () => ironic.lookups().length >= 6);
    expect(agent.tokens.value).toBeUndefined();
    expect(ironic.heartbeats()).toEqual([]);
    // Each wait is at least 0.75 of a doubling nominal delay from 100 ms
    // (lower bounds only: a slow machine makes the gaps longer, never shorter).
    const lookups = ironic.lookups().map((s) => s.at);
    for (let k = 1; k < lookups.length; k++) {
      expect(lookups[k]! - lookups[k - 1]!, `gap ${k}`).toBeGreaterThanOrEqual(Math.floor(0.75 * 100 * 2 ** (k - 1)) - 5);
    }
    const refused = await post(`?agent_token=${encodeURIComponent(TOKEN_PLACEHOLDER)}`);
    expect(refused.status).toBe(401);
    expect(await refused.json()).toEqual({ faultcode: 'Client', faultstring: '401 Unauthorized: Token invalid.' });
    expect((await post('')).status).toBe(401);

    // Ironic wipes the old token (the step timed out, a power cycle) and hands out a new one.
    issued = REAL;
    await until('an accepted heartbeat', () => ironic.heartbeats().some((s) => s.status === 202));
    expect(agent.tokens.value).toBe(REAL);
    expect(ironic.heartbeats().map((s) => s.body?.agent_token)).toEqual([REAL]);
  });

  it('a token given at boot (virtual media\'s ipa-agent-token) is kept: heartbeats carry it, "******" is never used', async () => {
    const ironic = await startFakeIronic({ lookupToken: () => TOKEN_PLACEHOLDER, nodeToken: () => REAL });
    cleanups.push(ironic.close);
    const { agent, post } = await startAgent(ironic.url, ['--agent-token', REAL]);
    await until('an accepted heartbeat', () => ironic.heartbeats().length > 0);
    expect(ironic.heartbeats()).toMatchObject([{ body: { agent_token: REAL }, status: 202 }]);
    expect(agent.tokens.value).toBe(REAL);
    expect((await post(`?agent_token=${encodeURIComponent(TOKEN_PLACEHOLDER)}`)).status).toBe(401);
  });
});
