import { Type, type Static, type TProperties, type TSchema } from '@sinclair/typebox';
import { Value, ValueErrorType } from '@sinclair/typebox/value';
import { hostBitsZero, classifyIp, ipv4Bytes, ipv6Bytes, netmaskToPrefix, normalizeMac } from './addresses.ts';

// OpenStack network_data.json (config drive / Ironic virtual media, the format
// glean reads in IPA ramdisks) → a validated model → a list of `ip` commands.
// The parser is strict: anything the agent would act on must have the right
// type and shape (TypeBox schemas below), or the whole document is refused
// with the offending path. Keys the agent does not act on (network_id,
// vif_id, ...) are ignored.

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

const NETWORK_TYPES = [
  'ipv4', 'ipv6', 'ipv4_dhcp', 'ipv6_dhcp', 'ipv6_slaac', 'ipv6_dhcpv6-stateful', 'ipv6_dhcpv6-stateless',
] as const satisfies readonly NdNetworkType[];

// The document's shape, as TypeBox schemas. Each carries the words an error
// about it uses (`problem`; `missing` when the key is absent and that needs
// more than "is required"). What a schema cannot say (an IP address of the
// right family, a contiguous netmask, a MAC, references between links) is
// checked in code once the shape is right.
const Text = Type.String({ minLength: 1, maxLength: 255, problem: 'must be a non-empty string' });
const Int = (minimum: number, maximum: number, missing?: string) =>
  Type.Integer({ minimum, maximum, problem: `must be an integer between ${minimum} and ${maximum}`, missing });
const List = <T extends TSchema>(item: T) => Type.Array(item, { problem: 'must be a list' });
const Obj = <P extends TProperties>(properties: P) => Type.Object(properties, { problem: 'must be an object' });

/** Services are read only for `type: dns` entries, whose address is checked in code. */
const Service = Obj({ type: Type.Optional(Type.Unknown()), address: Type.Optional(Type.Unknown()) });
const Services = Type.Optional(List(Service));
const Document = Obj({
  links: Type.Optional(List(Type.Unknown())),
  networks: Type.Optional(List(Type.Unknown())),
  services: Services,
});
const Link = Obj({ id: Text, type: Text, mtu: Type.Optional(Int(68, 65535)) });
const VlanLink = Obj({
  vlan_link: Text,
  vlan_id: Int(1, 4094, 'is required for a vlan link'),
  vlan_mac_address: Type.Optional(Text),
  ethernet_mac_address: Type.Optional(Text),
});
const BondLink = Obj({ bond_links: Type.Optional(List(Text)) });
const PhysicalLink = Obj({ ethernet_mac_address: Text });
const Network = Obj({
  id: Type.Optional(Type.Unknown()),
  type: Type.Union(NETWORK_TYPES.map((t) => Type.Literal(t)), { problem: 'unknown network type {value}' }),
  link: Text,
  services: Services,
});
const StaticNetwork = Obj({
  ip_address: Text,
  netmask: Type.Optional(Text),
  routes: Type.Optional(List(Obj({ network: Text, netmask: Text, gateway: Text }))),
});

/** `/links/0/mtu` under `base` → `links[0].mtu`. */
function readablePath(base: string, pointer: string): string {
  let out = base;
  for (const raw of pointer.split('/').slice(1)) {
    const key = raw.replace(/~1/g, '/').replace(/~0/g, '~');
    out += /^\d+$/.test(key) ? `[${key}]` : `${out ? '.' : ''}${key}`;
  }
  return out || '(top)';
}

/** `value` if it has the schema's shape; else the first thing wrong with it, in the schema's words. */
function check<T extends TSchema>(schema: T, value: unknown, base: string): Static<T> {
  if (Value.Check(schema, value)) return value;
  const error = Value.Errors(schema, value).First()!;
  const words = error.schema as { problem?: string; missing?: string };
  const problem =
    error.type === ValueErrorType.ObjectRequiredProperty
      ? (words.missing ?? 'is required')
      : (words.problem ?? error.message).replace('{value}', JSON.stringify(error.value));
  throw new NetworkDataError(readablePath(base, error.path), problem);
}

/**
 * What OpenStack writes loosely, made exact before the check: a key whose
 * value is null is absent, and the integers it writes as digit strings
 * ("mtu": "1500") are numbers.
 */
const DIGIT_STRING_KEYS = new Set(['mtu', 'vlan_id']);
function normalized(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(normalized);
  if (typeof value !== 'object' || value === null) return value;
  const out: Record<string, unknown> = {};
  for (const [key, v] of Object.entries(value)) {
    if (v === null) continue;
    out[key] = DIGIT_STRING_KEYS.has(key) && typeof v === 'string' && /^\d+$/.test(v) ? Number(v) : normalized(v);
  }
  return out;
}

function ipOf(family: 4 | 6, text: string | undefined, path: string): string {
  if (!text) throw new NetworkDataError(path, 'must be a non-empty string');
  if (!(family === 4 ? ipv4Bytes(text) : ipv6Bytes(text))) throw new NetworkDataError(path, `must be an IPv${family} address`);
  return text;
}

function macOf(text: string, path: string): string {
  const mac = normalizeMac(text);
  if (!mac) throw new NetworkDataError(path, 'must be a MAC address');
  return mac;
}

