import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SoftwareRaidFailure } from '../../base/errors.ts';
import { run, type RunOptions } from '../exec.ts';
import { notifyKernel, probeFilesystemAt, readPartitionTable, withPartitionDevice, type PartitionEntry } from '../partitions/index.ts';
import type { Guard } from '../safety.ts';
import { UEFI_HEAD_MIB } from './plan.ts';

// A whole-disk image written onto an array keeps its ESP inside the array,
// where no firmware looks. Each member disk gets its own ESP in the room
// create_configuration left at its head (1 MiB to 551 MiB), a FAT filesystem
// with the image ESP's label and volume id (so the deployed OS's fstab entry
// for /boot/efi finds whichever disk survives) and the same files, copied at
// filesystem level: not a block copy of a partition of another size.

const MiB = 1024 * 1024;
const ESP_GPT_TYPE = 'C12A7328-F81F-11D2-BA4B-00A0C93EC93B';
const MTOOLS: RunOptions = { env: { MTOOLS_SKIP_CHECK: '1', MTOOLS_NO_VFAT: '0' }, timeoutMs: 300_000 };

export interface EspSource {
  device: string;
  /** Byte range of the image's ESP on that device. */
  start: number;
  size: number;
}

export interface MemberEsp {
  disk: string;
  partition: PartitionEntry;
  label?: string;
  uuid?: string;
}

/** mkfs.vfat's -i wants the volume id without the dash: "ABCD-1234" -> "ABCD1234". */
export function fatVolumeId(uuid: string | undefined): string | undefined {
  return uuid && /^[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}$/.test(uuid) ? uuid.replace('-', '') : undefined;
}

/** The member's ESP partition at its head: the one there already, or a new one. */
async function memberEspPartition(disk: string): Promise<PartitionEntry> {
  const table = await readPartitionTable(disk);
  if (!table || table.label !== 'gpt') {
    throw new SoftwareRaidFailure(`${disk} has no GPT: UEFI software RAID members need one for their EFI system partition`);
  }
  const first = 1 * MiB;
  const end = UEFI_HEAD_MIB * MiB;
  const there = table.partitions.find((p) => p.start === first && p.type.toUpperCase() === ESP_GPT_TYPE);
  if (there) return there;
  const overlap = table.partitions.find((p) => p.start < end && p.start + p.size > first);
  if (overlap) throw new SoftwareRaidFailure(`${disk}: partition ${overlap.number} lies where the EFI system partition goes (1-${UEFI_HEAD_MIB} MiB)`);
  const used = new Set(table.partitions.map((p) => p.number));
  let number = 1;
  while (used.has(number)) number++;
  const perMiB = MiB / table.sectorSize;
  await run('sgdisk', ['-n', `${number}:${perMiB}:${UEFI_HEAD_MIB * perMiB - 1}`, '-t', `${number}:EF00`, '-c', `${number}:EFI System Partition`, disk]);
  await notifyKernel(disk);
  const made = (await readPartitionTable(disk))?.partitions.find((p) => p.number === number);
  if (!made) throw new SoftwareRaidFailure(`${disk}: the EFI system partition ${number} did not appear in the table`);
  return made;
}

/** Gives one member disk an ESP with the image ESP's label, volume id and files. */
export async function copyEspToMember(source: EspSource, disk: string, guard: Guard): Promise<MemberEsp> {
  guard.assertWritable(disk);
  const fs = await probeFilesystemAt(source.device, source.start, source.size);
  if (fs.type !== 'vfat') throw new SoftwareRaidFailure(`the image's EFI system partition on ${source.device} is not FAT (${fs.type ?? 'no filesystem'})`);
  const partition = await memberEspPartition(disk);
  const staging = await mkdtemp(join(tmpdir(), 'raid-esp-'));
  try {
    // Out of the image's ESP (mtools at the byte offset: no mount, no vfat module needed).
    await run('mcopy', ['-s', '-n', '-i', `${source.device}@@${source.start}`, '::/*', staging], MTOOLS);
    await withPartitionDevice(disk, partition, async (dev) => {
      const id = fatVolumeId(fs.uuid);
      // -I: the range is the ESP partition just made; a stale signature read through a reused loop/partition node must not stop it.
      await run('mkfs.vfat', ['-I', '-F', '32', ...(fs.label ? ['-n', fs.label] : []), ...(id ? ['-i', id] : []), dev]);
      const entries = await readdir(staging);
      if (entries.length) await run('mcopy', ['-s', '-n', '-i', dev, ...entries.map((e) => join(staging, e)), '::/'], MTOOLS);
    });
    // Written through the partition node; the whole disk's own page cache may still hold what
    // was there before, and the boot entries are registered by reading the ESP through the
    // disk (mtools at the byte offset): "non DOS media" in a VM otherwise. Drop that cache.
    await run('blockdev', ['--flushbufs', disk]);
  } finally {
    await rm(staging, { recursive: true, force: true });
  }
  return { disk, partition, label: fs.label, uuid: fs.uuid };
}
