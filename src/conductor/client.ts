import { readFileSync } from 'node:fs';
import { splitApiUrls } from '../base/api-urls.ts';
import { splitZone } from '../base/url-zone.ts';
import { conductorRequest, type ConductorHttpOptions, type ConductorRequest } from './http-request.ts';
import { log } from '../log.ts';

// The Ironic side of the conversation: lookup and heartbeat (Ironic's
// api/controllers/v1/ramdisk.py). Typed outcomes instead of exceptions for the
// answers the agent must react to (not yet known, locked, token wiped).
//
// ipa-api-url may name several APIs (comma separated, as IPA allows). Each
// request goes to the one that answered last, and moves on to the next when
// that one cannot be reached (IPA's rule) or answers 403: Ironic 2026.2 says
// 403 when its ramdisk endpoints are switched off on that API
// ([api]enable_ramdisk_endpoints, or a public API that only serves users), so
// another API of the same deployment is worth asking. The one that answers
// moves to the front.

/** The first API version whose /v1/continue_inspection answers with node, config and token (Ironic 2023.2+). */
export const INSPECTION_API_VERSION = '1.84';

/**
 * What an inspection answer tells the agent: Ironic >= 1.84 answers like a
 * lookup (node + config with the agent token); older Ironic and
 * ironic-inspector answer {"uuid": ...}; anything else tells nothing.
 */
export function inspectionReply(body: string): { lookup?: LookupResult; uuid?: string } {
  let parsed: any;
  try {
    parsed = JSON.parse(body);
  } catch {
    return {};
  }
  if (parsed && typeof parsed === 'object' && typeof parsed.node?.uuid === 'string' && parsed.config && typeof parsed.config === 'object') {
    return { lookup: parsed as LookupResult, uuid: parsed.node.uuid };
  }
  return typeof parsed?.uuid === 'string' ? { uuid: parsed.uuid } : {};
}

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
  /** One URL, or several separated by commas (tried in order; see above). */
  apiUrl: string;
  apiVersion: string;
  insecure: boolean;
  cafile?: string;
  globalRequestId?: string;
  timeoutMs?: number;
}

interface Target {
  /** The URL without its zone (what logs and apiUrl show). */
  base: string;
  /** A link-local conductor's interface (fe80::1%eth0), added back at connect time. */
  zone?: string;
}

export class ConductorClient {
  private readonly http: ConductorHttpOptions;
  /** The APIs, the one that answered last first. */
  private targets: Target[];

  constructor(private readonly opts: ConductorClientOptions) {
    this.http = {
      rejectUnauthorized: !opts.insecure,
      ...(opts.cafile ? { ca: readFileSync(opts.cafile, 'utf8') } : {}),
      timeoutMs: opts.timeoutMs ?? 30_000,
    };
    this.targets = splitApiUrls(opts.apiUrl).map((url) => {
      const { url: plain, zone } = splitZone(url);
      return { base: plain.replace(/\/+$/, ''), zone };
    });
    if (!this.targets.length) throw new Error(`no API URL in "${opts.apiUrl}"`);
  }

  /** The API in use (the one that answered last). */
  get apiUrl(): string {
    return this.targets[0]!.base;
  }

  /**
   * `path` on each API in turn, from the one that answered last: the first answer
   * other than 403 wins, and its API goes first from now on. When every API
   * refuses (403) the last refusal is the answer; when none can be reached, the
   * last error is thrown.
   */
  private async send(path: string, options: ConductorRequest) {
    let last: { statusCode: number; text: string } | undefined;
    let lastError: unknown;
    for (const [i, t] of this.targets.entries()) {
      const more = i < this.targets.length - 1;
      try {
        const res = await conductorRequest(`${t.base}${path}`, t.zone, options, this.http);
        const text = res.text;
        if (res.statusCode === 403 && more) {
          log.warn({ api: t.base, path: path.split('?')[0], message: ironicError(text) }, 'API refused the ramdisk endpoint (403): trying the next API URL');
          last = { statusCode: res.statusCode, text };
          continue;
        }
        if (i > 0) {
          this.targets = [...this.targets.slice(i), ...this.targets.slice(0, i)];
          log.info({ api: t.base }, 'using this API URL from now on');
        }
        return { statusCode: res.statusCode, text };
      } catch (err) {
        if (!more) throw err;
        lastError = err;
        log.warn({ api: t.base, err: (err as Error).message }, 'API unreachable: trying the next API URL');
      }
    }
    if (last) return last;
    throw lastError;
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
    const res = await this.send(`/v1/lookup?${q}`, { headers: this.headers() });
    const text = res.text;
    if (res.statusCode === 200) {
      const parsed = JSON.parse(text) as LookupResult;
      if (!parsed?.node?.uuid) throw new Error(`lookup answer without node.uuid: ${text.slice(0, 200)}`);
      return { kind: 'found', result: parsed };
    }
    return { kind: 'not-found', status: res.statusCode, message: ironicError(text) };
  }

  async heartbeat(nodeUuid: string, body: HeartbeatBody): Promise<HeartbeatOutcome> {
    const res = await this.send(`/v1/heartbeat/${encodeURIComponent(nodeUuid)}`, {
      method: 'POST',
      headers: { ...this.headers(), 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    const text = res.text;
    if (res.statusCode === 202 || res.statusCode === 200) return { kind: 'ok' };
    const message = ironicError(text);
    if (res.statusCode === 409) return { kind: 'locked', message };
    if (res.statusCode === 404 || (res.statusCode === 400 && /token/i.test(message)) || res.statusCode === 401) {
      return { kind: 'relookup', status: res.statusCode, message };
    }
    return { kind: 'error', status: res.statusCode, message };
  }

  /**
   * POSTs the inspection payload (ipa-inspection-callback-url). Ironic's
   * /v1/continue_inspection answers 404 to any version but 1.1 and >= 1.84;
   * at 1.84 it answers like a lookup (node, config, a fresh agent token), so
   * that version is asked for whatever lookups use. ironic-inspector's
   * /v1/continue ignores the header.
   */
  async postInspection(url: string, payload: unknown): Promise<{ status: number; body: string }> {
    const { url: plain, zone } = splitZone(url);
    const res = await conductorRequest(plain, zone, {
      method: 'POST',
      headers: { ...this.headers(), 'X-OpenStack-Ironic-API-Version': INSPECTION_API_VERSION, 'content-type': 'application/json' },
      body: JSON.stringify(payload),
    }, this.http);
    return { status: res.statusCode, body: res.text };
  }

  /** Nothing held between requests (a connection per request); kept for callers. */
  async close(): Promise<void> {}
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
