import { hostBitsZero, classifyIp, ipv4Bytes, ipv6Bytes, netmaskToPrefix, normalizeMac } from './addresses.ts';

// OpenStack network_data.json (config drive / Ironic virtual media, the format
// glean reads in IPA ramdisks) → a validated model → a list of `ip` commands.
// The parser is strict: anything the agent would act on must have the right
// type and shape, or the whole document is refused with the offending path.
// Keys the agent does not act on (network_id, vif_id, ...) are ignored.

export class NetworkDataError extends Error {
  constructor(path: string, problem: string) {
    super(`network_data.json ${path}: ${problem}`);
    this.name = 'NetworkDataError';
  }
}

export interface NdLink {
  id: string;
  /** 'physical' for every link type that stands for a NIC (phy, ethernet, vif, ovs, ...). */
  kind: 'physical' | 'vlan' | 'bond';
  type: string;
  mac?: string;
  mtu?: number;
  vlanLink?: string;
  vlanId?: number;
}

export interface NdRoute {
  network: string;
  prefix: number;
  gateway: string;
}

export type NdNetworkType =
  | 'ipv4' | 'ipv6' | 'ipv4_dhcp' | 'ipv6_dhcp' | 'ipv6_slaac' | 'ipv6_dhcpv6-stateful' | 'ipv6_dhcpv6-stateless';

export interface NdNetwork {
  id: string;
  type: NdNetworkType;
  link: string;
  address?: string;
  prefix?: number;
  routes: NdRoute[];
  dns: string[];
}

export interface NetworkData {
  links: NdLink[];
  networks: NdNetwork[];
  dns: string[];
}

const NETWORK_TYPES: readonly NdNetworkType[] = [
  'ipv4', 'ipv6', 'ipv4_dhcp', 'ipv6_dhcp', 'ipv6_slaac', 'ipv6_dhcpv6-stateful', 'ipv6_dhcpv6-stateless',
];

type Obj = Record<string, unknown>;

function isObj(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function obj(v: unknown, path: string): Obj {
  if (!isObj(v)) throw new NetworkDataError(path, 'must be an object');
  return v;
}

function arr(v: unknown, path: string): unknown[] {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v)) throw new NetworkDataError(path, 'must be a list');
  return v;
}

function str(v: unknown, path: string): string {
  if (typeof v !== 'string' || v.length === 0 || v.length > 255) throw new NetworkDataError(path, 'must be a non-empty string');
  return v;
}

function optInt(v: unknown, path: string, min: number, max: number): number | undefined {
  if (v === undefined || v === null) return undefined;
  const n = typeof v === 'string' && /^\d+$/.test(v) ? Number(v) : v;
  if (typeof n !== 'number' || !Number.isInteger(n) || n < min || n > max) {
    throw new NetworkDataError(path, `must be an integer between ${min} and ${max}`);
  }
  return n;
}

function ipOf(family: 4 | 6, v: unknown, path: string): string {
  const s = str(v, path);
  const ok = family === 4 ? ipv4Bytes(s) : ipv6Bytes(s);
  if (!ok) throw new NetworkDataError(path, `must be an IPv${family} address`);
  return s;
}

function anyIp(v: unknown, path: string): string {
  const s = str(v, path);
  const cls = classifyIp(s);
  if (cls === undefined || cls === 'unspecified' || cls === 'multicast' || cls === 'broadcast') {
    throw new NetworkDataError(path, 'must be a unicast IP address');
  }
  return s;
}

function parseLink(raw: unknown, path: string): NdLink {
  const o = obj(raw, path);
  const id = str(o.id, `${path}.id`);
  const type = str(o.type, `${path}.type`);
  const mtu = optInt(o.mtu, `${path}.mtu`, 68, 65535);
  if (type === 'vlan') {
    const vlanLink = str(o.vlan_link, `${path}.vlan_link`);
    const vlanId = optInt(o.vlan_id, `${path}.vlan_id`, 1, 4094);
    if (vlanId === undefined) throw new NetworkDataError(`${path}.vlan_id`, 'is required for a vlan link');
    const macRaw = o.vlan_mac_address ?? o.ethernet_mac_address;
    const mac = macRaw === undefined || macRaw === null ? undefined : normalizeMac(str(macRaw, `${path}.vlan_mac_address`));
    if (macRaw !== undefined && macRaw !== null && mac === undefined) throw new NetworkDataError(`${path}.vlan_mac_address`, 'must be a MAC address');
    return { id, kind: 'vlan', type, mtu, vlanLink, vlanId, ...(mac ? { mac } : {}) };
  }
  if (type === 'bond') {
    arr(o.bond_links, `${path}.bond_links`).forEach((l, i) => str(l, `${path}.bond_links[${i}]`));
    return { id, kind: 'bond', type, mtu };
  }
  const mac = normalizeMac(str(o.ethernet_mac_address, `${path}.ethernet_mac_address`));
  if (!mac) throw new NetworkDataError(`${path}.ethernet_mac_address`, 'must be a MAC address');
  return { id, kind: 'physical', type, mac, mtu };
}

