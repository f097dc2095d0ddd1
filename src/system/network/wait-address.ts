import { writeFile } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { log } from '../../log.ts';
import { ip, type IpAddress, type IpLink } from './ip.ts';
import { assertMayChangeNetwork, type NetworkChangePolicy } from './guard.ts';
import { wiredLinks } from './interfaces.ts';

// DHCP-less bring-up: with no DHCP client in the ramdisk the agent relies on
// IPv6 router advertisements (SLAAC), link-local addresses (enough for mDNS
// and for a conductor on the same segment), or statically applied addresses
// (virtual media network_data.json). This module brings the NICs up and waits
// until one of those is really usable, i.e. past duplicate address detection.

export type AddressKind = 'global' | 'link-local';

export interface UsableAddress {
  ifname: string;
  address: string;
  family: 'inet' | 'inet6';
  kind: AddressKind;
}

const SYSCTL_ROOT = '/proc/sys/net/ipv6/conf';

function assertPlainIfname(ifname: string): void {
  // Names come from the kernel, but they end up in a /proc path: refuse anything odd.
  if (!/^[A-Za-z0-9_.:@-]{1,15}$/.test(ifname) || ifname === '.' || ifname === '..') {
    throw new Error(`refusing odd interface name ${JSON.stringify(ifname)}`);
  }
}

/**
 * Lets the kernel configure the interface from router advertisements.
 * accept_ra=2 accepts RAs even when forwarding is on (some images enable it).
 */
export async function acceptRouterAdvertisements(
  ifname: string,
  policy: NetworkChangePolicy = {},
  sysctlRoot = SYSCTL_ROOT,
): Promise<void> {
  assertPlainIfname(ifname);
  assertMayChangeNetwork(`change IPv6 sysctls of ${ifname}`, policy);
  const settings: Array<[string, string]> = [['disable_ipv6', '0'], ['accept_ra', '2'], ['autoconf', '1']];
  for (const [key, value] of settings) {
    try {
      await writeFile(`${sysctlRoot}/${ifname}/${key}`, value);
    } catch (err) {
      // A kernel without IPv6 still leaves IPv4 usable: note it and go on.
      log.warn({ ifname, key, err: String(err) }, 'could not set IPv6 sysctl');
    }
  }
}

/** Brings every wired interface (or the named ones) up, accepting RAs. Returns their names. */
export async function bringUpWiredInterfaces(
  opts: { interfaces?: readonly string[]; acceptRa?: boolean } & NetworkChangePolicy = {},
): Promise<string[]> {
  assertMayChangeNetwork('bring network interfaces up', opts);
  const links = await wiredLinks(opts.interfaces);
  for (const link of links) {
    if (opts.acceptRa !== false) await acceptRouterAdvertisements(link.ifname, opts);
    await ip(['link', 'set', 'dev', link.ifname, 'up']);
  }
  log.info({ interfaces: links.map((l) => l.ifname) }, 'wired interfaces up');
  return links.map((l) => l.ifname);
}

/** How an address can be used, or undefined while it cannot (yet). */
export function classifyAddress(a: IpAddress): AddressKind | undefined {
  if (a.tentative || a.dadfailed) return undefined;
  if (a.family === 'inet') {
    if (a.local.startsWith('127.')) return undefined;
    return a.local.startsWith('169.254.') ? 'link-local' : 'global';
  }
  if (a.scope === 'global') return 'global';
  if (a.scope === 'link') return 'link-local';
  return undefined; // host/site scope
}

/** The best usable address among links: global before link-local, not deprecated before deprecated. */
export function pickUsableAddress(links: readonly IpLink[]): UsableAddress | undefined {
  let best: { rank: number; value: UsableAddress } | undefined;
  for (const link of links) {
    if (!link.flags.includes('UP')) continue;
    for (const a of link.addr_info ?? []) {
      const kind = classifyAddress(a);
      if (kind === undefined) continue;
      const rank = (kind === 'global' ? 0 : 2) + (a.deprecated ? 1 : 0);
      if (best === undefined || rank < best.rank) {
        best = { rank, value: { ifname: link.ifname, address: a.local, family: a.family, kind } };
      }
    }
  }
  return best?.value;
}

export class NoUsableAddressError extends Error {
  constructor(timeoutMs: number, interfaces: readonly string[]) {
    super(
      `no usable IPv4/IPv6 address on ${interfaces.length ? interfaces.join(', ') : 'any wired interface'} ` +
        `after ${timeoutMs} ms (no router advertisement, link-local address still tentative or link down?)`,
    );
    this.name = 'NoUsableAddressError';
  }
}

export interface WaitOptions {
  timeoutMs: number;
  interfaces?: readonly string[];
  /**
   * Link-local appears within a second or two, a SLAAC address only once a
   * router answers: after the first link-local one, wait this long for a
   * global one before settling for link-local.
   */
  linkLocalGraceMs?: number;
  pollMs?: number;
}

export async function waitForUsableAddress(opts: WaitOptions): Promise<UsableAddress> {
  const pollMs = opts.pollMs ?? 250;
  const grace = opts.linkLocalGraceMs ?? 3000;
  const start = Date.now();
  let firstLinkLocalAt: number | undefined;
  for (;;) {
    const found = pickUsableAddress(await wiredLinks(opts.interfaces));
    const now = Date.now();
    if (found?.kind === 'global') {
      log.info(found, 'usable address');
      return found;
    }
    if (found?.kind === 'link-local') {
      firstLinkLocalAt ??= now;
      if (now - firstLinkLocalAt >= grace || now - start >= opts.timeoutMs) {
        log.info(found, 'usable address (link-local only)');
        return found;
      }
    }
    if (now - start >= opts.timeoutMs) throw new NoUsableAddressError(opts.timeoutMs, opts.interfaces ?? []);
    await sleep(pollMs);
  }
}
