import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { log } from '../../log.ts';

// "Leave the rescue network as Ironic asks": once the agent has answered
// finalize_rescue, Ironic takes the node's ports off the rescuing network and
// puts them on the tenant network (with Neutron: new port bindings, a new
// DHCP server and address). IPA's ramdisk runs DHCP again on every interface
// for that. Here: every interface that holds a DHCP lease releases it at
// once (the rescuing network's address goes away) and asks again after a
// pause, so the answer comes from the tenant network. Addresses that did not
// come from DHCP (static network_data) are left as they are.

export interface DhcpClient {
  iface: string;
  pid: number;
}

/**
 * Interfaces whose address came from DHCP and the udhcpc that holds each: the
 * ramdisk's udhcpc hook (ramdisk-build/udhcpc.script) keeps /run/udhcpc.IFACE.lease
 * while a lease is held; the init starts udhcpc with -p /run/udhcpc.IFACE.pid.
 */
export function dhcpClients(runDir = '/run'): DhcpClient[] {
  let names: string[];
  try {
    names = readdirSync(runDir);
  } catch {
    return [];
  }
  const out: DhcpClient[] = [];
  for (const n of names) {
    const m = /^udhcpc\.(.+)\.lease$/.exec(n);
    if (!m) continue;
    const pidFile = join(runDir, `udhcpc.${m[1]}.pid`);
    const pid = existsSync(pidFile) ? Number(readFileSync(pidFile, 'utf8').trim()) : NaN;
    if (Number.isInteger(pid) && pid > 1) out.push({ iface: m[1]!, pid });
  }
  return out;
}

export interface RenewOptions {
  runDir?: string;
  /** Pause between release and the new request: time for Ironic to switch networks. */
  pauseMs?: number;
  /** Sends a signal (default process.kill; tests record instead). */
  signal?: (pid: number, sig: NodeJS.Signals) => void;
  /** Whether pid is still a udhcpc (default: its /proc/PID/comm). */
  isDhcpClient?: (pid: number) => boolean;
}

function procIsUdhcpc(pid: number): boolean {
  try {
    return readFileSync(`/proc/${pid}/comm`, 'utf8').trim() === 'udhcpc';
  } catch {
    return false;
  }
}

/** busybox udhcpc: SIGUSR2 releases the lease, SIGUSR1 then starts a new request. */
export async function renewDhcpLeases(opts: RenewOptions = {}): Promise<string[]> {
  const send = opts.signal ?? ((pid, sig) => process.kill(pid, sig));
  const isClient = opts.isDhcpClient ?? procIsUdhcpc;
  // Only processes that are what the pid file says: a stale file must not make us signal another program.
  const clients = dhcpClients(opts.runDir).filter((c) => isClient(c.pid));
  if (clients.length === 0) {
    log.info('rescue: no DHCP lease to renew (static addresses stay)');
    return [];
  }
  for (const c of clients) send(c.pid, 'SIGUSR2');
  log.info({ interfaces: clients.map((c) => c.iface) }, 'rescue: DHCP leases released; asking again for the tenant network');
  await sleep(opts.pauseMs ?? 10_000);
  for (const c of clients) if (isClient(c.pid)) send(c.pid, 'SIGUSR1');
  return clients.map((c) => c.iface);
}
