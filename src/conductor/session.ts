import { setTimeout as sleep } from 'node:timers/promises';
import { log } from '../log.ts';
import type { ConductorClient, HeartbeatBody, LookupResult } from './client.ts';

// Lookup with back-off, then heartbeats for as long as the agent lives: at a
// jittered fraction of heartbeat_timeout, at once when a command ends, soon
// again when the node is locked, and after a fresh lookup when Ironic stops
// knowing our token (a phase ended without the node being rebooted).

export interface SessionOptions {
  client: ConductorClient;
  macs: string[];
  nodeUuid?: string;
  /** Seconds; the first lookup gives up after this (IPA exits; our supervisor restarts us). */
  lookupTimeoutSec: number;
  lookupIntervalSec: number;
  /** What goes into every heartbeat besides the token. */
  heartbeatBody(): Omit<HeartbeatBody, 'agent_token'>;
  onLookup(result: LookupResult): void;
  token(): string | undefined;
}

export class LookupTimeoutError extends Error {}

const MAX_LOOKUP_BACKOFF_SEC = 30;
const LOCKED_RETRY_MS = 5_000;

export class ConductorSession {
  private stopped = false;
  private wake: (() => void) | undefined;
  private heartbeatTimeoutSec = 300;
  nodeUuid: string | undefined;
  lastHeartbeatOk: Date | undefined;

  constructor(private readonly opts: SessionOptions) {}

  /** Looks the node up until found; throws LookupTimeoutError after `timeoutSec` (undefined: forever). */
  async lookup(timeoutSec: number | undefined): Promise<LookupResult> {
    const deadline = timeoutSec === undefined ? Infinity : Date.now() + timeoutSec * 1000;
    let delay = Math.max(this.opts.lookupIntervalSec, 0.1);
    for (let attempt = 1; !this.stopped; attempt++) {
      try {
        const outcome = await this.opts.client.lookup(this.opts.macs, this.opts.nodeUuid ?? this.nodeUuid);
        if (outcome.kind === 'found') {
          const r = outcome.result;
          this.nodeUuid = r.node.uuid;
          const hb = Number(r.config?.heartbeat_timeout);
          if (Number.isFinite(hb) && hb > 0) this.heartbeatTimeoutSec = hb;
          log.info({ node: r.node.uuid, attempt, state: r.node.provision_state }, 'lookup succeeded');
          this.opts.onLookup(r);
          return r;
        }
        log.info({ attempt, status: outcome.status, message: outcome.message }, 'lookup: node not ready yet');
      } catch (err) {
        log.warn({ attempt, err: (err as Error).message }, 'lookup failed');
      }
      if (Date.now() + delay * 1000 > deadline) break;
      await this.pause(delay * 1000);
      delay = Math.min(delay * 2, MAX_LOOKUP_BACKOFF_SEC);
    }
    throw new LookupTimeoutError(`lookup of MACs ${this.opts.macs.join(',') || '(none)'} found no node within ${timeoutSec} s`);
  }

  /** IPA: between 0.3 and 0.6 of heartbeat_timeout, so a lost beat still leaves time. */
  private intervalMs(): number {
    return this.heartbeatTimeoutSec * (0.3 + Math.random() * 0.3) * 1000;
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
      let next = this.intervalMs();
      try {
        const body: HeartbeatBody = { ...this.opts.heartbeatBody(), agent_token: this.opts.token() };
        const outcome = await this.opts.client.heartbeat(this.nodeUuid!, body);
        switch (outcome.kind) {
          case 'ok':
            this.lastHeartbeatOk = new Date();
            log.debug({ node: this.nodeUuid }, 'heartbeat accepted');
            break;
          case 'locked':
            log.info({ message: outcome.message }, 'heartbeat: node locked, retrying soon');
            next = LOCKED_RETRY_MS;
            break;
          case 'relookup':
            log.warn({ status: outcome.status, message: outcome.message }, 'heartbeat refused; looking the node up again');
            await this.lookup(undefined);
            next = 0;
            break;
          case 'error':
            log.warn({ status: outcome.status, message: outcome.message }, 'heartbeat failed');
            break;
        }
      } catch (err) {
        log.warn({ err: (err as Error).message }, 'heartbeat: conductor unreachable');
      }
      if (next > 0) await this.pause(next);
    }
  }

  stop(): void {
    this.stopped = true;
    this.wake?.();
  }
}
