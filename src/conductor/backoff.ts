// Exponential back-off with jitter and a cap, for talking to a conductor that
// keeps saying no (lookup before the node waits for us, heartbeats refused,
// re-lookups that give no usable token). The jitter spreads a rack of agents
// that were refused together; the cap keeps a refused agent coming back often
// enough to pick up a token as soon as Ironic issues one.

export interface BackoffOptions {
  /** First delay, before jitter. */
  baseMs: number;
  /** Largest delay, before jitter. */
  capMs: number;
  /** Each delay is the nominal one times a factor in [1 - jitter, 1 + jitter). */
  jitter?: number;
  random?: () => number;
}

export class Backoff {
  private nominalMs: number;
  private readonly jitter: number;
  private readonly random: () => number;

  constructor(private readonly opts: BackoffOptions) {
    this.nominalMs = Math.max(opts.baseMs, 1);
    this.jitter = Math.min(Math.max(opts.jitter ?? 0.25, 0), 1);
    this.random = opts.random ?? Math.random;
  }

  /** The next delay in ms (jittered); the one after is twice as long, up to the cap. */
  next(): number {
    const nominal = Math.min(this.nominalMs, this.opts.capMs);
    this.nominalMs = Math.min(this.nominalMs * 2, this.opts.capMs);
    return Math.round(nominal * (1 - this.jitter + 2 * this.jitter * this.random()));
  }

  /** Back to the first delay (the conductor said yes). */
  reset(): void {
    this.nominalMs = Math.max(this.opts.baseMs, 1);
  }
}
