import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import { Type, type Static } from '@sinclair/typebox';
import { log } from '../log.ts';
import { CommandEngine, CommandRejected, type Rejection } from '../commands/engine.ts';
import { HttpFault } from './faults.ts';
import type { TokenKeeper } from './token.ts';
import { TLS_SERVER_OPTIONS, type TlsMaterial } from './tls.ts';

// IPA's v1 REST API, wire-compatible with 9.4 as Ironic's agent_client.py
// expects it. The server knows nothing of steps: it maps HTTP onto the
// command engine and the engine's rejections back onto IPA's codes.

export interface ApiDeps {
  engine: CommandEngine;
  tokens: TokenKeeper;
  status(): { started_at: number; version: string };
  /** The step matrix from the registry (operators' capability view). */
  steps(): unknown;
  inventory(): Promise<unknown>;
}

export interface ApiOptions {
  tls?: TlsMaterial;
  /** Largest request body; configdrives ride inside deploy step params. */
  bodyLimit?: number;
}

const MEDIA_TYPE = 'application/vnd.openstack.ironic-python-agent.v1+json';
const DOCS_URL = 'https://docs.openstack.org/ironic-python-agent';

const CommandQuery = Type.Object({
  wait: Type.Optional(Type.String()),
  agent_token: Type.Optional(Type.String()),
});
const CommandParams = Type.Object({ id: Type.String({ maxLength: 200 }) });
type CommandQuery = Static<typeof CommandQuery>;

function rootUrl(req: FastifyRequest): string {
  return `${req.protocol}://${req.headers.host ?? req.hostname}`;
}

function link(root: string, rel: string, resource: string, bookmark = false) {
  if (rel === 'describedby') return { href: DOCS_URL, rel, type: 'text/html' };
  return { href: bookmark || rel === 'bookmark' ? `${root}/${resource}` : `${root}/v1/${resource}`, rel };
}

function versionDoc(root: string) {
  return { id: 'v1', links: [link(root, 'self', 'v1', true), link(root, 'describedby', '')] };
}

function rejectionFault(r: Rejection): HttpFault {
  switch (r.kind) {
    case 'invalid-name':
      return HttpFault.agent(400, 'Invalid command', r.message);
    case 'busy':
      return HttpFault.agent(409, 'Agent is busy', `executing command ${r.running}`);
    case 'unknown-extension':
      return HttpFault.agent(404, 'Not found', `Extension with id ${r.extension} not found.`);
    case 'unknown-command':
      return HttpFault.agent(400, 'Invalid command', `Unknown command: ${r.command}`);
    case 'invalid-params':
      return HttpFault.agent(400, 'Invalid command parameters', r.message);
  }
}

const isTrue = (v: string | undefined) => v?.toLowerCase() === 'true';

/** Every route exists with and without the /v1 prefix, as in IPA. */
const PREFIXES = ['/v1', ''];

