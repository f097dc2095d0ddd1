import { timingSafeEqual } from 'node:crypto';

// The agent token: learnt at lookup (or from ipa-agent-token). Once known,
// every POST must carry it. GETs of command results follow IPA 10's rule:
// free until one arrives carrying the token (Ironic 29 sends it), required
// after; Ironic 21.4 never sends one and keeps working. One difference from
// IPA: only the valid token switches the rule on. IPA switches on any
// non-empty agent_token, so anyone who can reach the agent could lock a 21.4
// conductor out of its command results with a GET carrying a made-up token.
// A GET that carries a token must carry the right one, whatever the mode.
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
    if (this.token === undefined) return true;
    if (candidate !== undefined && candidate !== '') {
      if (!this.matches(candidate)) return false;
      this.getsCarryToken = true;
      return true;
    }
    return !this.getsCarryToken;
  }
}
