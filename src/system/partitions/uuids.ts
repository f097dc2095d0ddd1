import type { PartitionImageLayout, CreatedPartition } from './layout.ts';
import { probeFilesystemAt } from './probe.ts';
import { diskIdentifier, readPartitionTable } from './table.ts';

// standby.get_partition_uuids, shaped as IPA 9.4 answers it. Ironic 21.4
// (agent.py prepare_instance_boot) reads 'root uuid' (stored as
// root_uuid_or_disk_id), 'efi system partition uuid' for partition images in
// UEFI mode and 'PReP Boot partition uuid' on ppc64. For whole disk images IPA
// reports only the MBR disk signature as 'root uuid'.

export interface PartitionUuids {
  'root uuid'?: string;
  'efi system partition uuid'?: string | null;
  'PReP Boot partition uuid'?: string | null;
  /** Partition role (IPA's names) -> kernel device path. */
  partitions?: Record<string, string>;
}

/** IPA's names for the partitions it created (part_dict keys). */
const IPA_NAMES: Record<string, string> = {
  root: 'root',
  efiSystem: 'efi system partition',
  biosBoot: 'BIOS Boot partition',
  prepBoot: 'PReP Boot partition',
  swap: 'swap',
  ephemeral: 'ephemeral',
  configdrive: 'configdrive',
};

/**
 * ironic-lib block_uuid for a partition: the filesystem UUID, else the
 * partition UUID (GPT GUID, or "<disk signature>-<NN>" on MBR as lsblk shows it).
 */
export async function partitionBlockUuid(device: string, part: CreatedPartition): Promise<string> {
  const fs = await probeFilesystemAt(device, part.offset, part.size);
  if (fs.uuid) return fs.uuid;
  if (part.partUuid) return part.partUuid;
  const table = await readPartitionTable(device);
  const entry = table?.partitions.find((p) => p.number === part.number);
  if (entry?.uuid) return entry.uuid;
  if (table?.label === 'dos') {
    const sig = (await diskIdentifier(device)).slice(2);
    return `${sig}-${part.number.toString(16).padStart(2, '0')}`;
  }
  return '';
}

/** UUIDs after a partition image was written into `layout` on `device`. */
export async function partitionImageUuids(
  device: string,
  layout: PartitionImageLayout,
  opts: { cpuArch?: string } = {},
): Promise<PartitionUuids> {
  const partitions: Record<string, string> = {};
  for (const [role, name] of Object.entries(IPA_NAMES)) {
    const part = layout[role as keyof PartitionImageLayout];
    if (part && typeof part === 'object') partitions[name] = part.path;
  }
  const result: PartitionUuids = {
    partitions,
    'root uuid': await partitionBlockUuid(device, layout.root),
    'efi system partition uuid': layout.efiSystem ? await partitionBlockUuid(device, layout.efiSystem) : null,
  };
  if ((opts.cpuArch ?? '').startsWith('ppc')) {
    result['PReP Boot partition uuid'] = layout.prepBoot ? await partitionBlockUuid(device, layout.prepBoot) : null;
  }
  return result;
}

/** UUIDs after a whole disk image: the disk signature stands for the root (IPA _fix_up_partition_uuids). */
export async function wholeDiskImageUuids(device: string): Promise<PartitionUuids> {
  return { 'root uuid': await diskIdentifier(device) };
}

/** One entry point for standby.get_partition_uuids. */
export async function getPartitionUuids(
  device: string,
  image: { type: 'whole-disk' } | { type: 'partition'; layout: PartitionImageLayout; cpuArch?: string },
): Promise<PartitionUuids> {
  return image.type === 'partition'
    ? partitionImageUuids(device, image.layout, { cpuArch: image.cpuArch })
    : wholeDiskImageUuids(device);
}
