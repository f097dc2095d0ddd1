import { SoftwareRaidFailure } from '../../base/errors.ts';

// Ironic's target_raid_config, read the way IPA's GenericHardwareManager
// reads it for software RAID (validate_configuration): pure, so every rule
// is unit-tested and a bad config is refused before any disk is touched.
// https://docs.openstack.org/ironic/latest/admin/raid.html

export const SOFTWARE_RAID_LEVELS = ['0', '1', '1+0', '5', '6'] as const;
export type RaidLevel = (typeof SOFTWARE_RAID_LEVELS)[number];

/** Fewest member disks per level (IPA's raid_utils RAID_LEVEL_MIN_DISKS). */
export const MIN_DISKS: Record<RaidLevel, number> = { '0': 2, '1': 2, '1+0': 4, '5': 3, '6': 4 };

export interface LogicalDisk {
  /** Position in target_raid_config: the md device is /dev/md<index>, index 0 is the root volume. */
  index: number;
  level: RaidLevel;
  /** GiB of the array as Ironic means it (the logical disk's size), or 'MAX' for what is left. */
  sizeGb: number | 'MAX';
  /** Root-device-hint dicts, one per member disk; absent: every disk is a member. */
  physicalDisks?: Array<Record<string, unknown>>;
  volumeName?: string;
}

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** True when the config asks for software RAID at all (IPA does nothing otherwise). */
export function wantsSoftwareRaid(raidConfig: unknown): boolean {
  if (!isRecord(raidConfig) || !Array.isArray(raidConfig.logical_disks)) return false;
  return raidConfig.logical_disks.some((d) => isRecord(d) && d.controller === 'software');
}

function parseSize(raw: unknown, where: string, errors: string[]): number | 'MAX' {
  if (raw === 'MAX') return 'MAX';
  const n = typeof raw === 'string' && raw.trim() !== '' ? Number(raw) : raw;
  if (typeof n !== 'number' || !Number.isFinite(n) || n <= 0) {
    errors.push(`${where}: size_gb must be a positive number of GiB or "MAX", not ${JSON.stringify(raw)}`);
    return 0;
  }
  return n;
}

/**
 * Validates a target_raid_config for software RAID and returns its logical
 * disks. Throws SoftwareRaidFailure naming every problem found, in IPA's
 * words ("Could not validate Software RAID config for <node>: ...").
 */
export function parseSoftwareRaidConfig(raidConfig: unknown, nodeUuid = 'the node'): LogicalDisk[] {
  const fail = (problems: string[]) =>
    new SoftwareRaidFailure(`Could not validate Software RAID config for ${nodeUuid}: ${problems.join('; ')}`);
  if (!isRecord(raidConfig)) throw fail(['the RAID configuration must be an object with logical_disks']);
  const raw = raidConfig.logical_disks;
  if (!Array.isArray(raw) || raw.length === 0) throw fail(['RAID config contains no logical disks']);

  const errors: string[] = [];
  const disks: LogicalDisk[] = [];
  raw.forEach((ld, index) => {
    const where = `logical disk ${index}`;
    if (!isRecord(ld)) {
      errors.push(`${where} is not an object`);
      return;
    }
    if (ld.controller !== 'software') {
      errors.push("Software RAID configuration requires all logical disks to have 'controller'='software'");
    }
    const level = String(ld.raid_level ?? '');
    if (!(SOFTWARE_RAID_LEVELS as readonly string[]).includes(level)) {
      errors.push(`${where}: Software RAID configuration does not support RAID level ${JSON.stringify(ld.raid_level ?? null)} (supported: ${SOFTWARE_RAID_LEVELS.join(', ')})`);
    }
    const sizeGb = parseSize(ld.size_gb, where, errors);
    let physicalDisks: Array<Record<string, unknown>> | undefined;
    if (ld.physical_disks !== undefined && ld.physical_disks !== null) {
      if (!Array.isArray(ld.physical_disks) || ld.physical_disks.length < 2) {
        errors.push(`${where}: the physical_disks parameter for software RAID must be a list with at least 2 items, each specifying a disk in the device hints format`);
      } else if (ld.physical_disks.some((p) => !isRecord(p))) {
        errors.push(`${where}: the physical_disks parameter for software RAID must be a list of device hints (dictionaries)`);
      } else {
        physicalDisks = ld.physical_disks as Array<Record<string, unknown>>;
        const min = MIN_DISKS[level as RaidLevel];
        if (min && physicalDisks.length < min) {
          errors.push(`${where}: RAID level ${level} needs at least ${min} disks, physical_disks names ${physicalDisks.length}`);
        }
      }
    }
    let volumeName: string | undefined;
    if (ld.volume_name !== undefined && ld.volume_name !== null) {
      // mdadm keeps at most 32 bytes of name, and the name becomes /dev/md/<name>.
      if (typeof ld.volume_name !== 'string' || !/^[A-Za-z0-9_.-]{1,32}$/.test(ld.volume_name)) {
        errors.push(`${where}: volume_name must be 1-32 characters of letters, digits, '.', '_' or '-', not ${JSON.stringify(ld.volume_name)}`);
      } else {
        volumeName = ld.volume_name;
      }
    }
    disks.push({ index, level: level as RaidLevel, sizeGb, physicalDisks, volumeName });
  });

  if (disks.filter((d) => d.sizeGb === 'MAX').length > 1) {
    errors.push("Software RAID can have only one RAID device with size 'MAX'");
  }
  const names = disks.map((d) => d.volumeName).filter((n): n is string => !!n);
  const dup = names.find((n, i) => names.indexOf(n) !== i);
  if (dup) errors.push(`volume_name ${JSON.stringify(dup)} is used twice`);
  if (errors.length) throw fail([...new Set(errors)]);
  return disks;
}

