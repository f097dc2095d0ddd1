import { setTimeout as sleep } from 'node:timers/promises';
import { log } from '../log.ts';
import { Backoff } from './backoff.ts';
import type { ConductorClient, HeartbeatBody, LookupResult } from './client.ts';

// Lookup with back-off, then heartbeats for as long as the agent lives: at a
// jittered fraction of heartbeat_timeout, at once when a command ends, 5 to
// 10 s later when a heartbeat fails (409: the node is locked, or its agent URL
// not recorded yet; any other error; the conductor unreachable), as IPA does,
// and after a fresh lookup when Ironic stops knowing our token (a phase ended
// without the node being rebooted).
//
// Without a token Ironic accepts, heartbeats are pointless (Ironic refuses
// every one without the node's token): a lookup that leaves the agent without
// one (Ironic answers "******" to a restarted agent) is retried, and so is a
// refused heartbeat, with one back-off (jittered, capped) that only an
// accepted heartbeat resets. The agent then picks a real token up as soon as
// Ironic issues one (after it wipes the old one: a failed or ended phase, a
// power cycle) without hammering the API meanwhile.

export interface SessionOptions {
  client: ConductorClient;
  macs: string[];
  nodeUuid?: string;
  /** Seconds; the first lookup gives up after this (IPA exits; our supervisor restarts us). */
  lookupTimeoutSec: number;
  lookupIntervalSec: number;
  /** What goes into every heartbeat besides the token. */
  heartbeatBody(): Omit<HeartbeatBody, 'agent_token'>;
  /** Takes a lookup's answer; false when the agent holds no token Ironic would accept (do not heartbeat yet). */
  onLookup(result: LookupResult): boolean | void;
  token(): string | undefined;
  /** Sees every wait between heartbeats before it starts (ms, and why): tests read the plan, not the clock. */
  onWait?(ms: number, why: 'interval' | 'retry' | 'refused'): void;
  random?: () => number;
}

export class LookupTimeoutError extends Error {}

export const MAX_LOOKUP_BACKOFF_MS = 30_000;
/** Longest wait between attempts once Ironic refuses us: how late a token-less agent notices a new token. */
export const MAX_REFUSED_BACKOFF_MS = 60_000;
/**
 * After a failed heartbeat (409 locked / agent URL not recorded yet, an error,
 * the conductor unreachable): between 5 and 10 s, as IPA (5 s times a jitter
 * of 1 to 2), so a node keeps a dozen tries within the default 300 s
 * heartbeat_timeout and a rack of agents does not retry in step.
 */
export const HEARTBEAT_RETRY_MS = { min: 5_000, max: 10_000 } as const;

export function heartbeatRetryMs(random: () => number = Math.random): number {
  return Math.round(HEARTBEAT_RETRY_MS.min + (HEARTBEAT_RETRY_MS.max - HEARTBEAT_RETRY_MS.min) * Math.min(Math.max(random(), 0), 1));
}

export class ConductorSession {
  private stopped = false;
  private wake: (() => void) | undefined;
  private heartbeatTimeoutSec = 300;
  /** False when the last lookup left us without a token Ironic accepts, or Ironic refused a heartbeat. */
  private canHeartbeat = true;
  /** Refused heartbeats and lookups without a usable token; reset by an accepted heartbeat. */
  private readonly refusals: Backoff;
  nodeUuid: string | undefined;
  lastHeartbeatOk: Date | undefined;

  constructor(private readonly opts: SessionOptions) {
    this.refusals = new Backoff({ baseMs: this.baseMs(), capMs: MAX_REFUSED_BACKOFF_MS });
  }

  private baseMs(): number {
    return Math.max(this.opts.lookupIntervalSec, 0.1) * 1000;
  }

