import { log } from '../log.ts';
import { CONFIG_DRIVE_LABEL, ConfigDriveError, decodeConfigDrive, MAX_CONFIG_DRIVE_BYTES, MiB } from './configdrive-decode.ts';
import {
  appendPartitionAtEnd,
  copyFileIntoRange,
  probePartitionFilesystem,
  readPartitionTable,
  type PartitionEntry,
} from './partitions/index.ts';
import type { Guard } from './safety.ts';

// Writes Ironic's config drive to a partition at the end of the deployed disk,
// as IPA does (the decoding is configdrive-decode.ts's).

export { CONFIG_DRIVE_LABEL, ConfigDriveError, decodeConfigDrive, MAX_CONFIG_DRIVE_BYTES } from './configdrive-decode.ts';
export type { DecodedConfigDrive } from './configdrive-decode.ts';

/** An existing partition carrying a config-2 filesystem (or GPT name), reused like IPA does. */
async function findConfigDrivePartition(device: string, partitions: PartitionEntry[]): Promise<PartitionEntry | undefined> {
  const found: PartitionEntry[] = [];
  for (const p of partitions) {
    const fs = await probePartitionFilesystem(device, p);
    if (fs.label?.toLowerCase() === CONFIG_DRIVE_LABEL || p.name === CONFIG_DRIVE_LABEL) found.push(p);
  }
  if (found.length > 1) {
    throw new ConfigDriveError(
      `more than one partition labelled ${CONFIG_DRIVE_LABEL} on ${device}: ${found.map((p) => p.number).join(' and ')}`,
    );
  }
  return found[0];
}

export interface ConfigDriveResult {
  partition: { number: number; start: number; size: number; uuid?: string };
  /** True when an existing config-2 partition was overwritten. */
  reused: boolean;
}

/**
 * Writes the config drive to a partition at the end of `device` (a disk that
 * already holds a whole disk image), creating it if there is none yet.
 */
export async function writeConfigDrive(device: string, configdrive: string, guard: Guard): Promise<ConfigDriveResult> {
  guard.assertWritable(device);
  const image = await decodeConfigDrive(configdrive);
  try {
    const table = await readPartitionTable(device);
    if (!table) {
      throw new ConfigDriveError(
        `${device} has no partition table, so there is nowhere to add a config drive partition`,
      );
    }
    let part = await findConfigDrivePartition(device, table.partitions);
    const reused = part !== undefined;
    if (part) {
      log.info({ device, partition: part.number }, 'config drive partition exists, overwriting it');
    } else {
      part = await appendPartitionAtEnd(device, {
        preferredBytes: MAX_CONFIG_DRIVE_BYTES,
        minimumBytes: image.sizeMiB * MiB,
        name: CONFIG_DRIVE_LABEL,
        guard,
      });
    }
    await copyFileIntoRange(image.path, device, part.start, part.size, guard);
    log.info({ device, partition: part.number, bytes: image.size }, 'config drive written');
    return { partition: { number: part.number, start: part.start, size: part.size, uuid: part.uuid }, reused };
  } finally {
    await image.cleanup();
  }
}
