import { afterEach, describe, expect, it } from 'vitest';
import type { FastifyInstance } from 'fastify';
import { buildApi } from '../../src/api/server.ts';
import { TOKEN_PLACEHOLDER, TokenKeeper } from '../../src/api/token.ts';
import { CommandEngine } from '../../src/commands/engine.ts';

// The agent token (issue 21, findings 1 and 2): Ironic's "******" placeholder
// and short values are never taken as a token, a held token is kept, and no
// command runs without a token unless the agent is --standalone.

const REAL = 'Ab3dEf6hIj9lMn2pQr5tUv8xYz1bCd4fGh7jKl0nP'; // 41 chars, like Ironic's token_urlsafe()
const NEXT = 'Zz9yXw8vUt7sRq6pOn5mLk4jIh3gFe2dCb1aZy0xW';

describe('TokenKeeper', () => {
  it('never stores the placeholder or a token shorter than 32 characters', () => {
    const t = new TokenKeeper();
    expect(t.offer(TOKEN_PLACEHOLDER)).toBe('placeholder');
    expect(t.offer('x'.repeat(31))).toBe('unusable');
    expect(t.offer(undefined)).toBe('absent');
    expect(t.offer('')).toBe('absent');
    expect(t.value).toBeUndefined();
    expect(new TokenKeeper(TOKEN_PLACEHOLDER).value).toBeUndefined();
    expect(new TokenKeeper('short').value).toBeUndefined();
  });

  it('keeps a held token when lookup answers the placeholder, and takes a genuinely new one', () => {
    const t = new TokenKeeper(REAL);
    expect(t.offer(TOKEN_PLACEHOLDER)).toBe('placeholder');
    expect(t.offer('y'.repeat(20))).toBe('unusable');
    expect(t.value).toBe(REAL);
    expect(t.offer(REAL)).toBe('same');
    expect(t.offer(NEXT)).toBe('replaced');
    expect(t.value).toBe(NEXT);
    expect(t.allowsCommand(REAL)).toBe(false);
    expect(t.allowsCommand(NEXT)).toBe(true);
  });

  it('refuses every command while no token is held, unless standalone', () => {
    const t = new TokenKeeper();
    for (const c of [undefined, '', TOKEN_PLACEHOLDER, REAL]) expect(t.allowsCommand(c)).toBe(false);
    const s = new TokenKeeper(undefined, { standalone: true });
    expect(s.allowsCommand(undefined)).toBe(true);
    // A token given to a standalone agent is required all the same.
    const st = new TokenKeeper(REAL, { standalone: true });
    expect(st.allowsCommand(undefined)).toBe(false);
    expect(st.allowsCommand(REAL)).toBe(true);
  });
});

describe('POST /v1/commands/ and the token', () => {
  let app: FastifyInstance | undefined;
  let ran: string[];
  afterEach(async () => {
    await app?.close();
    app = undefined;
  });

  async function api(tokens: TokenKeeper) {
    ran = [];
    const engine = new CommandEngine();
    engine.register('standby', { power_off: { async: false, run: async () => (ran.push('power_off'), {}) } });
    app = buildApi({ engine, tokens, status: () => ({ started_at: 1, version: 'v' }), steps: () => [], inventory: async () => ({}) });
    await app.ready();
    return (query: string) =>
      app!.inject({ method: 'POST', url: `/v1/commands/${query}`, payload: JSON.stringify({ name: 'standby.power_off', params: {} }) });
  }

  it('before lookup (no token yet): standby.power_off is refused with 401 and IPA\'s body, and nothing runs', async () => {
    const post = await api(new TokenKeeper());
    for (const q of ['', '?agent_token=', `?agent_token=${encodeURIComponent(TOKEN_PLACEHOLDER)}`, `?agent_token=${REAL}`]) {
      const res = await post(q);
      expect(res.statusCode, q).toBe(401);
      expect(res.json()).toEqual({ faultcode: 'Client', faultstring: '401 Unauthorized: Token invalid.' });
    }
    expect(ran).toEqual([]);
  });

  it('after a lookup that answered "******": still no token, ?agent_token=****** is refused', async () => {
    const tokens = new TokenKeeper();
    tokens.offer(TOKEN_PLACEHOLDER);
    const post = await api(tokens);
    expect((await post(`?agent_token=${encodeURIComponent(TOKEN_PLACEHOLDER)}`)).statusCode).toBe(401);
    expect(ran).toEqual([]);
  });

  it('with a held token, the placeholder is refused and the token runs the command', async () => {
    const tokens = new TokenKeeper(REAL);
    tokens.offer(TOKEN_PLACEHOLDER);
    const post = await api(tokens);
    expect((await post(`?agent_token=${encodeURIComponent(TOKEN_PLACEHOLDER)}`)).statusCode).toBe(401);
    expect(ran).toEqual([]);
    expect((await post(`?agent_token=${REAL}`)).statusCode).toBe(200);
    expect(ran).toEqual(['power_off']);
  });

  it('--standalone: a command without a token runs', async () => {
    const post = await api(new TokenKeeper(undefined, { standalone: true }));
    expect((await post('')).statusCode).toBe(200);
    expect(ran).toEqual(['power_off']);
  });
});