function dnsServers(services: Static<typeof Service>[] | undefined, path: string): string[] {
  const out: string[] = [];
  (services ?? []).forEach((s, i) => {
    if (s.type !== 'dns') return;
    const address = check(Text, s.address, `${path}[${i}].address`);
    const cls = classifyIp(address);
    if (cls === undefined || cls === 'unspecified' || cls === 'multicast' || cls === 'broadcast') {
      throw new NetworkDataError(`${path}[${i}].address`, 'must be a unicast IP address');
    }
    out.push(address);
  });
  return out;
}

function parseLink(raw: unknown, path: string): NdLink {
  const { id, type, mtu } = check(Link, raw, path);
  if (type === 'vlan') {
    const o = check(VlanLink, raw, path);
    const macText = o.vlan_mac_address ?? o.ethernet_mac_address;
    const mac = macText === undefined ? undefined : macOf(macText, `${path}.vlan_mac_address`);
    return { id, kind: 'vlan', type, mtu, vlanLink: o.vlan_link, vlanId: o.vlan_id, ...(mac ? { mac } : {}) };
  }
  if (type === 'bond') {
    check(BondLink, raw, path);
    return { id, kind: 'bond', type, mtu };
  }
  const mac = macOf(check(PhysicalLink, raw, path).ethernet_mac_address, `${path}.ethernet_mac_address`);
  return { id, kind: 'physical', type, mac, mtu };
}

/** A netmask in the family's notation (or a bare prefix length) → prefix length. */
function maskToPrefix(mask: string, family: 4 | 6): number | undefined {
  const max = family === 4 ? 32 : 128;
  if (/^\d{1,3}$/.test(mask)) return Number(mask) <= max ? Number(mask) : undefined;
  const inFamily = family === 4 ? ipv4Bytes(mask) : ipv6Bytes(mask);
  return inFamily ? netmaskToPrefix(mask) : undefined;
}

/** "addr/len" or addr + netmask → [address, prefix]. */
function addressAndPrefix(o: Static<typeof StaticNetwork>, family: 4 | 6, path: string): [string, number] {
  const [addrText, lenText, ...rest] = o.ip_address.split('/');
  if (rest.length > 0) throw new NetworkDataError(`${path}.ip_address`, 'has more than one "/"');
  const address = ipOf(family, addrText, `${path}.ip_address`);
  const max = family === 4 ? 32 : 128;
  let prefix: number | undefined;
  if (lenText !== undefined) {
    if (!/^\d{1,3}$/.test(lenText) || Number(lenText) > max) throw new NetworkDataError(`${path}.ip_address`, 'has a bad prefix length');
    prefix = Number(lenText);
  }
  if (o.netmask !== undefined) {
    const fromMask = maskToPrefix(o.netmask, family);
    if (fromMask === undefined) throw new NetworkDataError(`${path}.netmask`, `must be a contiguous IPv${family} netmask`);
    if (prefix !== undefined && prefix !== fromMask) throw new NetworkDataError(`${path}.netmask`, 'contradicts the prefix length in ip_address');
    prefix = fromMask;
  }
  if (prefix === undefined) throw new NetworkDataError(`${path}.netmask`, 'is required when ip_address has no prefix length');
  return [address, prefix];
}

function parseRoute(r: { network: string; netmask: string; gateway: string }, family: 4 | 6, path: string): NdRoute {
  const network = ipOf(family, r.network, `${path}.network`);
  const prefix = maskToPrefix(r.netmask, family);
  if (prefix === undefined) throw new NetworkDataError(`${path}.netmask`, 'must be a contiguous netmask');
  if (!hostBitsZero(network, prefix)) throw new NetworkDataError(`${path}.network`, `has host bits set for /${prefix}`);
  const gateway = ipOf(family, r.gateway, `${path}.gateway`);
  return { network, prefix, gateway };
}

function parseNetwork(raw: unknown, path: string): NdNetwork {
  const n = check(Network, raw, path);
  const id = typeof n.id === 'string' ? n.id : path;
  const { type, link } = n;
  const dns = dnsServers(n.services, `${path}.services`);
  if (type !== 'ipv4' && type !== 'ipv6') return { id, type, link, routes: [], dns };
  const family = type === 'ipv4' ? 4 : 6;
  const o = check(StaticNetwork, raw, path);
  const [address, prefix] = addressAndPrefix(o, family, path);
  const routes = (o.routes ?? []).map((r, i) => parseRoute(r, family, `${path}.routes[${i}]`));
  return { id, type, link, address, prefix, routes, dns };
}

export function parseNetworkData(doc: unknown): NetworkData {
  const o = check(Document, normalized(doc), '');
  const links = (o.links ?? []).map((l, i) => parseLink(l, `links[${i}]`));
  const ids = new Set<string>();
  links.forEach((l, i) => {
    if (ids.has(l.id)) throw new NetworkDataError(`links[${i}].id`, `duplicate link id ${JSON.stringify(l.id)}`);
    ids.add(l.id);
  });
  links.forEach((l, i) => {
    if (l.kind === 'vlan' && !ids.has(l.vlanLink!)) throw new NetworkDataError(`links[${i}].vlan_link`, 'names no link');
  });
  const networks = (o.networks ?? []).map((n, i) => parseNetwork(n, `networks[${i}]`));
  networks.forEach((n, i) => {
    if (!ids.has(n.link)) throw new NetworkDataError(`networks[${i}].link`, `names no link (${JSON.stringify(n.link)})`);
  });
  return { links, networks, dns: dnsServers(o.services, 'services') };
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
