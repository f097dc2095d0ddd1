import { log } from '../log.ts';
import { hasTool, output } from '../system/exec.ts';
import { readTrimmed } from './sysfs.ts';

// IPA's get_memory: `total` is what the kernel manages (psutil's
// virtual_memory().total, i.e. MemTotal), `physical_mb` the installed RAM
// (IPA sums lshw's memory banks; dmidecode's Memory Device records are the
// same SMBIOS data lshw reads).

export interface Memory {
  /** Bytes usable by the kernel. */
  total: number | null;
  /** Installed RAM in MiB, null when SMBIOS is not readable. */
  physical_mb: number | null;
}

export function memTotalBytes(meminfo: string): number | null {
  const m = /^MemTotal:\s+(\d+)\s*kB/m.exec(meminfo);
  return m ? Number(m[1]) * 1024 : null;
}

const UNIT_MB: Record<string, number> = { kB: 1 / 1024, KB: 1 / 1024, MB: 1, GB: 1024, TB: 1024 * 1024 };

/** Sum of "Size:" of every populated SMBIOS type 17 (Memory Device) record, in MiB. */
export function physicalMbFromDmidecode(text: string): number | null {
  let total = 0;
  for (const block of text.split(/\n\s*\n/)) {
    if (!/Memory Device/.test(block)) continue;
    const m = /^\s*Size:\s*(\d+)\s*(kB|KB|MB|GB|TB)\s*$/m.exec(block);
    if (m) total += Number(m[1]) * UNIT_MB[m[2]!]!;
  }
  return total > 0 ? Math.round(total) : null;
}

export async function getMemory(): Promise<Memory> {
  const total = memTotalBytes(readTrimmed('/proc/meminfo') ?? '');
  let physical: number | null = null;
  if (await hasTool('dmidecode')) {
    try {
      physical = physicalMbFromDmidecode(await output('dmidecode', ['--type', '17'], { env: { LC_ALL: 'C' } }));
    } catch (err) {
      log.warn({ err: (err as Error).message }, 'could not read installed RAM from dmidecode');
    }
  }
  if (physical === null) log.warn('did not find any physical RAM');
  return { total, physical_mb: physical };
}
