import { log } from '../log.ts';
import { hasTool, output, run } from '../system/exec.ts';
import { collectLldp, type LldpTlvs } from './lldp.ts';
import { listDir, readTrimmed } from './sysfs.ts';

// IPA's list_network_interfaces: every interface backed by a device (or a
// VLAN named parent.N), with its MAC, first IPv4 and IPv6 address, carrier,
// PCI vendor/product ids and, when asked, LLDP.

export interface NetworkInterface {
  name: string;
  mac_address: string | null;
  ipv4_address: string | null;
  ipv6_address: string | null;
  has_carrier: boolean;
  /** Link speed in Mbit/s when the driver reports one (not in IPA 9.4; extra). */
  speed_mbps?: number;
  lldp: LldpTlvs | null;
  vendor: string | null;
  product: string | null;
  client_id: string | null;
  biosdevname: string | null;
}

interface IpAddrInfo {
  family: string;
  local: string;
  scope?: string;
}
interface IpLink {
  ifname: string;
  addr_info?: IpAddrInfo[];
}

export function isVlanName(name: string): boolean {
  const dot = name.indexOf('.');
  return dot >= 0 && /^\d+$/.test(name.slice(dot + 1));
}

/** The interfaces IPA reports: those with a /sys device, plus VLANs. */
export function reportedInterfaceNames(sysNet = '/sys/class/net'): string[] {
  return listDir(sysNet)
    .filter((n) => isVlanName(n) || listDir(`${sysNet}/${n}/device`).length > 0)
    .sort();
}

/** First IPv4 and IPv6 address per interface from `ip -j addr`, in the kernel's order. */
export function addressesFromIpJson(json: string): Map<string, { v4: string | null; v6: string | null }> {
  const map = new Map<string, { v4: string | null; v6: string | null }>();
  for (const link of JSON.parse(json) as IpLink[]) {
    const info = link.addr_info ?? [];
    map.set(link.ifname, {
      v4: info.find((a) => a.family === 'inet')?.local ?? null,
      v6: info.find((a) => a.family === 'inet6')?.local ?? null,
    });
  }
  return map;
}

async function biosDevName(name: string): Promise<string | null> {
  if (isVlanName(name)) return null;
  try {
    const out = (await run('biosdevname', ['-i', name], { timeoutMs: 10_000 })).stdout.trim();
    return out || null;
  } catch {
    return null; // exit 4 on virtual machines; other failures only lose a nicety
  }
}

export async function listNetworkInterfaces(opts: { collectLldp?: boolean; lldpTimeoutSec?: number } = {}): Promise<NetworkInterface[]> {
  const names = reportedInterfaceNames();
  const addrs = addressesFromIpJson(await output('ip', ['-j', 'addr', 'show']));
  const lldp = opts.collectLldp ? await collectLldp(names, opts.lldpTimeoutSec) : {};
  const haveBiosdevname = await hasTool('biosdevname');
  const result: NetworkInterface[] = [];
  for (const name of names) {
    const base = `/sys/class/net/${name}`;
    const mac = readTrimmed(`${base}/address`);
    if (!mac) {
      log.warn({ iface: name }, 'interface has no MAC address; skipped');
      continue;
    }
    const speed = Number(readTrimmed(`${base}/speed`));
    const iface: NetworkInterface = {
      name,
      mac_address: mac,
      ipv4_address: addrs.get(name)?.v4 ?? null,
      ipv6_address: addrs.get(name)?.v6 ?? null,
      has_carrier: readTrimmed(`${base}/carrier`) === '1',
      lldp: opts.collectLldp ? lldp[name] ?? null : null,
      vendor: readTrimmed(`${base}/device/vendor`),
      product: readTrimmed(`${base}/device/device`),
      client_id: null,
      biosdevname: haveBiosdevname ? await biosDevName(name) : null,
    };
    if (Number.isInteger(speed) && speed > 0) iface.speed_mbps = speed;
    result.push(iface);
  }
  return result;
}
