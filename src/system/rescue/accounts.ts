import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

// The rescue account, written straight into /etc/passwd and /etc/shadow of the
// ramdisk (busybox's adduser/chpasswd would work too, but files are what both
// dropbear and busybox login read, and a file edit can be tested in a temp dir).
//
// Like IPA's rescue user (passwordless sudo to root), `rescue` here IS root
// (uid 0): the ramdisk has no sudo, and an operator in rescue needs root to
// repair disks. root itself stays locked ('*' in /etc/shadow), so logging in
// as root with any password fails.

export const RESCUE_USER = 'rescue';
const RESCUE_HOME = '/home/rescue';

export interface RescueAccountOutcome {
  created: boolean;
  user: string;
}

function readLines(path: string): string[] {
  return existsSync(path) ? readFileSync(path, 'utf8').split('\n').filter((l) => l !== '') : [];
}

/** Writes through a temporary file and a rename, so no reader sees half a file. */
function writeAtomically(path: string, lines: string[], mode: number): void {
  const tmp = `${path}.metal-agent.tmp`;
  writeFileSync(tmp, lines.join('\n') + '\n', { mode });
  chmodSync(tmp, mode);
  renameSync(tmp, path);
}

function upsert(lines: string[], user: string, line: string): { lines: string[]; added: boolean } {
  const i = lines.findIndex((l) => l.startsWith(`${user}:`));
  if (i < 0) return { lines: [...lines, line], added: true };
  const copy = lines.slice();
  copy[i] = line;
  return { lines: copy, added: false };
}

/**
 * Creates the rescue user when missing and sets its password hash. `root` is
 * the file system root to edit: '/' in the ramdisk, a temporary directory in
 * tests. The caller has checked that this is a ramdisk (or a test root).
 */
export function setRescueAccount(root: string, cryptHash: string): RescueAccountOutcome {
  const etc = join(root, 'etc');
  mkdirSync(etc, { recursive: true });

  const passwdPath = join(etc, 'passwd');
  const passwd = readLines(passwdPath);
  const hasUser = passwd.some((l) => l.startsWith(`${RESCUE_USER}:`));
  if (!hasUser) writeAtomically(passwdPath, [...passwd, `${RESCUE_USER}:x:0:0:rescue:${RESCUE_HOME}:/bin/sh`], 0o644);

  const days = Math.floor(Date.now() / 86_400_000);
  const shadowPath = join(etc, 'shadow');
  let shadow = readLines(shadowPath);
  // root stays locked: only the rescue user logs in with a password.
  if (!shadow.some((l) => l.startsWith('root:'))) shadow = [`root:*:${days}:0:99999:7:::`, ...shadow];
  shadow = upsert(shadow, RESCUE_USER, `${RESCUE_USER}:${cryptHash}:${days}:0:99999:7:::`).lines;
  writeAtomically(shadowPath, shadow, 0o600);

  // dropbear refuses a user whose shell is not listed in /etc/shells.
  const shellsPath = join(etc, 'shells');
  const shells = readLines(shellsPath);
  if (!shells.includes('/bin/sh')) writeAtomically(shellsPath, [...shells, '/bin/sh'], 0o644);

  mkdirSync(join(root, RESCUE_HOME), { recursive: true, mode: 0o700 });
  return { created: !hasUser, user: RESCUE_USER };
}
