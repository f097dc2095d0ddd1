import { log } from '../log.ts';
import { output } from '../system/exec.ts';
import { readTrimmed } from './sysfs.ts';

// IPA's get_cpus: lscpu for model, count and frequency (the maximum one when
// known, since the current one wanders), the first "flags" line of
// /proc/cpuinfo for the feature flags.

export interface Cpu {
  model_name: string | null;
  /** MHz as lscpu prints it ("3400.0000"); a string, as IPA reports it. */
  frequency: string | null;
  /** Logical CPUs, hyper-threads included. */
  count: number;
  architecture: string | null;
  flags: string[];
}

/** lscpu's "Key: value" lines, keys lower-cased. */
export function parseLscpu(text: string): Record<string, string> {
  const info: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const i = line.indexOf(':');
    if (i <= 0) continue;
    info[line.slice(0, i).trim().toLowerCase()] = line.slice(i + 1).trim();
  }
  return info;
}

/** Flags from the first "flags" line of /proc/cpuinfo (x86; other architectures have none there). */
export function parseCpuFlags(cpuinfo: string): string[] {
  const line = cpuinfo.split('\n').find((l) => /^flags\s*:/.test(l));
  return line ? line.slice(line.indexOf(':') + 1).trim().split(/\s+/).filter(Boolean) : [];
}

export async function getCpu(): Promise<Cpu> {
  const info = parseLscpu(await output('lscpu', [], { env: { LC_ALL: 'C' } }));
  const flags = parseCpuFlags(readTrimmed('/proc/cpuinfo') ?? '');
  if (!flags.length) log.warn('no CPU flags found in /proc/cpuinfo');
  const count = Number.parseInt(info['cpu(s)'] ?? '', 10);
  return {
    model_name: info['model name'] ?? null,
    frequency: info['cpu max mhz'] ?? info['cpu mhz'] ?? null,
    count: Number.isFinite(count) ? count : 0,
    architecture: info['architecture'] ?? null,
    flags,
  };
}
