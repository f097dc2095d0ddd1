import { output, run } from '../exec.ts';
import { log } from '../../log.ts';
import type { Guard } from '../safety.ts';

// UEFI boot entries live in the NVRAM of the machine the agent runs on. That
// is only the deployed node when we run in its ramdisk (guard.powerIsReal);
// anywhere else we must not touch this machine's firmware, so we only report
// what would have been done.

export interface BootRecord {
  num: string;
  label: string;
  raw: string;
}

export interface BootEntryPlan {
  device: string;
  partition: number;
  loader: string;
  label: string;
  /** efibootmgr arguments that create the entry. */
  args: string[];
  /** Existing entries with the same label, removed first (only known when applied). */
  replaces: string[];
  applied: boolean;
}

/** Parses `efibootmgr -v` output (Boot0003* label<TAB>device path). */
export function parseBootRecords(text: string): BootRecord[] {
  const records: BootRecord[] = [];
  for (const line of text.split('\n')) {
    const m = /^Boot([0-9A-Fa-f]{4})\*?\s+(.*)$/.exec(line);
    if (!m) continue;
    const rest = m[2]!;
    // Label and device path are separated by a tab (or by two spaces in some versions).
    const label = rest.split(/\t| {2,}|\s(?=(HD|PciRoot|VenHw|BBS|FvVol|MAC)\()/)[0]!.trim();
    records.push({ num: m[1]!, label, raw: rest });
  }
  return records;
}

export function entryArgs(device: string, partition: number, loader: string, label: string): string[] {
  return ['-v', '-c', '-d', device, '-p', String(partition), '-w', '-L', label, '-l', loader];
}

/**
 * Creates a boot entry for each loader (replacing same-labelled ones), or
 * returns the plan untouched when this is not the node's own firmware.
 */
export async function applyBootEntries(
  entries: Array<{ device: string; partition: number; loader: string; label: string }>,
  guard: Guard,
): Promise<BootEntryPlan[]> {
  const plans: BootEntryPlan[] = entries.map((e) => ({
    ...e,
    args: entryArgs(e.device, e.partition, e.loader, e.label),
    replaces: [],
    applied: false,
  }));
  if (!guard.powerIsReal) {
    for (const p of plans) log.info({ efibootmgr: p.args }, 'not in a ramdisk: would create this UEFI boot entry');
    return plans;
  }
  const records = parseBootRecords(await output('efibootmgr', ['-v']));
  for (const p of plans) {
    for (const r of records.filter((r) => r.label === p.label)) {
      await run('efibootmgr', ['-b', r.num, '-B']);
      p.replaces.push(r.num);
    }
    await run('efibootmgr', p.args);
    p.applied = true;
    log.info({ label: p.label, loader: p.loader, replaced: p.replaces }, 'UEFI boot entry created');
  }
  return plans;
}