export function buildApi(deps: ApiDeps, opts: ApiOptions = {}): FastifyInstance {
  const bodyLimit = opts.bodyLimit ?? 128 * 1024 * 1024;
  const app = Fastify({
    logger: false,
    bodyLimit,
    ...(opts.tls ? { https: { cert: opts.tls.cert, key: opts.tls.key, ...TLS_SERVER_OPTIONS } } : {}),
  }) as unknown as FastifyInstance;

  // IPA ignores the request's Content-Type and parses every body as JSON: take
  // the raw text here and parse it in the handler, where errors become faults.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'string', bodyLimit }, (_req, body, done) => done(null, body));

  // One debug line per request: who polls what, and whether a token came with
  // it (which conductor release is talking shows here; the token never does).
  app.addHook('onResponse', async (req, reply) => {
    const token = (req.query as { agent_token?: string } | undefined)?.agent_token;
    log.debug({ method: req.method, path: req.url.split('?')[0], status: reply.statusCode, token: token ? 'given' : 'none' }, 'api request');
  });

  app.setErrorHandler((err: Error & { statusCode?: number; code?: string }, req, reply) => {
    if (err instanceof HttpFault) return reply.code(err.statusCode).send(err.body);
    const status = err.statusCode ?? 500;
    if (status >= 500) log.error({ err, url: req.url }, 'internal error in API');
    const fault = HttpFault.http(status, status === 413 ? `request body larger than ${bodyLimit} bytes` : err.message);
    return reply.code(status).send(fault.body);
  });

  const knownPaths = new Map<string, string[]>();
  const route = (method: 'GET' | 'POST', path: string) => {
    knownPaths.set(path, [...(knownPaths.get(path) ?? []), method]);
  };

  app.setNotFoundHandler((req, reply) => {
    const path = req.url.split('?')[0]!;
    const allowed = [...knownPaths].find(([p]) => matchPath(p, path));
    const fault = allowed
      ? HttpFault.http(405, `The method is not allowed for the requested URL.`)
      : HttpFault.http(404, 'The requested URL was not found on the server.');
    return reply.code(fault.statusCode).send(fault.body);
  });

  app.get('/', async (req) => {
    const root = rootUrl(req);
    return {
      name: 'OpenStack Ironic Python Agent API',
      description: 'Ironic Python Agent is a provisioning agent for OpenStack Ironic (metal-agent)',
      versions: [versionDoc(root)],
      default_version: versionDoc(root),
    };
  });
  route('GET', '/');

  app.get('/v1', async (_req, reply) => reply.redirect('/v1/', 308));
  app.get('/v1/', async (req) => {
    const root = rootUrl(req);
    return {
      commands: [link(root, 'self', 'commands'), link(root, 'bookmark', 'commands')],
      status: [link(root, 'self', 'status'), link(root, 'bookmark', 'status')],
      media_types: [{ base: 'application/json', type: MEDIA_TYPE }],
      ...versionDoc(root),
    };
  });
  route('GET', '/v1/');

  const readGuard = (req: FastifyRequest<{ Querystring: CommandQuery }>) => {
    if (!deps.tokens.allowsRead(req.query.agent_token)) throw HttpFault.http(401, 'Token invalid.');
  };

  for (const prefix of PREFIXES) {
    app.get(`${prefix}/status`, async () => deps.status());
    route('GET', `${prefix}/status`);

    app.get(`${prefix}/steps`, async () => deps.steps());
    route('GET', `${prefix}/steps`);

    app.get(`${prefix}/inventory`, async () => deps.inventory());
    route('GET', `${prefix}/inventory`);

    app.get(`${prefix}/commands`, async (_req, reply) => reply.redirect(`${prefix}/commands/`, 308));

    app.get<{ Querystring: CommandQuery }>(`${prefix}/commands/`, { schema: { querystring: CommandQuery } }, async (req) => {
      readGuard(req);
      return { commands: deps.engine.list() };
    });
    route('GET', `${prefix}/commands/`);

    app.get<{ Querystring: CommandQuery; Params: Static<typeof CommandParams> }>(
      `${prefix}/commands/:id`,
      { schema: { querystring: CommandQuery, params: CommandParams } },
      async (req) => {
        readGuard(req);
        const id = req.params.id;
        const found = isTrue(req.query.wait) ? await deps.engine.wait(id) : deps.engine.get(id);
        if (!found) throw HttpFault.agent(404, 'Not found', `Command Result with id ${id} not found.`);
        return found;
      },
    );
    route('GET', `${prefix}/commands/:id`);

    app.post<{ Querystring: CommandQuery }>(
      `${prefix}/commands/`,
      { schema: { querystring: CommandQuery } },
      async (req: FastifyRequest<{ Querystring: CommandQuery }>, reply: FastifyReply) => {
        const { name, params } = parseCommandBody(req.body);
        if (!deps.tokens.allowsCommand(req.query.agent_token)) throw HttpFault.http(401, 'Token invalid.');
        let result;
        try {
          result = await deps.engine.execute(name, params);
        } catch (err) {
          if (err instanceof CommandRejected) throw rejectionFault(err.rejection);
          throw err;
        }
        if (isTrue(req.query.wait)) result = (await deps.engine.wait(result.id)) ?? result;
        return reply.code(200).send(result);
      },
    );
    route('POST', `${prefix}/commands/`);
  }
  return app;
}

function parseCommandBody(raw: unknown): { name: string; params: Record<string, any> } {
  let body: unknown;
  try {
    body = typeof raw === 'string' && raw.length > 0 ? JSON.parse(raw) : undefined;
  } catch (err) {
    throw HttpFault.http(400, `The browser (or proxy) sent a request that this server could not understand: ${(err as Error).message}`);
  }
  if (body === null || typeof body !== 'object' || Array.isArray(body)) {
    throw HttpFault.http(400, 'Missing or invalid name or params');
  }
  const { name, params } = body as { name?: unknown; params?: unknown };
  if (typeof name !== 'string' || params === null || typeof params !== 'object' || Array.isArray(params)) {
    throw HttpFault.http(400, 'Missing or invalid name or params');
  }
  return { name, params: params as Record<string, any> };
}

function matchPath(pattern: string, path: string): boolean {
  const re = new RegExp(`^${pattern.replace(/:[a-z]+/g, '[^/]+')}$`);
  return re.test(path);
}
