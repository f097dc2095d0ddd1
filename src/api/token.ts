import { timingSafeEqual } from 'node:crypto';
import { log } from '../log.ts';

// The agent token: learnt at lookup (or from ipa-agent-token, on the kernel
// command line or in virtual media's parameters.txt). Without one, no command
// runs: the API listens before lookup, and anyone on the provisioning network
// could otherwise erase disks or power the node off until Ironic knows it
// (IPA 10 refuses them too). Only --standalone, where no Ironic hands a token
// out, lets token-less commands through, loudly.
//
// What is taken as a token: Ironic's tokens are secrets.token_urlsafe(), 43
// characters. When the node already holds one, lookup answers the placeholder
// "******" (virtual-media boots, whose token Ironic pre-generated, and any
// restarted agent): never a token, never stored, and it never replaces one we
// hold. Like IPA, nothing shorter than 32 characters is taken either.
//
// Once a token is known, every POST must carry it. GETs of command results
// follow IPA 10's rule: free until one arrives carrying the token (Ironic 29
// sends it), required after; Ironic 21.4 never sends one and keeps working.
// One difference from IPA: only the valid token switches the rule on. IPA
// switches on any non-empty agent_token, so anyone who can reach the agent
// could lock a 21.4 conductor out of its command results with a GET carrying a
// made-up token. A GET that carries a token must carry the right one, whatever
// the mode.

/** What Ironic answers at lookup when the node already holds a token. */
export const TOKEN_PLACEHOLDER = '******';
export const MIN_TOKEN_LENGTH = 32;

/** What offering a token did: see TokenKeeper.offer. */
export type TokenOffer =
  /** Nothing was offered (an Ironic without tokens). */
  | 'absent'
  /** Ironic's "******": the node holds a token we were not given now. */
  | 'placeholder'
  /** Too short to be one of Ironic's tokens: ignored. */
  | 'unusable'
  /** The token we already hold. */
  | 'same'
  /** A first token. */
  | 'adopted'
  /** A different real token: Ironic started a new session (a phase ended and the old token was wiped). */
  | 'replaced';

export function isUsableToken(token: unknown): token is string {
  return typeof token === 'string' && token !== TOKEN_PLACEHOLDER && token.length >= MIN_TOKEN_LENGTH;
}

export interface TokenKeeperOptions {
  /** --standalone: no Ironic hands out a token, so commands without one are let through (loudly). */
  standalone?: boolean;
}

export class TokenKeeper {
  private token: string | undefined;
  private getsCarryToken = false;
  private readonly standalone: boolean;

  constructor(initial?: string, opts: TokenKeeperOptions = {}) {
    this.standalone = opts.standalone ?? false;
    if (initial) this.offer(initial, 'operator');
  }

  get value(): string | undefined {
    return this.token;
  }

  /**
   * Offers a token from lookup (or the operator's ipa-agent-token). A usable
   * one is adopted, or replaces a different one; the placeholder and short
   * values never are, and a held token is kept.
   */
  offer(candidate: string | undefined | null, source: 'lookup' | 'operator' = 'lookup'): TokenOffer {
    if (candidate === undefined || candidate === null || candidate === '') return 'absent';
    if (candidate === TOKEN_PLACEHOLDER) return 'placeholder';
    if (candidate.length < MIN_TOKEN_LENGTH) {
      log.warn({ source, length: candidate.length }, `agent token ignored: shorter than ${MIN_TOKEN_LENGTH} characters (Ironic's tokens are 43)`);
      return 'unusable';
    }
    if (this.token === candidate) return 'same';
    const verdict = this.token === undefined ? 'adopted' : 'replaced';
    this.token = candidate;
    this.getsCarryToken = false;
    return verdict;
  }

  private matches(candidate: string | undefined): boolean {
    if (!this.token || candidate === undefined) return false;
    const a = Buffer.from(this.token);
    const b = Buffer.from(candidate);
    return a.length === b.length && timingSafeEqual(a, b);
  }

  /** POST: the held token is required; with none held, only --standalone lets a command through. */
  allowsCommand(candidate: string | undefined): boolean {
    if (this.token !== undefined) return this.matches(candidate);
    if (this.standalone) {
      log.warn('standalone: running a command WITHOUT an agent token (anyone who can reach this port can run commands)');
      return true;
    }
    return false;
  }

  /** GET of command results: see the comment at the top. */
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
