import { STATUS_CODES, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import Fastify, { type FastifyBaseLogger, type FastifyError, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import type { FastifyPluginAsyncTypebox, TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type, type Static } from '@sinclair/typebox';
import { log } from '../log.ts';
import { MAX_CONFIG_DRIVE_BYTES } from '../system/configdrive.ts';
import { CommandEngine, CommandRejected, type Rejection } from '../commands/engine.ts';
import { HttpFault } from './faults.ts';
import { typeboxSchemaController } from './schema-compilers.ts';
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
  /** A client must send a whole request (headers and body) within this (ipa-api-request-timeout). */
  requestTimeoutMs?: number;
}

// Sizes and deadlines, from what Ironic sends (ironic/drivers/modules/agent.py,
// agent_client.py, 21.4 to 2025.1).
//
// The biggest body is deploy.execute_deploy_step for write_image: Ironic puts
// the config drive, base64(gzip(ISO)), inline into it TWICE (image_info and the
// step's args; a FIXME there says so), and nothing on Ironic's side bounds its
// size; the agent refuses a decoded ISO over 64 MiB (IPA's limit). The worst
// such ISO does not compress: zlib's deflateBound, then base64's 4/3, twice,
// plus 1 MiB for the rest (node and ports come masked; image_info is URLs and
// checksums): about 172 MiB. Bodies are read only for POST /v1/commands/ and
// only once its agent token checked out, so the limit is a budget for Ironic,
// not for whoever can reach the port.
const deflateBound = (n: number) => n + (n >> 12) + (n >> 14) + (n >> 25) + 7 + 18; // + gzip header/trailer
const base64Length = (n: number) => 4 * Math.ceil(n / 3);
export const DEFAULT_BODY_LIMIT = 2 * base64Length(deflateBound(MAX_CONFIG_DRIVE_BYTES)) + 1024 * 1024;

// Deadlines, each for a phase where the client is the one who must send:
// - the whole request (headers and body): 120 s. The biggest body above takes
//   ~15 s over 100 Mbit/s, so this leaves a ~12 Mbit/s link room; a body
//   dribbled a byte at a time is cut off with 408. Configurable
//   (ipa-api-request-timeout).
// - the headers: 30 s (Ironic sends them at once; Node's default is 60 s).
// - an idle keep-alive connection: 60 s, longer than Ironic's pauses between
//   requests to one agent, so its connection pool reuses connections.
// No socket inactivity timeout: the response phase may be long and silent
// (POST ?wait=true answers when the command ends, and Ironic waits up to its
// [agent]command_timeout), and it is the agent that owes bytes then.
export const DEFAULT_REQUEST_TIMEOUT_MS = 120_000;
const HEADERS_TIMEOUT_MS = 30_000;
const KEEP_ALIVE_TIMEOUT_MS = 60_000;
/** The most body a refused command's connection reads only to drop it (Ironic's are KiBs). */
const DRAIN_LIMIT = 1024 * 1024;
/** How long a refused, unread upload may linger so its sender can read the 401. */
const LINGER_MS = 2000;

const MEDIA_TYPE = 'application/vnd.openstack.ironic-python-agent.v1+json';
const DOCS_URL = 'https://docs.openstack.org/ironic-python-agent';

const CommandQuery = Type.Object({
  wait: Type.Optional(Type.String()),
  agent_token: Type.Optional(Type.String()),
});
/** Longest command id the router takes (Ironic's are UUIDs); a longer one is refused with 414. */
const MAX_COMMAND_ID_LENGTH = 200;
const CommandParams = Type.Object({ id: Type.String() });
const commandQuery = { querystring: CommandQuery };
type CommandQuery = Static<typeof CommandQuery>;

/** The API as buildApi hands it out: an http(s) server with TypeBox-typed routes. */
export type ApiServer = FastifyInstance<Server, IncomingMessage, ServerResponse, FastifyBaseLogger, TypeBoxTypeProvider>;

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

export function buildApi(deps: ApiDeps, opts: ApiOptions = {}): ApiServer {
  const bodyLimit = opts.bodyLimit ?? DEFAULT_BODY_LIMIT;
  const requestTimeout = opts.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
  if (!(requestTimeout > 0)) throw new Error(`API request timeout must be positive, not ${requestTimeout} ms`);
  // Node checks the deadlines every connectionsCheckingInterval (30 s by default).
  const nodeServerOptions = {
    headersTimeout: Math.min(HEADERS_TIMEOUT_MS, requestTimeout),
    connectionsCheckingInterval: Math.min(1000, Math.ceil(requestTimeout / 2)),
  };
  const fastifyOptions = {
    logger: false,
    bodyLimit,
    requestTimeout,
    keepAliveTimeout: KEEP_ALIVE_TIMEOUT_MS,
    clientErrorHandler: answerClientError,
    // Fastify 5.x takes router settings here (the top-level maxParamLength is deprecated: FSTDEP022).
    routerOptions: { maxParamLength: MAX_COMMAND_ID_LENGTH },
    frameworkErrors: answerFrameworkError,
    schemaController: typeboxSchemaController,
  } as const;
  // An https.Server is an http.Server to its users (Node types it so), so
  // both branches are the one ApiServer type.
  const app: ApiServer = (
    opts.tls
      ? Fastify({ ...fastifyOptions, https: { cert: opts.tls.cert, key: opts.tls.key, ...TLS_SERVER_OPTIONS, ...nodeServerOptions } })
      : Fastify({ ...fastifyOptions, http: nodeServerOptions })
  ).withTypeProvider<TypeBoxTypeProvider>();

  // No route but POST /commands reads a body: here (404/405 answers
  // included) a body is left unread, and Node discards it as it arrives.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', (_req, _payload, done) => done(null, undefined));

  // One debug line per request: who polls what, and whether a token came with
  // it (which conductor release is talking shows here; the token never does).
  app.addHook('onResponse', async (req, reply) => {
    const token = (req.query as { agent_token?: string } | undefined)?.agent_token;
    const path = req.url.split('?')[0];
    log.debug({ method: req.method, path, status: reply.statusCode, token: token ? 'given' : 'none' }, 'api request');
  });

  app.setErrorHandler((err: Error & { statusCode?: number; code?: string }, req, reply) => {
    if (err instanceof HttpFault) return reply.code(err.statusCode).send(err.body);
    const status = err.statusCode ?? 500;
    if (status >= 500) log.error({ err, url: req.url }, 'internal error in API');
    const fault = HttpFault.http(status, status === 413 ? `request body larger than ${bodyLimit} bytes` : err.message);
    return reply.code(status).send(fault.body);
  });

  // 405 when another method serves this path, 404 when none does: fastify's
  // router answers that. A path that only redirects to its slashed form is no
  // resource (IPA's werkzeug answers other methods there with 404 too).
  const slashRedirects = new Set<string>();
  app.setNotFoundHandler((req, reply) => {
    const url = req.url.split('?')[0]!;
    const served = !slashRedirects.has(url) && app.supportedMethods.some((method) => app.findRoute({ method, url }) !== null);
    const fault = served
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

  app.get('/v1', async (_req, reply) => reply.redirect('/v1/', 308));
  slashRedirects.add('/v1');
  app.get('/v1/', async (req) => {
    const root = rootUrl(req);
    return {
      commands: [link(root, 'self', 'commands'), link(root, 'bookmark', 'commands')],
      status: [link(root, 'self', 'status'), link(root, 'bookmark', 'status')],
      media_types: [{ base: 'application/json', type: MEDIA_TYPE }],
      ...versionDoc(root),
    };
  });

  // Every v1 route exists with and without the /v1 prefix, as in IPA.
  for (const prefix of ['/v1', '']) {
    app.register(v1Routes, { prefix, deps, bodyLimit, slashRedirects });
  }
  return app;
}

interface V1Options {
  deps: ApiDeps;
  bodyLimit: number;
  /** Where the plugin notes the paths that only redirect (see the not-found handler). */
  slashRedirects: Set<string>;
}

/** The v1 resources, registered once under /v1 and once at the root. */
const v1Routes: FastifyPluginAsyncTypebox<V1Options> = async (v1, { deps, bodyLimit, slashRedirects }) => {
  const readGuard = (token: string | undefined) => {
    if (!deps.tokens.allowsRead(token)) throw HttpFault.http(401, 'Token invalid.');
  };
  // The inventory (serials, MACs, BMC addresses) is nobody else's business
  // once the agent holds a token: then it needs that token, as a command does.
  const inventoryGuard = (token: string | undefined) => {
    if (deps.tokens.value !== undefined && !deps.tokens.allowsCommand(token)) throw HttpFault.http(401, 'Token invalid.');
  };

  v1.get('/status', async () => deps.status());

  v1.get('/steps', async () => deps.steps());

  v1.get('/inventory', { schema: commandQuery }, async (req) => {
    inventoryGuard(req.query.agent_token);
    return deps.inventory();
  });

  const commandsSlashed = `${v1.prefix}/commands/`;
  v1.get('/commands', async (_req, reply) => reply.redirect(commandsSlashed, 308));
  slashRedirects.add(`${v1.prefix}/commands`);

  v1.get('/commands/', { schema: commandQuery }, async (req) => {
    readGuard(req.query.agent_token);
    return { commands: deps.engine.list() };
  });

  v1.get('/commands/:id', { schema: { querystring: CommandQuery, params: CommandParams } }, async (req) => {
    readGuard(req.query.agent_token);
    const id = req.params.id;
    const found = isTrue(req.query.wait) ? await deps.engine.wait(id) : deps.engine.get(id);
    if (!found) throw HttpFault.agent(404, 'Not found', `Command Result with id ${id} not found.`);
    return found;
  });

  // POST /commands, the one route that reads a body, in a scope of its own:
  // the token is checked as the request arrives, before a byte of the body is
  // buffered (a 401 leaves it unread and Node discards it), then the body is
  // taken as raw text up to bodyLimit. IPA ignores the Content-Type and parses
  // every body as JSON; the handler does, where errors become faults.
  const commandsScope: FastifyPluginAsyncTypebox = async (commands) => {
    commands.removeAllContentTypeParsers();
    commands.addContentTypeParser('*', { parseAs: 'string', bodyLimit }, (_req, body, done) => done(null, body));
    commands.addHook('onRequest', async (req, reply) => {
      if (deps.tokens.allowsCommand((req.query as CommandQuery).agent_token)) return;
      const fault = HttpFault.http(401, 'Token invalid.');
      // Node reads an unanswered body only to drop it, a fresh buffer per
      // read: fine for a conductor's small body sent with a stale token, but a
      // flood would churn the agent's memory as fast as it arrives.
      const length = Number(req.headers['content-length'] ?? (req.headers['transfer-encoding'] ? Infinity : 0));
      if (length <= DRAIN_LIMIT) return reply.code(401).send(fault.body);
      reply.hijack();
      refuseAndClose(req.raw, fault);
      log.debug({ method: req.method, path: req.url.split('?')[0], status: 401, bytes: length }, 'api request refused before its body');
    });
    commands.post('/commands/', { schema: commandQuery }, async (req, reply) => {
      const { name, params } = parseCommandBody(req.body);
      let result;
      try {
        result = await deps.engine.execute(name, params);
      } catch (err) {
        if (err instanceof CommandRejected) throw rejectionFault(err.rejection);
        throw err;
      }
      if (isTrue(req.query.wait)) result = (await deps.engine.wait(result.id)) ?? result;
      return reply.code(200).send(result);
    });
  };
  await v1.register(commandsScope);
};

/**
 * Answers a request whose body will not be read, then closes. The answer and
 * a FIN go out at once; the body is not read (the request stream is left
 * paused, so Node stops reading the socket and the sender's window fills), and
 * after LINGER_MS the connection is dropped. Dropping it at once would reset
 * the connection under a client still sending, which then loses the answer.
 */
function refuseAndClose(raw: IncomingMessage, fault: HttpFault): void {
  const socket = raw.socket;
  raw.on('error', () => undefined);
  const linger = setTimeout(() => socket.destroy(), LINGER_MS);
  socket.once('close', () => clearTimeout(linger));
  socket.end(closingResponse(fault));
}

/** A whole HTTP response in IPA's error body, written straight to a socket that is then closed. */
function closingResponse(fault: HttpFault): string {
  const body = JSON.stringify(fault.body);
  const head = [
    `HTTP/1.1 ${fault.statusCode} ${STATUS_CODES[fault.statusCode]}`,
    'Content-Type: application/json',
    `Content-Length: ${Buffer.byteLength(body)}`,
    'Connection: close',
  ];
  return `${head.join('\r\n')}\r\n\r\n${body}`;
}

/** What fastify's router refuses before any route runs, in IPA's error body. */
function answerFrameworkError(err: FastifyError, _req: FastifyRequest, reply: FastifyReply): void {
  const fault =
    err.code === 'FST_ERR_MAX_PARAM_LENGTH'
      ? HttpFault.http(414, `a path component is longer than ${MAX_COMMAND_ID_LENGTH} characters.`)
      : err.code === 'FST_ERR_BAD_URL'
        ? HttpFault.http(400, 'the URL could not be decoded.')
        : HttpFault.http(err.statusCode ?? 500, err.message);
  void reply.code(fault.statusCode).send(fault.body);
}

/**
 * Errors Node raises before a request reaches a route (the deadlines above,
 * malformed or oversized headers), answered in IPA's error body, then closed.
 */
function answerClientError(err: Error & { code?: string }, socket: Socket): void {
  if (err.code === 'ECONNRESET' || socket.destroyed) return;
  const [status, detail] =
    err.code === 'ERR_HTTP_REQUEST_TIMEOUT'
      ? [408, 'the request was not received in time.']
      : err.code === 'HPE_HEADER_OVERFLOW'
        ? [431, 'request headers too large.']
        : [400, 'the request could not be parsed.'];
  if (socket.writable) socket.write(closingResponse(HttpFault.http(status, detail)));
  socket.destroy();
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

