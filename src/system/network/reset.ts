import { log } from '../../log.ts';
import { assertMayChangeNetwork, type NetworkChangePolicy } from './guard.ts';
import { ip } from './ip.ts';
import { wiredLinks } from './interfaces.ts';

/**
 * Forgets everything the wired NICs learnt (addresses, routes) and brings them
 * back up, so that a fast-track agent moved to a tenant network starts from
 * scratch. Down/up also regenerates the link-local address and sends fresh
 * router solicitations. The caller re-runs discovery afterwards.
 */
export async function resetNetworking(opts: { interfaces?: readonly string[] } & NetworkChangePolicy = {}): Promise<string[]> {
  assertMayChangeNetwork('reset networking', opts);
  const links = await wiredLinks(opts.interfaces);
  for (const { ifname } of links) {
    await ip(['link', 'set', 'dev', ifname, 'down']);
    await ip(['-4', 'route', 'flush', 'dev', ifname]);
    await ip(['-6', 'route', 'flush', 'dev', ifname]);
    await ip(['addr', 'flush', 'dev', ifname]);
    await ip(['link', 'set', 'dev', ifname, 'up']);
  }
  log.info({ interfaces: links.map((l) => l.ifname) }, 'networking reset');
  return links.map((l) => l.ifname);
}