function parseDnsServices(raw: unknown, path: string): string[] {
  const out: string[] = [];
  arr(raw, path).forEach((s, i) => {
    const o = obj(s, `${path}[${i}]`);
    if (o.type === 'dns') out.push(anyIp(o.address, `${path}[${i}].address`));
  });
  return out;
}

/** A netmask in the family's notation (or a bare prefix length) → prefix length. */
function maskToPrefix(mask: string, family: 4 | 6): number | undefined {
  const max = family === 4 ? 32 : 128;
  if (/^\d{1,3}$/.test(mask)) return Number(mask) <= max ? Number(mask) : undefined;
  const inFamily = family === 4 ? ipv4Bytes(mask) : ipv6Bytes(mask);
  return inFamily ? netmaskToPrefix(mask) : undefined;
}

/** "addr/len" or addr + netmask → [address, prefix]. */
function addressAndPrefix(o: Obj, family: 4 | 6, path: string): [string, number] {
  const text = str(o.ip_address, `${path}.ip_address`);
  const [addrText, lenText, ...rest] = text.split('/');
  if (rest.length > 0) throw new NetworkDataError(`${path}.ip_address`, 'has more than one "/"');
  const address = ipOf(family, addrText, `${path}.ip_address`);
  const max = family === 4 ? 32 : 128;
  let prefix: number | undefined;
  if (lenText !== undefined) {
    if (!/^\d{1,3}$/.test(lenText) || Number(lenText) > max) throw new NetworkDataError(`${path}.ip_address`, 'has a bad prefix length');
    prefix = Number(lenText);
  }
  if (o.netmask !== undefined && o.netmask !== null) {
    const maskText = str(o.netmask, `${path}.netmask`);
    const fromMask = maskToPrefix(maskText, family);
    if (fromMask === undefined) throw new NetworkDataError(`${path}.netmask`, `must be a contiguous IPv${family} netmask`);
    if (prefix !== undefined && prefix !== fromMask) throw new NetworkDataError(`${path}.netmask`, 'contradicts the prefix length in ip_address');
    prefix = fromMask;
  }
  if (prefix === undefined) throw new NetworkDataError(`${path}.netmask`, 'is required when ip_address has no prefix length');
  return [address, prefix];
}

function parseRoute(raw: unknown, family: 4 | 6, path: string): NdRoute {
  const o = obj(raw, path);
  const network = ipOf(family, o.network, `${path}.network`);
  const maskText = str(o.netmask, `${path}.netmask`);
  const prefix = maskToPrefix(maskText, family);
  if (prefix === undefined) throw new NetworkDataError(`${path}.netmask`, 'must be a contiguous netmask');
  if (!hostBitsZero(network, prefix)) throw new NetworkDataError(`${path}.network`, `has host bits set for /${prefix}`);
  const gateway = ipOf(family, o.gateway, `${path}.gateway`);
  return { network, prefix, gateway };
}

function parseNetwork(raw: unknown, path: string): NdNetwork {
  const o = obj(raw, path);
  const id = typeof o.id === 'string' ? o.id : path;
  const type = str(o.type, `${path}.type`) as NdNetworkType;
  if (!NETWORK_TYPES.includes(type)) throw new NetworkDataError(`${path}.type`, `unknown network type ${JSON.stringify(type)}`);
  const link = str(o.link, `${path}.link`);
  const dns = parseDnsServices(o.services, `${path}.services`);
  if (type !== 'ipv4' && type !== 'ipv6') return { id, type, link, routes: [], dns };
  const family = type === 'ipv4' ? 4 : 6;
  const [address, prefix] = addressAndPrefix(o, family, path);
  const routes = arr(o.routes, `${path}.routes`).map((r, i) => parseRoute(r, family, `${path}.routes[${i}]`));
  return { id, type, link, address, prefix, routes, dns };
}

export function parseNetworkData(doc: unknown): NetworkData {
  const o = obj(doc, '(top)');
  const links = arr(o.links, 'links').map((l, i) => parseLink(l, `links[${i}]`));
  const ids = new Set<string>();
  links.forEach((l, i) => {
    if (ids.has(l.id)) throw new NetworkDataError(`links[${i}].id`, `duplicate link id ${JSON.stringify(l.id)}`);
    ids.add(l.id);
  });
  links.forEach((l, i) => {
    if (l.kind === 'vlan' && !ids.has(l.vlanLink!)) throw new NetworkDataError(`links[${i}].vlan_link`, 'names no link');
  });
  const networks = arr(o.networks, 'networks').map((n, i) => parseNetwork(n, `networks[${i}]`));
  networks.forEach((n, i) => {
    if (!ids.has(n.link)) throw new NetworkDataError(`networks[${i}].link`, `names no link (${JSON.stringify(n.link)})`);
  });
  return { links, networks, dns: parseDnsServices(o.services, 'services') };
}

