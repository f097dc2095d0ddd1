import { SoftwareRaidFailure } from '../../base/errors.ts';
import { findDevicesByHints } from '../../hardware/root-device-hints.ts';
import type { BlockDevice } from '../../hardware/types.ts';
import { dataMembers, MIN_DISKS, type LogicalDisk, type RaidLevel } from './config.ts';

// Where each array goes, decided before any disk is touched: which disks
// are members (physical_disks hints or every disk), which partition of each
// member holds which array, and that it all fits. Pure: the plan is what
// create.ts executes and what the unit tests check. Units are MiB, aligned.

const MiB = 1024 * 1024;
/** Room before the first array: the ESP the deployed OS gets on each member (IPA leaves 550 MiB). */
export const UEFI_HEAD_MIB = 1 + 550;
/** GPT on BIOS: a BIOS boot partition (1-3 MiB) for GRUB's core image on each member. */
export const BIOS_GPT_HEAD_MIB = 3;
/** MBR on BIOS: GRUB embeds itself in the gap before the first MiB. */
export const BIOS_MBR_HEAD_MIB = 1;
/** Left free at the end: the backup GPT. */
export const TAIL_MIB = 1;

export type BootMode = 'uefi' | 'bios';
export type TableType = 'gpt' | 'msdos';

export interface PlannedPartition {
  number: number;
  startMiB: number;
  sizeMiB: number;
  role: 'bios-boot' | 'raid';
  /** Which array it belongs to (role raid). */
  arrayIndex?: number;
}

export interface DiskPlan {
  device: string;
  table: TableType;
  partitions: PlannedPartition[];
}

export interface ArrayPlan {
  index: number;
  /** /dev/md<index>: the first logical disk is md0, the root volume. */
  device: string;
  level: RaidLevel;
  volumeName?: string;
  /** Member disk and partition number, in member order. */
  members: Array<{ disk: string; partition: number }>;
  memberMiB: number;
}

export interface RaidPlan {
  bootMode: BootMode;
  table: TableType;
  disks: DiskPlan[];
  arrays: ArrayPlan[];
}

/** Disks that can be members: whole disks, not arrays themselves. */
export function candidateDisks(disks: readonly BlockDevice[]): BlockDevice[] {
  return disks.filter((d) => !/^\/dev\/md/.test(d.name));
}

const describeDisks = (disks: readonly BlockDevice[]) =>
  disks.map((d) => `${d.name} (${d.serial ?? 'no serial'}, ${Math.floor(d.size / MiB)} MiB)`).join(', ') || 'none';

/**
 * Members of each logical disk, like IPA's get_block_devices_for_raid: each
 * hint dict picks the first matching disk not already picked for this
 * volume; no hints means every disk.
 */
export function resolveMembers(logical: readonly LogicalDisk[], disks: readonly BlockDevice[]): BlockDevice[][] {
  return logical.map((ld) => {
    if (!ld.physicalDisks) {
      const min = MIN_DISKS[ld.level];
      if (disks.length < min) {
        throw new SoftwareRaidFailure(
          `logical disk ${ld.index}: RAID level ${ld.level} needs at least ${min} disks, ${disks.length} found: ${describeDisks(disks)}`,
        );
      }
      return [...disks];
    }
    const picked: BlockDevice[] = [];
    for (const hint of ld.physicalDisks) {
      let candidates: BlockDevice[];
      try {
        candidates = findDevicesByHints(disks, hint);
      } catch (err) {
        throw new SoftwareRaidFailure(`logical disk ${ld.index}: invalid physical_disks hint ${JSON.stringify(hint)}: ${(err as Error).message}`);
      }
      if (candidates.length === 0) {
        throw new SoftwareRaidFailure(
          `logical disk ${ld.index}: no disk matches physical_disks hint ${JSON.stringify(hint)}; disks: ${describeDisks(disks)}`,
        );
      }
      const free = candidates.find((c) => !picked.includes(c));
      if (!free) {
        throw new SoftwareRaidFailure(
          `logical disk ${ld.index}: no disk left for physical_disks hint ${JSON.stringify(hint)} after picking ${picked.map((p) => p.name).join(', ')}`,
        );
      }
      picked.push(free);
    }
    return picked;
  });
}

export function headMiB(bootMode: BootMode, table: TableType): number {
  if (bootMode === 'uefi') return UEFI_HEAD_MIB;
  return table === 'gpt' ? BIOS_GPT_HEAD_MIB : BIOS_MBR_HEAD_MIB;
}

