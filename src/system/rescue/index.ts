import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { log } from '../../log.ts';
import type { Guard } from '../safety.ts';
import { RESCUE_USER, setRescueAccount } from './accounts.ts';
import { isCryptHash, sha256Crypt } from './sha-crypt.ts';
import { startSerialLogins, startSshServer } from './services.ts';

export { renewDhcpLeases } from './dhcp-renew.ts';
export { isCryptHash, sha256Crypt } from './sha-crypt.ts';

// Rescue (IPA's rescue.finalize_rescue): the node was booted into the agent's
// ramdisk so that an operator can log in and repair it. The agent sets the
// rescue user's password, starts what the operator logs in through and then
// gets out of the way (the command layer stops the API and heartbeats).
//
// Outside a ramdisk this must never happen to the host: no user is created,
// no password changed, no SSH server started. It is a dry run, said so in the
// log and in the result, like power actions (power.ts).

/** Marker the ramdisk init reads: the agent is not restarted once the node is rescued. */
export const RESCUED_MARKER = '/run/metal-agent.rescued';

export class RescueInputError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RescueInputError';
  }
}

/**
 * The crypt hash to store, from finalize_rescue's arguments: Ironic 21.4,
 * 29.0 and 39.0 all send {rescue_password: <crypt hash>, hashed: true}, and
 * fall back to the plain password without `hashed` when an old agent fails
 * that call (unless [conductor]require_rescue_password_hashed); the plain
 * one is hashed here with SHA-256-crypt, as IPA does.
 */
export function rescueHash(password: unknown, hashed: unknown): string {
  if (typeof password !== 'string' || password === '') {
    throw new RescueInputError('rescue_password must be a non-empty string');
  }
  if (hashed !== undefined && typeof hashed !== 'boolean') {
    throw new RescueInputError(`hashed must be true or false, not ${JSON.stringify(hashed)}`);
  }
  if (!hashed) return sha256Crypt(password);
  if (!isCryptHash(password)) {
    throw new RescueInputError('rescue_password with hashed=true must be a crypt(3) hash such as $5$salt$hash (no ":" or whitespace)');
  }
  return password;
}

export interface RescueOutcome {
  dry_run: boolean;
  user: string;
  message: string;
}

export interface RescueDeps {
  guard: Guard;
  /** File system root whose /etc is edited (tests: a temporary directory). */
  root?: string;
  /** Starts the SSH server and the serial logins (tests replace it). */
  startServices?: () => Promise<void>;
}

async function startLoginServices(): Promise<void> {
  await startSshServer();
  startSerialLogins();
}

/** Sets the rescue user's password and starts the logins; a dry run outside a ramdisk. */
export async function prepareRescue(cryptHash: string, deps: RescueDeps): Promise<RescueOutcome> {
  if (!deps.guard.opts.inRamdisk) {
    const message =
      `dry run: would create the '${RESCUE_USER}' user, set its password and start an SSH server, ` +
      'but the agent is not running in a ramdisk (the host\'s accounts are never changed)';
    log.warn(message);
    return { dry_run: true, user: RESCUE_USER, message };
  }
  const root = deps.root ?? '/';
  const account = setRescueAccount(root, cryptHash);
  log.info({ user: account.user, created: account.created }, 'rescue: password set');
  await (deps.startServices ?? startLoginServices)();
  mkdirSync(dirname(join(root, RESCUED_MARKER)), { recursive: true });
  writeFileSync(join(root, RESCUED_MARKER), `${new Date().toISOString()}\n`);
  return { dry_run: false, user: account.user, message: `user '${account.user}' ${account.created ? 'created' : 'updated'}; SSH and serial logins started` };
}
