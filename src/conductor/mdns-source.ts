import { BlockList, isIPv4, isIPv6 } from 'node:net';
import { networkInterfaces, type NetworkInterfaceInfo } from 'node:os';

// RFC 6762 section 11 (source address check) and section 6 (source port):
// an mDNS response counts only when it comes from port 5353 and from a
// neighbour on one of our links: an IPv4 source in a subnet of one of the
// interfaces discovery runs on (or IPv4 link-local), an IPv6 link-local
// source (on one of those interfaces when the kernel names its scope), or an
// IPv6 source inside one of those interfaces' on-link prefixes. Anything else
// was routed to us from elsewhere, or forged, and cannot describe this link's
// conductor. Interfaces are read at each packet: a SLAAC address may appear
// while discovery runs.

export const MDNS_PORT = 5353;

export interface ResponseSource {
  /** Source address; Node appends `%ifname` to an IPv6 link-local one. */
  address: string;
  port: number;
}

/** The local interfaces' addresses by name (os.networkInterfaces()'s shape). */
export type LocalInterfaces = Record<string, NetworkInterfaceInfo[] | undefined>;

const IPV4_LINK_LOCAL = { address: '169.254.0.0', prefix: 16 };
const IPV6_LINK_LOCAL = { address: 'fe80::', prefix: 10 };

/** Why a response is refused, or undefined when it is from an on-link neighbour on port 5353. */
export function offLinkReason(
  source: ResponseSource,
  interfaces: readonly string[],
  local: LocalInterfaces = networkInterfaces(),
): string | undefined {
  if (source.port !== MDNS_PORT) return `source port ${source.port} is not ${MDNS_PORT}`;
  const pct = source.address.indexOf('%');
  const address = pct >= 0 ? source.address.slice(0, pct) : source.address;
  const zone = pct >= 0 ? source.address.slice(pct + 1) : undefined;
  const family = isIPv4(address) ? 'ipv4' : isIPv6(address) ? 'ipv6' : undefined;
  if (family === undefined) return `source ${source.address} is not an IP address`;

  const onLink = new BlockList();
  if (family === 'ipv4') onLink.addSubnet(IPV4_LINK_LOCAL.address, IPV4_LINK_LOCAL.prefix, 'ipv4');
  for (const name of interfaces) {
    for (const a of local[name] ?? []) {
      if (a.internal || a.cidr === null) continue;
      const wanted = a.family === 'IPv4' ? 'ipv4' : 'ipv6';
      if (wanted !== family) continue;
      const prefix = Number(a.cidr.split('/')[1]);
      onLink.addSubnet(a.address.split('%')[0]!, prefix, wanted);
    }
  }
  if (family === 'ipv6') {
    const linkLocal = new BlockList();
    linkLocal.addSubnet(IPV6_LINK_LOCAL.address, IPV6_LINK_LOCAL.prefix, 'ipv6');
    if (linkLocal.check(address, 'ipv6')) {
      return zone === undefined || interfaces.includes(zone) ? undefined : `link-local source ${source.address} is on another interface`;
    }
  }
  return onLink.check(address, family) ? undefined : `source ${source.address} is not on a local link`;
}