/** The whole plan; throws SoftwareRaidFailure when the disks cannot hold what is asked. */
export function planSoftwareRaid(
  logical: readonly LogicalDisk[],
  allDisks: readonly BlockDevice[],
  opts: { bootMode: BootMode; table: TableType },
): RaidPlan {
  const disks = candidateDisks(allDisks);
  const members = resolveMembers(logical, disks);
  const head = headMiB(opts.bootMode, opts.table);

  // Every disk that is a member of something, in first-use order.
  const used: BlockDevice[] = [];
  for (const list of members) for (const d of list) if (!used.includes(d)) used.push(d);

  const cursor = new Map<string, number>();
  const diskPlans = new Map<string, DiskPlan>();
  for (const d of used) {
    const plan: DiskPlan = { device: d.name, table: opts.table, partitions: [] };
    if (opts.bootMode === 'bios' && opts.table === 'gpt') {
      plan.partitions.push({ number: 1, startMiB: 1, sizeMiB: BIOS_GPT_HEAD_MIB - 1, role: 'bios-boot' });
    }
    diskPlans.set(d.name, plan);
    cursor.set(d.name, head);
  }
  const endMiB = (d: BlockDevice) => Math.floor(d.size / MiB) - TAIL_MIB;

  // Fixed sizes first, the MAX volume takes what is left (as IPA orders them).
  const order = [...logical].sort((a, b) => Number(a.sizeGb === 'MAX') - Number(b.sizeGb === 'MAX'));
  const arrays: ArrayPlan[] = [];
  for (const ld of order) {
    const list = members[ld.index]!;
    let memberMiB: number;
    if (ld.sizeGb === 'MAX') {
      memberMiB = Math.min(...list.map((d) => endMiB(d) - cursor.get(d.name)!));
      if (memberMiB < 1) {
        throw new SoftwareRaidFailure(`logical disk ${ld.index}: size_gb MAX leaves no space: the disks ${list.map((d) => d.name).join(', ')} are full`);
      }
    } else {
      memberMiB = Math.ceil((ld.sizeGb * 1024) / dataMembers(ld.level, list.length));
      for (const d of list) {
        const left = endMiB(d) - cursor.get(d.name)!;
        if (memberMiB > left) {
          throw new SoftwareRaidFailure(
            `logical disk ${ld.index} (RAID-${ld.level}, ${ld.sizeGb} GiB on ${list.length} disks) needs ${memberMiB} MiB on each member; ${d.name} has ${Math.max(0, left)} MiB left`,
          );
        }
      }
    }
    const array: ArrayPlan = { index: ld.index, device: `/dev/md${ld.index}`, level: ld.level, volumeName: ld.volumeName, members: [], memberMiB };
    for (const d of list) {
      const plan = diskPlans.get(d.name)!;
      const number = plan.partitions.length + 1;
      if (opts.table === 'msdos' && number > 4) {
        throw new SoftwareRaidFailure(`${d.name}: an MBR partition table holds at most 4 partitions; use disk_label gpt or fewer volumes`);
      }
      plan.partitions.push({ number, startMiB: cursor.get(d.name)!, sizeMiB: memberMiB, role: 'raid', arrayIndex: ld.index });
      cursor.set(d.name, cursor.get(d.name)! + memberMiB);
      array.members.push({ disk: d.name, partition: number });
    }
    arrays.push(array);
  }
  arrays.sort((a, b) => a.index - b.index);
  return { bootMode: opts.bootMode, table: opts.table, disks: [...diskPlans.values()], arrays };
}

/** The sgdisk arguments that write one disk's GPT (type FD00 Linux RAID, EF02 BIOS boot). */
export function sgdiskArgs(plan: DiskPlan, sectorSize: number): string[] {
  const perMiB = MiB / sectorSize;
  const args = ['--zap-all'];
  for (const p of plan.partitions) {
    const first = p.startMiB * perMiB;
    const last = (p.startMiB + p.sizeMiB) * perMiB - 1;
    const type = p.role === 'bios-boot' ? 'EF02' : 'FD00';
    const name = p.role === 'bios-boot' ? 'bios-boot' : `md${p.arrayIndex}`;
    args.push('-n', `${p.number}:${first}:${last}`, '-t', `${p.number}:${type}`, '-c', `${p.number}:${name}`);
  }
  return args;
}

/** The sfdisk script that writes one disk's MBR (type fd Linux RAID autodetect). */
export function sfdiskScript(plan: DiskPlan, sectorSize: number): string {
  const perMiB = MiB / sectorSize;
  const lines = ['label: dos'];
  for (const p of plan.partitions) lines.push(`start=${p.startMiB * perMiB}, size=${p.sizeMiB * perMiB}, type=fd`);
  return lines.join('\n') + '\n';
}
