import { log } from '../log.ts';
import { hasTool, output } from '../system/exec.ts';

// IPA's get_system_vendor_info (lshw's system product/serial/vendor and its
// firmware node). dmidecode reads the same SMBIOS strings directly; fields
// that cannot be read are "" as in IPA.

export interface SystemFirmware {
  vendor: string;
  version: string;
  build_date: string;
}

export interface SystemVendor {
  product_name: string;
  serial_number: string;
  manufacturer: string;
  firmware: SystemFirmware;
}

const KEYWORDS = {
  product_name: 'system-product-name',
  serial_number: 'system-serial-number',
  manufacturer: 'system-manufacturer',
  vendor: 'bios-vendor',
  version: 'bios-version',
  build_date: 'bios-release-date',
} as const;

async function dmiString(keyword: string): Promise<string> {
  try {
    const out = await output('dmidecode', ['-s', keyword], { env: { LC_ALL: 'C' } });
    // dmidecode prints comment lines ("# SMBIOS entry point ...") before the value on some systems.
    return out.split('\n').filter((l) => l.trim() && !l.startsWith('#')).join(' ').trim();
  } catch (err) {
    log.debug({ keyword, err: (err as Error).message }, 'dmidecode could not read a field');
    return '';
  }
}

export async function getSystemVendor(): Promise<SystemVendor> {
  const have = await hasTool('dmidecode');
  const get = (k: keyof typeof KEYWORDS) => (have ? dmiString(KEYWORDS[k]) : Promise.resolve(''));
  const [product_name, serial_number, manufacturer, vendor, version, build_date] = await Promise.all([
    get('product_name'), get('serial_number'), get('manufacturer'), get('vendor'), get('version'), get('build_date'),
  ]);
  if (!have || (!product_name && !manufacturer)) log.warn('could not retrieve system vendor info (no SMBIOS data)');
  return { product_name, serial_number, manufacturer, firmware: { vendor, version, build_date } };
}
