import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

// A loopback hop between an agent and a real Ironic, for tests that must know
// exactly what the agent sent (every lookup and heartbeat, with the token it
// carried) or must cut the agent off at a precise moment: `holdHeartbeats`
// makes the hop answer heartbeats itself (503) from the first one that
// matches, which is how a test "kills" an agent between two heartbeats
// without racing the conductor. Everything else is forwarded as it came.

export interface ConductorRequest {
  at: number;
  kind: 'lookup' | 'heartbeat' | 'other';
  status: number;
  /** The heartbeat's agent_token (undefined when it carried none). */
  token?: string;
  agentStatus?: string;
  /** True when the hop answered itself (held heartbeats). */
  held?: boolean;
}

export interface ConductorProxy {
  url: string;
  requests: ConductorRequest[];
  /** From the first heartbeat for which `match` is true (that one included), heartbeats stop reaching Ironic. */
  holdHeartbeats(match: (body: Record<string, any>) => boolean): void;
  /** Whether heartbeats are being held. */
  holding(): boolean;
  close(): Promise<void>;
}

const FORWARDED_HEADERS = ['x-openstack-ironic-api-version', 'x-openstack-request-id', 'content-type', 'accept'];

export async function startConductorProxy(ironicUrl: string): Promise<ConductorProxy> {
  const requests: ConductorRequest[] = [];
  let holdFrom: ((body: Record<string, any>) => boolean) | undefined;
  let held = false;
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (d: Buffer) => chunks.push(d));
    req.on('end', () => {
      void (async () => {
        const body = Buffer.concat(chunks);
        const path = req.url ?? '/';
        const kind = path.startsWith('/v1/lookup') ? 'lookup' : path.startsWith('/v1/heartbeat/') ? 'heartbeat' : 'other';
        const record: ConductorRequest = { at: Date.now(), kind, status: 0 };
        if (kind === 'heartbeat') {
          let parsed: Record<string, any> = {};
          try {
            parsed = JSON.parse(body.toString()) as Record<string, any>;
          } catch {
            // forwarded as is; Ironic answers it
          }
          record.token = typeof parsed.agent_token === 'string' ? parsed.agent_token : undefined;
          record.agentStatus = parsed.agent_status;
          if (!held && holdFrom?.(parsed)) held = true;
          if (held) {
            record.held = true;
            record.status = 503;
            requests.push(record);
            res.writeHead(503, { 'content-type': 'application/json' });
            res.end(JSON.stringify({ error_message: JSON.stringify({ faultstring: 'held by the test' }) }));
            return;
          }
        }
        requests.push(record);
        try {
          const headers: Record<string, string> = {};
          for (const h of FORWARDED_HEADERS) if (typeof req.headers[h] === 'string') headers[h] = req.headers[h] as string;
          const upstream = await fetch(`${ironicUrl}${path}`, { method: req.method, headers, body: req.method === 'GET' || req.method === 'HEAD' ? undefined : body });
          const text = await upstream.text();
          record.status = upstream.status;
          res.writeHead(upstream.status, { 'content-type': upstream.headers.get('content-type') ?? 'application/json' });
          res.end(text);
        } catch (err) {
          record.status = 502;
          res.writeHead(502, { 'content-type': 'application/json' });
          res.end(JSON.stringify({ error_message: String(err) }));
        }
      })();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    requests,
    holdHeartbeats(match) {
      holdFrom = match;
    },
    holding: () => held,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}
