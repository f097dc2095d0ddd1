import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { FastifyInstance } from 'fastify';
import { buildApi } from '../../src/api/server.ts';
import { TokenKeeper } from '../../src/api/token.ts';
import { CommandEngine } from '../../src/commands/engine.ts';
import { CleaningError } from '../../src/commands/errors.ts';

// IPA's wire behaviour, request by request (the contract's table), through
// fastify's inject: status codes, faultstrings, result shapes, token rules.

function deferred() {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
}

describe('IPA v1 API', () => {
  let engine: CommandEngine;
  let tokens: TokenKeeper;
  let app: FastifyInstance;
  let ran: string[];
  let gate: ReturnType<typeof deferred>;

  beforeEach(async () => {
    ran = [];
    gate = deferred();
    engine = new CommandEngine();
    engine.register('clean', {
      get_clean_steps: { async: false, run: async () => (ran.push('get'), { clean_steps: {} }) },
      execute_clean_step: {
        async: true,
        failureClass: CleaningError,
        run: async (p) => {
          ran.push('exec');
          await gate.promise;
          if (p.fail) throw new Error('disk on fire');
          return { clean_result: 'ok' };
        },
      },
    });
    engine.register('standby', {
      sync: { async: false, run: async () => { throw new Error('sync exploded'); } },
    });
    tokens = new TokenKeeper('s3cret-0123456789abcdef0123456789abcdef');
    app = buildApi({ engine, tokens, status: () => ({ started_at: 1, version: 'v' }), steps: () => [], inventory: async () => ({}) });
    await app.ready();
  });
  afterEach(async () => {
    gate.resolve();
    await app.close();
  });

  const post = (body: unknown, query = '?agent_token=s3cret-0123456789abcdef0123456789abcdef') =>
    app.inject({ method: 'POST', url: `/v1/commands/${query}`, payload: typeof body === 'string' ? body : JSON.stringify(body), headers: { 'content-type': 'text/plain' } });

  it('serves the version documents and status', async () => {
    const root = (await app.inject({ url: '/' })).json();
    expect(root.default_version.id).toBe('v1');
    const v1 = (await app.inject({ url: '/v1/' })).json();
    expect(Object.keys(v1)).toEqual(expect.arrayContaining(['commands', 'status', 'media_types', 'id', 'links']));
    expect((await app.inject({ url: '/v1/status' })).json()).toEqual({ started_at: 1, version: 'v' });
    const redirect = await app.inject({ url: '/v1/commands' });
    expect(redirect.statusCode).toBe(308);
    expect(redirect.headers.location).toBe('/v1/commands/');
  });

  it('runs a synchronous command and answers its five-key result (paths without /v1 too)', async () => {
    const res = await app.inject({ method: 'POST', url: '/commands/?agent_token=s3cret-0123456789abcdef0123456789abcdef', payload: '{"name":"clean.get_clean_steps","params":{}}' });
    expect(res.statusCode).toBe(200);
    const r = res.json();
    expect(Object.keys(r).sort()).toEqual(['command_error', 'command_name', 'command_result', 'command_status', 'id']);
    expect(r).toMatchObject({ command_name: 'get_clean_steps', command_status: 'SUCCEEDED', command_error: null });
  });

  it('refuses a missing or wrong token with 401 and runs nothing', async () => {
    for (const q of ['', '?agent_token=wrong', '?agent_token=']) {
      const res = await post({ name: 'clean.get_clean_steps', params: {} }, q);
      expect(res.statusCode).toBe(401);
      expect(res.json()).toEqual({ faultcode: 'Client', faultstring: '401 Unauthorized: Token invalid.' });
    }
    expect(ran).toEqual([]);
    expect(engine.list()).toEqual([]);
  });

  it('answers 400 for malformed bodies (the token first: without it, 401 before the body is read)', async () => {
    for (const body of ['{nope', '', '[]', '"x"', '{"name":"clean.get_clean_steps"}', '{"name":1,"params":{}}', '{"name":"a.b","params":[]}']) {
      expect((await post(body, '')).statusCode, body).toBe(401);
      const res = await post(body);
      expect(res.statusCode, body).toBe(400);
      expect(res.json().faultcode).toBe('Client');
      expect(res.json().faultstring).toMatch(/^400 Bad Request: /);
    }
  });

  it('maps naming errors onto IPA\'s codes', async () => {
    const noDot = await post({ name: 'nodot', params: {} });
    expect([noDot.statusCode, noDot.json().faultstring]).toEqual([400, 'Invalid command: Command name must be of the form <extension>.<name>']);
    const ext = await post({ name: 'nope.x', params: {} });
    expect([ext.statusCode, ext.json().faultstring]).toEqual([404, 'Not found: Extension with id nope not found.']);
    const cmd = await post({ name: 'clean.nope', params: {} });
    expect([cmd.statusCode, cmd.json().faultstring]).toEqual([400, 'Invalid command: Unknown command: nope']);
    const id = await app.inject({ url: '/v1/commands/does-not-exist' });
    expect([id.statusCode, id.json().faultstring]).toEqual([404, 'Not found: Command Result with id does-not-exist not found.']);
    expect((await app.inject({ url: '/v2/zzz' })).statusCode).toBe(404);
    const wrongMethod = await app.inject({ method: 'DELETE', url: '/v1/status' });
    expect(wrongMethod.statusCode).toBe(405);
    expect(wrongMethod.json().faultstring).toMatch(/^405 Method Not Allowed: /);
  });

  it('runs one command at a time: a second one gets 409 while the first runs, and the API keeps serving', async () => {
    const first = await post({ name: 'clean.execute_clean_step', params: {} });
    expect(first.json().command_status).toBe('RUNNING');
    const second = await post({ name: 'clean.get_clean_steps', params: {} });
    expect(second.statusCode).toBe(409);
    expect(second.json().faultstring).toBe('Agent is busy: executing command execute_clean_step');
    // A waiting GET does not block the server.
    const waiting = app.inject({ url: `/v1/commands/${first.json().id}?wait=true` });
    expect((await app.inject({ url: '/v1/status' })).statusCode).toBe(200);
    gate.resolve();
    expect((await waiting).json().command_status).toBe('SUCCEEDED');
    expect(ran).toEqual(['exec']);
    expect(engine.list().map((r) => r.command_name)).toEqual(['execute_clean_step']);
  });

  it('reports a command that fails while running as a 200 FAILED result with IPA\'s error object', async () => {
    gate.resolve();
    const r = (await post({ name: 'clean.execute_clean_step', params: { fail: true } }, '?agent_token=s3cret-0123456789abcdef0123456789abcdef&wait=true')).json();
    expect(r.command_status).toBe('FAILED');
    expect(r.command_error).toEqual({ type: 'CleaningError', code: 500, message: 'Clean step failed', details: 'disk on fire' });
    const sync = await post({ name: 'standby.sync', params: {} });
    expect(sync.statusCode).toBe(200);
    expect(sync.json().command_status).toBe('FAILED');
    expect(sync.json().command_error.details).toBe('sync exploded');
    expect((await app.inject({ url: '/v1/commands/' })).json().commands).toHaveLength(2);
  });

  it('guards command reads once a GET carried a token (IPA 10 rule), and leaves them open before', async () => {
    expect((await app.inject({ url: '/v1/commands/' })).statusCode).toBe(200);
    expect((await app.inject({ url: '/v1/commands/?agent_token=s3cret-0123456789abcdef0123456789abcdef' })).statusCode).toBe(200);
    const later = await app.inject({ url: '/v1/commands/' });
    expect(later.statusCode).toBe(401);
    expect(later.json().faultstring).toBe('401 Unauthorized: Token invalid.');
    expect((await app.inject({ url: '/v1/commands/?agent_token=bad' })).statusCode).toBe(401);
    expect((await app.inject({ url: '/v1/commands/?agent_token=s3cret-0123456789abcdef0123456789abcdef' })).statusCode).toBe(200);
  });

  it('a made-up token on a GET is refused but does not lock token-less readers (Ironic 21.4) out', async () => {
    for (const url of ['/v1/commands/?agent_token=made-up', '/commands/x?agent_token=made-up']) {
      const res = await app.inject({ url });
      expect(res.statusCode).toBe(401);
      expect(res.json()).toEqual({ faultcode: 'Client', faultstring: '401 Unauthorized: Token invalid.' });
    }
    expect((await app.inject({ url: '/v1/commands/' })).statusCode).toBe(200);
    // The conductor's own token switches the rule on, for every command route.
    expect((await app.inject({ url: '/v1/commands/?agent_token=s3cret-0123456789abcdef0123456789abcdef' })).statusCode).toBe(200);
    expect((await app.inject({ url: '/v1/commands/' })).statusCode).toBe(401);
    expect((await app.inject({ url: '/v1/commands/some-id' })).statusCode).toBe(401);
  });

  it('limits the body size with a fault, not a crash', async () => {
    const small = buildApi({ engine, tokens, status: () => ({ started_at: 1, version: 'v' }), steps: () => [], inventory: async () => ({}) }, { bodyLimit: 100 });
    const res = await small.inject({ method: 'POST', url: '/v1/commands/?agent_token=s3cret-0123456789abcdef0123456789abcdef', payload: JSON.stringify({ name: 'clean.get_clean_steps', params: { x: 'y'.repeat(500) } }) });
    expect(res.statusCode).toBe(413);
    expect(res.json().faultstring).toMatch(/^413 /);
    await small.close();
  });
});
