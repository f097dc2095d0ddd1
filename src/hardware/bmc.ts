import { existsSync } from 'node:fs';
import { log } from '../log.ts';
import { hasTool, run } from '../system/exec.ts';

// IPA's get_bmc_address / get_bmc_v6address: ask ipmitool about LAN
// channels 1-11 and report the first configured address, else 0.0.0.0 and
// ::/0 (also what IPA ends up with when ipmitool or the IPMI device is
// missing: it is normal on virtual machines).

const NO_V4 = '0.0.0.0';
const NO_V6 = '::/0';
const CHANNELS = Array.from({ length: 11 }, (_, i) => i + 1);

function ipmiDevicePresent(): boolean {
  return ['/dev/ipmi0', '/dev/ipmi/0', '/dev/ipmidev/0'].some((p) => existsSync(p));
}

async function ipmitool(args: string[]): Promise<{ stdout: string; stderr: string } | null> {
  try {
    return await run('ipmitool', args, { timeoutMs: 30_000, okExitCodes: [1] });
  } catch {
    return null;
  }
}

function isIPv4(s: string): boolean {
  return /^(25[0-5]|2[0-4]\d|1?\d?\d)(\.(25[0-5]|2[0-4]\d|1?\d?\d)){3}$/.test(s);
}

/** "IP Address              : 10.0.0.5" from `ipmitool lan print N`. */
export function parseLanPrintAddress(text: string): string | null {
  const m = /^IP Address\s*:\s*(\S+)\s*$/m.exec(text);
  return m ? m[1]! : null;
}

export async function getBmcAddress(): Promise<string> {
  if (!(await hasTool('ipmitool')) || !ipmiDevicePresent()) return NO_V4;
  for (const ch of CHANNELS) {
    const r = await ipmitool(['lan', 'print', String(ch)]);
    if (!r || r.stderr.startsWith('Invalid channel')) continue;
    const addr = parseLanPrintAddress(r.stdout);
    if (!addr || !isIPv4(addr)) continue;
    if (addr !== NO_V4) return addr;
  }
  return NO_V4;
}

/** Parses `ipmitool lan6 print N dynamic_addr|static_addr` (YAML-like blocks). */
export function parseLan6Addresses(text: string, dynamic: boolean): string | null {
  for (const block of text.split(/\n(?=\S)/)) {
    const field = (k: string) => new RegExp(`^\\s*${k}:\\s*(.*)$`, 'm').exec(block)?.[1]?.trim() ?? '';
    const address = field('Address');
    const enabled = dynamic ? ['DHCPv6', 'SLAAC'].includes(field('Source/Type')) : /^(true|yes)$/i.test(field('Enabled'));
    if (field('Status') === 'active' && enabled && address && !/^::(\/\d{1,3})*$/.test(address)) {
      return address.split('/')[0]!;
    }
  }
  return null;
}

export async function getBmcV6Address(): Promise<string> {
  if (!(await hasTool('ipmitool')) || !ipmiDevicePresent()) return NO_V6;
  for (const ch of CHANNELS) {
    const enables = await ipmitool(['lan6', 'print', String(ch), 'enables']);
    const mode = /IPv6\/IPv4 Addressing Enables\s*:\s*(\S+)/.exec(enables?.stdout ?? '')?.[1];
    if (mode !== 'ipv6' && mode !== 'both') continue;
    for (const kind of ['dynamic', 'static'] as const) {
      const r = await ipmitool(['lan6', 'print', String(ch), `${kind}_addr`]);
      const addr = r ? parseLan6Addresses(r.stdout, kind === 'dynamic') : null;
      if (addr) return addr;
    }
  }
  log.debug('no BMC IPv6 address found');
  return NO_V6;
}
