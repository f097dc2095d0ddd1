import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { buildApi, type ApiServer } from '../../src/api/server.ts';
import { TokenKeeper } from '../../src/api/token.ts';
import { CommandEngine } from '../../src/commands/engine.ts';

// The routing of IPA's v1 API (issue 15): the v1 routes are one fastify plugin
// registered under /v1 and at the root, and whether a request that no route
// takes gets 405 or 404 is asked of fastify's router, so it agrees with how
// the router matched the request (percent-encoding included).

const TOKEN = 's3cret-0123456789abcdef0123456789abcdef';
const NOT_ALLOWED = { faultcode: 'Client', faultstring: '405 Method Not Allowed: The method is not allowed for the requested URL.' };
const NOT_FOUND = { faultcode: 'Client', faultstring: '404 Not Found: The requested URL was not found on the server.' };

describe('IPA v1 API routing', () => {
  let app: ApiServer;
  beforeEach(async () => {
    const engine = new CommandEngine();
    engine.register('demo', { quick: { async: false, run: async () => ({ ok: true }) } });
    app = buildApi({
      engine,
      tokens: new TokenKeeper(TOKEN),
      status: () => ({ started_at: 1, version: 'v' }),
      steps: () => [{ step: 'x' }],
      inventory: async () => ({ cpu: { count: 2 } }),
    });
    await app.ready();
  });
  afterEach(async () => {
    await app.close();
  });

  it('serves every v1 route under /v1 and at the root alike', async () => {
    for (const prefix of ['/v1', '']) {
      expect((await app.inject({ url: `${prefix}/status` })).json(), prefix).toEqual({ started_at: 1, version: 'v' });
      expect((await app.inject({ url: `${prefix}/steps` })).json(), prefix).toEqual([{ step: 'x' }]);
      expect((await app.inject({ url: `${prefix}/inventory?agent_token=${TOKEN}` })).json(), prefix).toEqual({ cpu: { count: 2 } });
      const redirect = await app.inject({ url: `${prefix}/commands` });
      expect([redirect.statusCode, redirect.headers.location], prefix).toEqual([308, `${prefix}/commands/`]);
      const posted = await app.inject({ method: 'POST', url: `${prefix}/commands/?agent_token=${TOKEN}`, payload: '{"name":"demo.quick","params":{}}' });
      expect(posted.statusCode, prefix).toBe(200);
      const id = posted.json().id;
      expect((await app.inject({ url: `${prefix}/commands/${id}?agent_token=${TOKEN}` })).json().command_result, prefix).toEqual({ ok: true });
      expect((await app.inject({ url: `${prefix}/commands/?agent_token=${TOKEN}` })).json().commands.map((c: { id: string }) => c.id), prefix).toContain(id);
    }
  });

  it('answers 405 where another method serves the path, 404 where none does', async () => {
    for (const [method, url] of [
      ['DELETE', '/'],
      ['POST', '/v1/'],
      ['DELETE', '/v1/status'],
      ['PUT', '/status'],
      ['POST', '/v1/steps'],
      ['PATCH', '/inventory'],
      ['DELETE', '/v1/commands/'],
      ['DELETE', '/v1/commands/some-id?agent_token=x'],
      ['PROPFIND', '/commands/some-id'], // a method fastify has no routes for
    ] as const) {
      const res = await app.inject({ method, url });
      expect([res.statusCode, res.json()], `${method} ${url}`).toEqual([405, NOT_ALLOWED]);
    }
    for (const [method, url] of [
      ['GET', '/v2/status'],
      ['DELETE', '/v1/zzz'],
      ['GET', '/v1/commands/some-id/more'],
      ['GET', '/v1/status/'],
      // Paths that only redirect to their slashed form are no resources (as in IPA).
      ['DELETE', '/v1'],
      ['POST', '/v1/commands'],
      ['DELETE', '/commands'],
    ] as const) {
      const res = await app.inject({ method, url });
      expect([res.statusCode, res.json()], `${method} ${url}`).toEqual([404, NOT_FOUND]);
    }
  });

  it('decides 405 as the router matches: a percent-encoded path GET serves is 405 for other methods', async () => {
    expect((await app.inject({ url: '/v1/st%61tus' })).json()).toEqual({ started_at: 1, version: 'v' });
    const res = await app.inject({ method: 'DELETE', url: '/v1/st%61tus' });
    expect([res.statusCode, res.json()]).toEqual([405, NOT_ALLOWED]);
  });

  it('validates the query with its TypeBox schema and answers in IPA\'s error body', async () => {
    const res = await app.inject({ url: '/v1/commands/?agent_token=a&agent_token=b' });
    expect([res.statusCode, res.json()]).toEqual([400, { faultcode: 'Client', faultstring: '400 Bad Request: querystring/agent_token must be string' }]);
  });

  it('answers what the router refuses (undecodable URL, overlong command id) in IPA\'s error body', async () => {
    const bad = await app.inject({ url: '/v1/commands/%' });
    expect([bad.statusCode, bad.json()]).toEqual([400, { faultcode: 'Client', faultstring: '400 Bad Request: the URL could not be decoded.' }]);
    const long = await app.inject({ url: `/v1/commands/${'x'.repeat(201)}` });
    expect([long.statusCode, long.json()]).toEqual([414, { faultcode: 'Client', faultstring: '414 Request URI Too Long: a path component is longer than 200 characters.' }]);
    // Up to 200 characters an id is looked up like any other (fastify's own limit was 100).
    const unknown = await app.inject({ url: `/v1/commands/${'x'.repeat(200)}` });
    expect([unknown.statusCode, unknown.json()]).toEqual([404, { faultcode: 'Client', faultstring: `Not found: Command Result with id ${'x'.repeat(200)} not found.` }]);
  });
});
