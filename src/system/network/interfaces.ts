import { existsSync } from 'node:fs';
import { listLinksWithAddresses, type IpLink } from './ip.ts';

// Which interfaces count as "wired NICs" for DHCP-less bring-up: Ethernet
// links that are neither loopback, wireless, nor software constructs the
// agent (or a previous tenant) might have made on top of a real NIC. veth is
// kept: it is what the tests (and containers) hand us as a NIC.
const SOFTWARE_KINDS = new Set([
  'bridge', 'bond', 'team', 'vlan', 'macvlan', 'macvtap', 'ipvlan', 'vxlan', 'geneve',
  'gretap', 'ip6gretap', 'dummy', 'wireguard', 'vrf', 'tun', 'ifb', 'openvswitch',
]);

function isWireless(ifname: string): boolean {
  return existsSync(`/sys/class/net/${ifname}/wireless`) || existsSync(`/sys/class/net/${ifname}/phy80211`);
}

export function isWiredLink(link: IpLink, wireless: (ifname: string) => boolean = isWireless): boolean {
  if (link.ifname === 'lo' || link.flags.includes('LOOPBACK')) return false;
  if (link.link_type !== 'ether') return false;
  const kind = link.linkinfo?.info_kind;
  if (kind !== undefined && SOFTWARE_KINDS.has(kind)) return false;
  return !wireless(link.ifname);
}

/** Wired links of this namespace, optionally restricted to the given names. */
export async function wiredLinks(only?: readonly string[]): Promise<IpLink[]> {
  const links = (await listLinksWithAddresses()).filter((l) => isWiredLink(l));
  return only && only.length > 0 ? links.filter((l) => only.includes(l.ifname)) : links;
}