  /**
   * Looks the node up until found; throws LookupTimeoutError after `timeoutSec` (undefined: forever).
   * `backoff` paces the attempts (a fresh one for the first lookup; the session's refusals later).
   */
  async lookup(
    timeoutSec: number | undefined,
    backoff = new Backoff({ baseMs: this.baseMs(), capMs: MAX_LOOKUP_BACKOFF_MS }),
  ): Promise<LookupResult> {
    const deadline = timeoutSec === undefined ? Infinity : Date.now() + timeoutSec * 1000;
    for (let attempt = 1; !this.stopped; attempt++) {
      try {
        const outcome = await this.opts.client.lookup(this.opts.macs, this.opts.nodeUuid ?? this.nodeUuid);
        if (outcome.kind === 'found') {
          log.info({ node: outcome.result.node.uuid, attempt, state: outcome.result.node.provision_state }, 'lookup succeeded');
          return this.adopt(outcome.result);
        }
        log.info({ attempt, status: outcome.status, message: outcome.message }, 'lookup: node not ready yet');
      } catch (err) {
        log.warn({ attempt, err: (err as Error).message }, 'lookup failed');
      }
      const delay = backoff.next();
      if (Date.now() + delay > deadline) break;
      await this.pause(delay);
    }
    throw new LookupTimeoutError(`lookup of MACs ${this.opts.macs.join(',') || '(none)'} found no node within ${timeoutSec} s`);
  }

  /**
   * Takes a lookup's answer as the session's node: from a lookup, or from an
   * inspection answer shaped like one (Ironic >= 1.84's /v1/continue_inspection),
   * which makes the lookup unnecessary.
   */
  adopt(r: LookupResult): LookupResult {
    this.nodeUuid = r.node.uuid;
    const hb = Number(r.config?.heartbeat_timeout);
    if (Number.isFinite(hb) && hb > 0) this.heartbeatTimeoutSec = hb;
    this.canHeartbeat = this.opts.onLookup(r) !== false;
    return r;
  }

  /** IPA: between 0.3 and 0.6 of heartbeat_timeout, so a lost beat still leaves time. */
  private intervalMs(): number {
    return this.heartbeatTimeoutSec * (0.3 + this.random() * 0.3) * 1000;
  }

  private random(): number {
    return (this.opts.random ?? Math.random)();
  }

  /** Sends a heartbeat as soon as possible (a command just ended). */
  heartbeatNow(): void {
    this.wake?.();
  }

  private async pause(ms: number): Promise<void> {
    const ac = new AbortController();
    this.wake = () => ac.abort();
    try {
      await sleep(ms, undefined, { signal: ac.signal });
    } catch {
      /* woken early */
    } finally {
      this.wake = undefined;
    }
  }

  async heartbeatLoop(): Promise<void> {
    while (!this.stopped) {
      if (!this.canHeartbeat) {
        // Refused, or no usable token: look up again after the back-off.
        const wait = this.refusals.next();
        log.info({ retryInMs: wait, token: this.opts.token() ? 'held' : 'none' }, 'looking the node up again after a back-off');
        this.opts.onWait?.(wait, 'refused');
        await this.pause(wait);
        if (this.stopped) break;
        await this.lookup(undefined, this.refusals).catch((err: unknown) => log.warn({ err: (err as Error).message }, 'lookup'));
        continue;
      }
      let next = this.intervalMs();
      let why: 'interval' | 'retry' = 'interval';
      const retrySoon = () => {
        next = heartbeatRetryMs(() => this.random());
        why = 'retry';
      };
      try {
        const body: HeartbeatBody = { ...this.opts.heartbeatBody(), agent_token: this.opts.token() };
        const outcome = await this.opts.client.heartbeat(this.nodeUuid!, body);
        switch (outcome.kind) {
          case 'ok':
            this.lastHeartbeatOk = new Date();
            this.refusals.reset();
            log.debug({ node: this.nodeUuid }, 'heartbeat accepted');
            break;
          case 'locked':
            retrySoon();
            log.info({ message: outcome.message, retryInMs: next }, 'heartbeat answered 409 (node locked, or agent URL not recorded yet): retrying soon');
            break;
          case 'relookup':
            log.warn({ status: outcome.status, message: outcome.message }, 'heartbeat refused; looking the node up again');
            this.canHeartbeat = false;
            next = 0;
            break;
          case 'error':
            retrySoon();
            log.warn({ status: outcome.status, message: outcome.message, retryInMs: next }, 'heartbeat failed: retrying soon');
            break;
        }
      } catch (err) {
        retrySoon();
        log.warn({ err: (err as Error).message, retryInMs: next }, 'heartbeat: conductor unreachable, retrying soon');
      }
      if (next > 0) {
        this.opts.onWait?.(next, why);
        await this.pause(next);
      }
    }
  }

  stop(): void {
    this.stopped = true;
    this.wake?.();
  }
}