/** How many members' worth of space holds data (the array size per member partition size). */
export function dataMembers(level: RaidLevel, members: number): number {
  switch (level) {
    case '0':
      return members;
    case '1':
      return 1;
    case '1+0':
      return members / 2;
    case '5':
      return members - 1;
    case '6':
      return members - 2;
  }
}

/** mdadm's --level for ours. */
export function mdadmLevel(level: RaidLevel): string {
  return level === '1+0' ? '10' : level;
}

/** A capability from properties/instance_info capabilities: "k:v,k2:v2" or a dict. */
function capability(caps: unknown, key: string): string | undefined {
  if (typeof caps === 'string') {
    for (const pair of caps.split(',')) {
      const [k, v] = pair.split(':');
      if (k?.trim() === key && v !== undefined) return v.trim();
    }
    return undefined;
  }
  return isRecord(caps) && caps[key] !== undefined ? String(caps[key]) : undefined;
}

/** IPA's get_node_boot_mode: instance_info.deploy_boot_mode, then the boot_mode capability, else how this machine booted. */
export function nodeBootMode(node: Record<string, any>, current: 'uefi' | 'bios'): 'uefi' | 'bios' {
  const mode = node?.instance_info?.deploy_boot_mode ?? capability(node?.instance_info?.capabilities, 'boot_mode') ??
    capability(node?.properties?.capabilities, 'boot_mode');
  return mode === 'uefi' || mode === 'bios' ? mode : current;
}

/** IPA's get_partition_table_type_from_specs: the disk_label capability, else GPT for UEFI and MBR for BIOS. */
export function nodeTableType(node: Record<string, any>, bootMode: 'uefi' | 'bios'): 'gpt' | 'msdos' {
  const label = capability(node?.instance_info?.capabilities, 'disk_label') ?? capability(node?.properties?.capabilities, 'disk_label');
  if (label === 'gpt' || label === 'msdos') return label;
  return bootMode === 'uefi' ? 'gpt' : 'msdos';
}

/** Volume names in properties.skip_block_devices ([{volume_name: ...}]): arrays to keep through cleaning. */
export function keptVolumeNames(node: Record<string, any> | null | undefined): string[] {
  const list = node?.properties?.skip_block_devices;
  if (!Array.isArray(list)) return [];
  return list.filter((e) => isRecord(e) && typeof e.volume_name === 'string').map((e) => e.volume_name as string);
}
