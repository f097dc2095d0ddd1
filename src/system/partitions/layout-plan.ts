// The partition layout ironic-lib's make_partitions builds for a partition
// image, computed without touching any disk (so it is unit-testable): a 1 MiB
// lead-in, then in this order the EFI system partition (UEFI), the BIOS boot
// partition (BIOS on GPT), the PReP boot partition (ppc64 BIOS), ephemeral,
// swap, config drive, and the root partition last so cloud-init's growroot
// can extend it to the end of the disk.

export const MiB = 1024 * 1024;
/** ironic-lib [disk_utils]efi_system_partition_size default (ironic-lib 5.x, Ironic 21.4). */
export const DEFAULT_ESP_MIB = 200;
/** ironic-lib [disk_utils]bios_boot_partition_size default. */
export const DEFAULT_BIOS_BOOT_MIB = 1;
const PREP_MIB = 8;

export type DiskLabel = 'gpt' | 'msdos';
export type BootMode = 'uefi' | 'bios';
export type PartitionRole = 'efiSystem' | 'biosBoot' | 'prepBoot' | 'ephemeral' | 'swap' | 'configdrive' | 'root';

export interface LayoutOptions {
  bootMode: BootMode;
  /** Default as ironic-lib: gpt for UEFI, msdos for BIOS. */
  diskLabel?: DiskLabel | null;
  /** Root partition size; 0/undefined = the rest of the disk. */
  rootMb?: number;
  swapMb?: number;
  ephemeralMb?: number;
  configdriveMb?: number;
  cpuArch?: string;
  espMb?: number;
  biosBootMb?: number;
}

export interface PlannedPartition {
  role: PartitionRole;
  number: number;
  /** Bytes from the start of the disk. */
  offset: number;
  size: number;
  /** GPT type GUID or MBR type byte (hex). */
  type: string;
  bootable: boolean;
}

export interface LayoutPlan {
  label: DiskLabel;
  partitions: PlannedPartition[];
}

const GPT_TYPES: Record<PartitionRole, string> = {
  efiSystem: 'C12A7328-F81F-11D2-BA4B-00A0C93EC93B',
  biosBoot: '21686148-6449-6E6F-744E-656564454649',
  prepBoot: '9E1A2D38-C612-4316-AA26-8B49521E5A8B',
  swap: '0657FD6D-A4AB-43C4-84E5-0933C84B4F4F',
  ephemeral: '0FC63DAF-8483-4772-8E79-3D69D8477DE4',
  configdrive: '0FC63DAF-8483-4772-8E79-3D69D8477DE4',
  root: '0FC63DAF-8483-4772-8E79-3D69D8477DE4',
};
const MBR_TYPES: Record<PartitionRole, string> = {
  efiSystem: 'ef',
  biosBoot: '83', // never planned on MBR
  prepBoot: '41',
  swap: '82',
  ephemeral: '83',
  configdrive: '83',
  root: '83',
};

export class LayoutError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'LayoutError';
  }
}

/**
 * Plans the layout on a disk of `diskBytes`. `lastUsableByte` is the end of
 * the space partitions may use (GPT keeps 33 sectors for its backup table).
 */
export function planPartitionImageLayout(opts: LayoutOptions, diskBytes: number): LayoutPlan {
  const label: DiskLabel = opts.diskLabel ?? (opts.bootMode === 'uefi' ? 'gpt' : 'msdos');
  const ppc = (opts.cpuArch ?? '').startsWith('ppc64');
  const wanted: Array<{ role: PartitionRole; mib: number; bootable?: boolean }> = [];

  if (opts.bootMode === 'uefi') wanted.push({ role: 'efiSystem', mib: opts.espMb ?? DEFAULT_ESP_MIB, bootable: true });
  if (opts.bootMode === 'bios' && label === 'gpt' && !ppc) {
    wanted.push({ role: 'biosBoot', mib: opts.biosBootMb ?? DEFAULT_BIOS_BOOT_MIB });
  }
  if (ppc && opts.bootMode === 'bios') wanted.push({ role: 'prepBoot', mib: PREP_MIB, bootable: label === 'msdos' });
  if (opts.ephemeralMb) wanted.push({ role: 'ephemeral', mib: opts.ephemeralMb });
  if (opts.swapMb) wanted.push({ role: 'swap', mib: opts.swapMb });
  if (opts.configdriveMb) wanted.push({ role: 'configdrive', mib: opts.configdriveMb });

  for (const w of wanted) {
    if (!Number.isInteger(w.mib) || w.mib <= 0) throw new LayoutError(`invalid size for the ${w.role} partition: ${w.mib} MiB`);
  }
  if (opts.rootMb !== undefined && opts.rootMb !== 0 && (!Number.isInteger(opts.rootMb) || opts.rootMb < 0)) {
    throw new LayoutError(`invalid root partition size: ${opts.rootMb} MiB`);
  }

  // GPT needs its backup table in the last 33 sectors (of 512 bytes; round to a MiB).
  const usableEnd = label === 'gpt' ? Math.floor((diskBytes - 33 * 512) / MiB) * MiB : Math.floor(diskBytes / MiB) * MiB;
  const fixedMib = wanted.reduce((n, w) => n + w.mib, 0);
  const rootMib = opts.rootMb || Math.floor(usableEnd / MiB) - 1 - fixedMib;
  wanted.push({ role: 'root', mib: rootMib, bootable: label === 'msdos' && opts.bootMode === 'bios' && !ppc });

  const neededBytes = (1 + fixedMib + rootMib) * MiB;
  if (rootMib <= 0 || neededBytes > usableEnd) {
    throw new LayoutError(
      `the partition layout needs ${1 + fixedMib + Math.max(rootMib, 1)} MiB but the disk has only ` +
        `${Math.floor(usableEnd / MiB)} MiB usable`,
    );
  }
  if (label === 'msdos' && wanted.length > 4) {
    throw new LayoutError(
      `an msdos partition table holds 4 primary partitions, this layout needs ${wanted.length} ` +
        `(${wanted.map((w) => w.role).join(', ')}); use disk_label gpt`,
    );
  }

  let offset = MiB;
  const partitions = wanted.map((w, i): PlannedPartition => {
    const p: PlannedPartition = {
      role: w.role,
      number: i + 1,
      offset,
      size: w.mib * MiB,
      type: (label === 'gpt' ? GPT_TYPES : MBR_TYPES)[w.role],
      bootable: w.bootable === true && label === 'msdos',
    };
    offset += p.size;
    return p;
  });
  return { label, partitions };
}

/** sfdisk script creating the planned table (sizes in sectors). */
export function sfdiskScript(plan: LayoutPlan, sectorSize: number): string {
  const lines = [`label: ${plan.label === 'gpt' ? 'gpt' : 'dos'}`, 'unit: sectors', ''];
  for (const p of plan.partitions) {
    const fields = [`start=${p.offset / sectorSize}`, `size=${p.size / sectorSize}`, `type=${p.type}`];
    if (p.bootable) fields.push('bootable');
    lines.push(fields.join(', '));
  }
  return lines.join('\n') + '\n';
}
