import { timingSafeEqual } from 'node:crypto';

// The agent token: learnt at lookup (or from ipa-agent-token). Once known,
// every POST must carry it. GETs of command results follow IPA 10's rule:
// free until one arrives carrying a token (Ironic 29 sends it), required after.
export class TokenKeeper {
  private token: string | undefined;
  private getsCarryToken = false;

  constructor(initial?: string) {
    this.token = initial || undefined;
  }

  get value(): string | undefined {
    return this.token;
  }

  set(token: string | undefined): void {
    if (token) this.token = token;
  }

  private matches(candidate: string | undefined): boolean {
    if (!this.token || candidate === undefined) return false;
    const a = Buffer.from(this.token);
    const b = Buffer.from(candidate);
    return a.length === b.length && timingSafeEqual(a, b);
  }

  /** POST: a token is required once the agent holds one. */
  allowsCommand(candidate: string | undefined): boolean {
    return this.token === undefined || this.matches(candidate);
  }

  /** GET of command results: see the class comment. */
  allowsRead(candidate: string | undefined): boolean {
    if (candidate !== undefined && candidate !== '') this.getsCarryToken = true;
    if (!this.getsCarryToken || this.token === undefined) return true;
    return this.matches(candidate);
  }
}
