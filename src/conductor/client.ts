import { readFileSync } from 'node:fs';
import { Agent, request, type Dispatcher } from 'undici';
import { conductorTarget } from './discovery-http.ts';
import { log } from '../log.ts';

// The Ironic side of the conversation: lookup and heartbeat (Ironic's
// api/controllers/v1/ramdisk.py). Typed outcomes instead of exceptions for the
// answers the agent must react to (not yet known, locked, token wiped).

export interface LookupResult {
  node: Record<string, any> & { uuid: string };
  config: Record<string, any>;
}

export type LookupOutcome =
  | { kind: 'found'; result: LookupResult }
  | { kind: 'not-found'; status: number; message: string };

export type HeartbeatOutcome =
  | { kind: 'ok' }
  | { kind: 'locked'; message: string }
  /** Ironic no longer accepts our token or node (phase ended): look up again. */
  | { kind: 'relookup'; status: number; message: string }
  | { kind: 'error'; status: number; message: string };

export interface HeartbeatBody {
  callback_url: string;
  agent_version: string;
  agent_token?: string;
  agent_verify_ca?: string;
  agent_status?: 'start' | 'end' | 'error';
  agent_status_message?: string;
}

export interface ConductorClientOptions {
  apiUrl: string;
  apiVersion: string;
  insecure: boolean;
  cafile?: string;
  globalRequestId?: string;
  timeoutMs?: number;
}

export class ConductorClient {
  private readonly dispatcher: Dispatcher;
  private readonly base: string;

  constructor(private readonly opts: ConductorClientOptions) {
    const agentOptions: Agent.Options = {
      connect: {
        rejectUnauthorized: !opts.insecure,
        ...(opts.cafile ? { ca: readFileSync(opts.cafile, 'utf8') } : {}),
      },
      headersTimeout: opts.timeoutMs ?? 30_000,
      bodyTimeout: opts.timeoutMs ?? 30_000,
    };
    // A link-local conductor (fe80::1%eth0) needs the zone at connect time,
    // which URLs cannot carry through undici.
    const target = conductorTarget(opts.apiUrl, agentOptions);
    this.base = target.url.replace(/\/+$/, '');
    this.dispatcher = target.dispatcher ?? new Agent(agentOptions);
  }

  get apiUrl(): string {
    return this.base;
  }

  private headers(): Record<string, string> {
    const h: Record<string, string> = {
      'X-OpenStack-Ironic-API-Version': this.opts.apiVersion,
      accept: 'application/json',
    };
    if (this.opts.globalRequestId) h['X-OpenStack-Request-ID'] = this.opts.globalRequestId;
    return h;
  }

  async lookup(addresses: string[], nodeUuid?: string): Promise<LookupOutcome> {
    const q = new URLSearchParams();
    if (addresses.length) q.set('addresses', addresses.join(','));
    if (nodeUuid) q.set('node_uuid', nodeUuid);
    const res = await request(`${this.base}/v1/lookup?${q}`, { headers: this.headers(), dispatcher: this.dispatcher });
    const text = await res.body.text();
    if (res.statusCode === 200) {
      const parsed = JSON.parse(text) as LookupResult;
      if (!parsed?.node?.uuid) throw new Error(`lookup answer without node.uuid: ${text.slice(0, 200)}`);
      return { kind: 'found', result: parsed };
    }
    return { kind: 'not-found', status: res.statusCode, message: ironicError(text) };
  }

  async heartbeat(nodeUuid: string, body: HeartbeatBody): Promise<HeartbeatOutcome> {
    const res = await request(`${this.base}/v1/heartbeat/${encodeURIComponent(nodeUuid)}`, {
      method: 'POST',
      headers: { ...this.headers(), 'content-type': 'application/json' },
      body: JSON.stringify(body),
      dispatcher: this.dispatcher,
    });
    const text = await res.body.text();
    if (res.statusCode === 202 || res.statusCode === 200) return { kind: 'ok' };
    const message = ironicError(text);
    if (res.statusCode === 409) return { kind: 'locked', message };
    if (res.statusCode === 404 || (res.statusCode === 400 && /token/i.test(message)) || res.statusCode === 401) {
      return { kind: 'relookup', status: res.statusCode, message };
    }
    return { kind: 'error', status: res.statusCode, message };
  }

  /** POSTs the inspection payload (ipa-inspection-callback-url). */
  async postInspection(url: string, payload: unknown): Promise<{ status: number; body: string }> {
    const res = await request(url, {
      method: 'POST',
      headers: { ...this.headers(), 'content-type': 'application/json' },
      body: JSON.stringify(payload),
      dispatcher: this.dispatcher,
    });
    return { status: res.statusCode, body: await res.body.text() };
  }

  async close(): Promise<void> {
    await this.dispatcher.close().catch((err: unknown) => log.debug({ err }, 'closing conductor client'));
  }
}

/** Ironic wraps errors as {"error_message": "{\"faultstring\": ...}"}; dig the text out. */
export function ironicError(text: string): string {
  try {
    const outer = JSON.parse(text) as { error_message?: string };
    if (typeof outer.error_message === 'string') {
      try {
        const inner = JSON.parse(outer.error_message) as { faultstring?: string };
        return inner.faultstring ?? outer.error_message;
      } catch {
        return outer.error_message;
      }
    }
  } catch {
    /* not JSON */
  }
  return text.slice(0, 500);
}
