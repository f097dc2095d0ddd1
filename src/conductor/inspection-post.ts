import { setTimeout as sleep } from 'node:timers/promises';
import { log } from '../log.ts';
import { Backoff } from './backoff.ts';
import type { ConductorClient } from './client.ts';

// The inspection callback (ipa-inspection-callback-url) POSTed the way IPA 13
// does it (inspector.py call_inspector): the endpoint unreachable, answering
// 5xx or 409 (the node locked) -> another try after an exponential back-off
// of 5 to 30 s, five tries in all; any other answer is final. Every failed try
// is logged with its reason; giving up is logged too, never thrown: the agent
// goes on serving (and heartbeating, when it has an API URL).

export interface InspectionPostOptions {
  attempts?: number;
  backoff?: Backoff;
}

export type InspectionPostResult = { ok: true; status: number; body: string } | { ok: false; status?: number; reason: string };

export async function postInspectionWithRetry(
  client: ConductorClient,
  url: string,
  payload: unknown,
  opts: InspectionPostOptions = {},
): Promise<InspectionPostResult> {
  const attempts = opts.attempts ?? 5;
  const backoff = opts.backoff ?? new Backoff({ baseMs: 5_000, capMs: 30_000 });
  let last: InspectionPostResult = { ok: false, reason: 'not tried' };
  for (let attempt = 1; attempt <= attempts; attempt++) {
    let retryable: boolean;
    try {
      const res = await client.postInspection(url, payload);
      retryable = res.status >= 500 || res.status === 409;
      if (res.status >= 200 && res.status < 300) return { ok: true, status: res.status, body: res.body };
      last = { ok: false, status: res.status, reason: `HTTP ${res.status}: ${res.body.slice(0, 300)}` };
    } catch (err) {
      retryable = true;
      last = { ok: false, reason: `unreachable: ${(err as Error).message}` };
    }
    if (!retryable) break;
    if (attempt < attempts) {
      const wait = backoff.next();
      log.warn({ url, attempt, of: attempts, reason: last.reason, retryInMs: wait }, 'inspection callback failed, retrying');
      await sleep(wait);
    }
  }
  log.error({ url, reason: last.reason }, 'inspection callback failed; giving up (the agent keeps running)');
  return last;
}
