import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';

// A stand-in conductor on loopback for unit tests of the lookup/heartbeat
// loop, answering as Ironic's ramdisk API does (api/controllers/v1/ramdisk.py,
// conductor/manager.py): lookup hands out `lookupToken()` as config.agent_token
// ("******" when the node already holds one); a heartbeat that does not carry
// `nodeToken()` is refused with 400 "Invalid or missing agent token received.".
// Real Ironic tells the same story in test/integration/security-token.test.ts.

export interface FakeIronicRequest {
  at: number;
  kind: 'lookup' | 'heartbeat';
  /** A heartbeat's body (agent_token, agent_status, agent_status_message, ...). */
  body?: { agent_token?: string; agent_status?: string; agent_status_message?: string };
  status: number;
}

export interface FakeIronicOptions {
  lookupToken(): string | undefined;
  nodeToken(): string | undefined;
  heartbeatTimeoutSec?: number;
  /** More lookup config (Ironic 2026.2: tls_min_version, tls_cipher_suites, agent_skip_bmc_detect). */
  config?: () => Record<string, unknown>;
  /** A status to answer a heartbeat with instead of Ironic's verdict (409: locked / agent URL not recorded yet). */
  heartbeatOverride?: () => number | undefined;
  /** Answer every request with 403, as an API with [api]enable_ramdisk_endpoints off does. */
  forbidden?: boolean;
}

export async function startFakeIronic(opts: FakeIronicOptions) {
  const requests: FakeIronicRequest[] = [];
  const server: Server = createServer((req, res) => {
    let raw = '';
    req.on('data', (d: Buffer) => (raw += d.toString()));
    req.on('end', () => {
      const reply = (status: number, value: unknown) => {
        res.writeHead(status, { 'content-type': 'application/json' });
        res.end(JSON.stringify(value));
      };
      const kind = req.url?.startsWith('/v1/lookup') ? 'lookup' : 'heartbeat';
      if (opts.forbidden) {
        requests.push({ at: Date.now(), kind, status: 403 });
        return reply(403, { error_message: JSON.stringify({ faultstring: `Access was denied to the following resource: ${req.url}` }) });
      }
      if (req.url?.startsWith('/v1/lookup')) {
        requests.push({ at: Date.now(), kind: 'lookup', status: 200 });
        const config = {
          heartbeat_timeout: opts.heartbeatTimeoutSec ?? 300,
          agent_token: opts.lookupToken(),
          agent_token_required: true,
          ...opts.config?.(),
        };
        return reply(200, { node: { uuid: 'node-1', provision_state: 'clean wait' }, config });
      }
      if (req.url === '/v1/heartbeat/node-1') {
        const body = JSON.parse(raw) as FakeIronicRequest['body'];
        const forced = opts.heartbeatOverride?.();
        if (forced !== undefined) {
          requests.push({ at: Date.now(), kind: 'heartbeat', body, status: forced });
          return reply(forced, { error_message: JSON.stringify({ faultstring: `Node node-1 is locked by host test-conductor (${forced})` }) });
        }
        const ok = body?.agent_token !== undefined && body.agent_token === opts.nodeToken();
        requests.push({ at: Date.now(), kind: 'heartbeat', body, status: ok ? 202 : 400 });
        if (ok) return reply(202, {});
        return reply(400, { error_message: JSON.stringify({ faultstring: 'Invalid or missing agent token received.' }) });
      }
      reply(404, {});
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const of = (kind: FakeIronicRequest['kind']) => requests.filter((r) => r.kind === kind);
  return {
    url,
    requests,
    lookups: () => of('lookup'),
    heartbeats: () => of('heartbeat'),
    heartbeatBodies: () => of('heartbeat').map((r) => r.body ?? {}),
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}

/** Polls `cond` every 20 ms; throws naming `what` after `timeoutMs`. */
export async function until(what: string, cond: () => boolean, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`never happened: ${what}`);
    await sleep(20);
  }
}