/** A NIC as the planner needs it. */
export interface PlanInterface {
  ifname: string;
  mac: string;
  /** Only wired NICs can take a physical link (a VLAN child shares its parent's MAC). */
  wired: boolean;
}

export interface NetworkPlan {
  /** Arguments for `ip`, in order. */
  commands: string[][];
  /** Interfaces that should accept router advertisements (ipv6_slaac networks). */
  acceptRa: string[];
  nameservers: string[];
  warnings: string[];
  /** Interface name per link id, for the links that could be placed. */
  interfaces: Record<string, string>;
  /** Static addresses the commands add (the caller waits for their duplicate address detection). */
  addresses: Array<{ dev: string; address: string; prefix: number }>;
}

function vlanName(parent: string, vlanId: number): string {
  const dotted = `${parent}.${vlanId}`;
  return dotted.length <= 15 ? dotted : `vlan${vlanId}`;
}

/** Pure: what to run to make this namespace look like network_data.json says. */
export function planNetworkData(data: NetworkData, nics: readonly PlanInterface[]): NetworkPlan {
  const plan: NetworkPlan = { commands: [], acceptRa: [], nameservers: [], warnings: [], interfaces: {}, addresses: [] };
  const existing = new Set(nics.map((n) => n.ifname));
  const byLink = plan.interfaces;

  for (const link of data.links.filter((l) => l.kind === 'physical')) {
    const nic = nics.find((n) => n.wired && normalizeMac(n.mac) === link.mac);
    if (!nic) {
      plan.warnings.push(`link ${link.id}: no wired interface with MAC ${link.mac}`);
      continue;
    }
    byLink[link.id] = nic.ifname;
    if (link.mtu !== undefined) plan.commands.push(['link', 'set', 'dev', nic.ifname, 'mtu', String(link.mtu)]);
    plan.commands.push(['link', 'set', 'dev', nic.ifname, 'up']);
  }
  for (const link of data.links.filter((l) => l.kind === 'vlan')) {
    const parent = byLink[link.vlanLink!];
    if (!parent) {
      plan.warnings.push(`link ${link.id}: its vlan_link ${link.vlanLink} was not placed`);
      continue;
    }
    const name = vlanName(parent, link.vlanId!);
    byLink[link.id] = name;
    if (!existing.has(name)) {
      plan.commands.push(['link', 'add', 'link', parent, 'name', name, 'type', 'vlan', 'id', String(link.vlanId)]);
    }
    if (link.mac) plan.commands.push(['link', 'set', 'dev', name, 'address', link.mac]);
    if (link.mtu !== undefined) plan.commands.push(['link', 'set', 'dev', name, 'mtu', String(link.mtu)]);
    plan.commands.push(['link', 'set', 'dev', name, 'up']);
  }
  for (const link of data.links.filter((l) => l.kind === 'bond')) {
    plan.warnings.push(`link ${link.id}: bonds are not supported, its networks are skipped`);
  }

  const routes: string[][] = [];
  for (const net of data.networks) {
    const dev = byLink[net.link];
    if (!dev) {
      plan.warnings.push(`network ${net.id}: link ${net.link} was not placed, skipped`);
      continue;
    }
    plan.nameservers.push(...net.dns);
    if (net.type === 'ipv6_slaac' || net.type === 'ipv6_dhcpv6-stateless') {
      plan.acceptRa.push(dev);
      if (net.type === 'ipv6_dhcpv6-stateless') plan.warnings.push(`network ${net.id}: no DHCPv6 client, using SLAAC only`);
      continue;
    }
    if (net.type !== 'ipv4' && net.type !== 'ipv6') {
      plan.warnings.push(`network ${net.id}: ${net.type} needs a DHCP client, which the agent does not run; link is only brought up`);
      continue;
    }
    const fam = net.type === 'ipv4' ? '-4' : '-6';
    plan.commands.push([fam, 'addr', 'replace', `${net.address}/${net.prefix}`, 'dev', dev]);
    plan.addresses.push({ dev, address: net.address!, prefix: net.prefix! });
    for (const r of net.routes) {
      const dst = r.prefix === 0 ? 'default' : `${r.network}/${r.prefix}`;
      routes.push([fam, 'route', 'replace', dst, 'via', r.gateway, 'dev', dev]);
    }
  }
  // Routes after every address: a gateway must be on-link before it can be used.
  plan.commands.push(...routes);
  plan.nameservers = [...new Set([...plan.nameservers, ...data.dns])];
  return plan;
}

/** resolv.conf text for the plan's name servers. */
export function resolvConf(nameservers: readonly string[]): string {
  return ['# written by metal-agent from network_data.json', ...nameservers.map((n) => `nameserver ${n}`), ''].join('\n');
}
