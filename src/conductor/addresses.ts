import { createSocket } from 'node:dgram';
import { readdirSync, readFileSync } from 'node:fs';
import { isIPv6 } from 'node:net';

// Facts the lookup and the callback URL need about our own network side.

/** MAC addresses to look the node up by: BOOTIF first, then every Ethernet interface. */
export function lookupMacs(opts: { bootif?: string; onlyInterface?: string; sysClassNet?: string }): string[] {
  const base = opts.sysClassNet ?? '/sys/class/net';
  const macs: string[] = [];
  if (opts.bootif) {
    // PXE's form: 01-aa-bb-cc-dd-ee-ff (01 = Ethernet hardware type).
    const m = opts.bootif.toLowerCase().replace(/^01-/, '').replace(/-/g, ':');
    if (/^([0-9a-f]{2}:){5}[0-9a-f]{2}$/.test(m)) macs.push(m);
  }
  let names: string[] = [];
  try {
    names = readdirSync(base);
  } catch {
    /* no sysfs: only BOOTIF */
  }
  for (const name of names.sort()) {
    if (name === 'lo' || (opts.onlyInterface && name !== opts.onlyInterface)) continue;
    try {
      if (readFileSync(`${base}/${name}/type`, 'utf8').trim() !== '1') continue; // ARPHRD_ETHER
      const mac = readFileSync(`${base}/${name}/address`, 'utf8').trim().toLowerCase();
      if (mac && mac !== '00:00:00:00:00:00' && !macs.includes(mac)) macs.push(mac);
    } catch {
      /* interface vanished */
    }
  }
  return macs;
}

/** The local address the kernel would use to reach `host` (no packet is sent). */
export async function localAddressTowards(host: string, port: number): Promise<string> {
  const bare = host.replace(/^\[|\]$/g, '');
  const sock = createSocket(isIPv6(bare.split('%')[0]!) ? 'udp6' : 'udp4');
  try {
    await new Promise<void>((resolve, reject) => {
      sock.once('error', reject);
      sock.connect(port, bare, () => resolve());
    });
    return sock.address().address;
  } finally {
    sock.close();
  }
}

export function hostForUrl(address: string): string {
  return isIPv6(address.split('%')[0]!) ? `[${address.replace('%', '%25')}]` : address;
}
