import { existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { log } from '../../log.ts';
import { run, spawnStreaming } from '../exec.ts';

// What a rescue user logs in through, started only when the node is rescued
// (never at an ordinary boot): dropbear, with a host key made at that moment
// (each rescue has its own; the ramdisk image carries none), and a login
// prompt on every serial console the kernel writes to.

export const DROPBEAR_KEY = '/etc/dropbear/dropbear_ed25519_host_key';
const DROPBEAR_PID = '/run/dropbear.pid';

/** Generates the host key and starts dropbear on port 22; returns the key's fingerprint line. */
export async function startSshServer(): Promise<string> {
  mkdirSync('/etc/dropbear', { recursive: true, mode: 0o700 });
  rmSync(DROPBEAR_KEY, { force: true });
  const key = await run('dropbearkey', ['-t', 'ed25519', '-f', DROPBEAR_KEY], { timeoutMs: 60_000 });
  const fingerprint = /Fingerprint: .*/.exec(key.stdout + key.stderr)?.[0] ?? '';
  // -j -k: no port forwarding. dropbear forks into the background once it listens.
  rmSync(DROPBEAR_PID, { force: true });
  await run('dropbear', ['-r', DROPBEAR_KEY, '-p', '22', '-P', DROPBEAR_PID, '-j', '-k'], { timeoutMs: 30_000 });
  // The background child writes the pid file after the parent has exited: wait for it.
  let pid = NaN;
  for (let i = 0; i < 50 && !(pid > 1); i++) {
    if (existsSync(DROPBEAR_PID)) pid = Number(readFileSync(DROPBEAR_PID, 'utf8').trim());
    if (!(pid > 1)) await sleep(100);
  }
  if (!(Number.isInteger(pid) && pid > 1 && existsSync(`/proc/${pid}`))) throw new Error(`dropbear did not start: no live process in ${DROPBEAR_PID}`);
  log.info({ pid, fingerprint }, 'rescue: SSH server (dropbear) listening on port 22');
  return fingerprint;
}

/** Serial consoles (ttyS*, ttyAMA*) among the kernel's active consoles. */
export function serialConsoles(activePath = '/sys/class/tty/console/active'): string[] {
  let active = '';
  try {
    active = readFileSync(activePath, 'utf8');
  } catch {
    return [];
  }
  return active.split(/\s+/).filter((c) => /^tty(S|AMA|USB)\d+$/.test(c));
}

/** A login prompt (busybox getty + login) on each serial console, started again after every logout. */
export function startSerialLogins(consoles: string[] = serialConsoles()): string[] {
  for (const tty of consoles) {
    const respawn = () => {
      // No timeout: a login session lasts as long as the operator wants.
      const { done } = spawnStreaming('getty', ['-L', '115200', tty, 'vt100'], { timeoutMs: 0, stdin: 'ignore', stdout: 'ignore' });
      done
        .catch((err: unknown) => log.warn({ tty, err: (err as Error).message }, 'rescue: getty ended'))
        .finally(() => setTimeout(respawn, 1000).unref());
    };
    respawn();
  }
  log.info({ consoles }, 'rescue: login prompt on the serial consoles');
  return consoles;
}
