import { basename } from 'node:path';
import { existsSync } from 'node:fs';
import { mkdir, rm, symlink } from 'node:fs/promises';
import { log } from '../../log.ts';
import { probePartitionFilesystem, withPartitionDevice } from '../partitions/index.ts';
import { copyEspToMember } from '../raid/index.ts';
import type { Guard } from '../safety.ts';
import { findEsp } from './esp.ts';
import { BootloaderError, findDeployedRoot, findGrubTools, grubInstallBios, grubMkconfig, withDeployedRoot } from './grub.ts';
import { registerEfiLoaders, type UefiResult } from './uefi.ts';

// The boot loader of an OS deployed onto a software RAID array (IPA's
// _prepare_boot_partitions_for_softraid and BIOS grub-install per holder):
// firmware reads disks, not arrays, so every member disk must boot on its own.
// UEFI: the image's ESP (inside the array) is copied to each member's own ESP
// and each gets its boot entries. BIOS: the deployed OS's grub-install on each
// member disk (it finds /boot inside the array through GRUB's mdraid module).

export interface SoftRaidResult {
  targetBootMode: 'uefi' | 'bios';
  array: string;
  members: Array<{ disk: string; efi?: Omit<UefiResult, 'grubInstall' | 'kernelParamsFiles'>; grubInstall?: string[] }>;
}

export async function installOnArrayMembers(
  array: string,
  holders: string[],
  mode: 'uefi' | 'bios',
  opts: { rootUuid?: string | null; efiSystemPartUuid?: string | null; runDeployedTools: boolean },
  guard: Guard,
): Promise<SoftRaidResult> {
  for (const disk of holders) guard.assertWritable(disk);
  log.info({ array, holders, mode }, 'installing the boot loader on every member of the root array');
  if (mode === 'uefi') {
    const esp = await findEsp(array, opts.efiSystemPartUuid);
    const members: SoftRaidResult['members'] = [];
    for (const disk of holders) {
      const own = await copyEspToMember({ device: array, start: esp.start, size: esp.size }, disk, guard);
      const efi = await registerEfiLoaders(disk, own.partition, guard, ` ${basename(disk)}`);
      if (!efi) throw new BootloaderError(`the EFI system partition of the image on ${array} holds no boot loader to register on ${disk}`);
      members.push({ disk, efi });
    }
    return { targetBootMode: 'uefi', array, members };
  }
  if (!opts.runDeployedTools) {
    throw new BootloaderError('BIOS boot loader installation on software RAID members would run the deployed image\'s own GRUB tools, which the conductor disabled (enable_bios_bootloader_install is false)');
  }
  const fsUuid = opts.rootUuid && !opts.rootUuid.toLowerCase().startsWith('0x') ? opts.rootUuid : null;
  const root = await findDeployedRoot(array, fsUuid);
  const rootFsUuid = (await probePartitionFilesystem(array, root)).uuid ?? null;
  return withPartitionDevice(array, root, (rootDev) =>
    withUuidLink(rootFsUuid, rootDev, () =>
      withDeployedRoot(array, root, guard, async (dir) => {
        const tools = await findGrubTools(dir);
        const members: SoftRaidResult['members'] = [];
        for (const disk of holders) members.push({ disk, grubInstall: await grubInstallBios(dir, tools, disk) });
        await grubMkconfig(dir, tools);
        return { targetBootMode: 'bios' as const, array, members };
      }),
    ),
  );
}

/**
 * grub-mkconfig (10_linux) writes root=UUID=<fs uuid> only when
 * /dev/disk/by-uuid/<uuid> exists, else the device name it ran on
 * (root=/dev/md0p2). The ramdisk's udev makes no by-uuid links for md
 * partitions, and the deployed OS's initramfs assembles an array it has no
 * ARRAY line for under another number (md127): with the name, it never finds
 * its root. So the link exists while the deployed GRUB runs (the chroot's /dev
 * is the ramdisk's), and goes after. Only for md partitions.
 */
async function withUuidLink<T>(uuid: string | null, dev: string, fn: () => Promise<T>): Promise<T> {
  const link = `/dev/disk/by-uuid/${uuid}`;
  if (!uuid || !/^\/dev\/md/.test(dev) || existsSync(link)) return fn();
  await mkdir('/dev/disk/by-uuid', { recursive: true });
  await symlink(dev, link);
  try {
    return await fn();
  } finally {
    await rm(link, { force: true });
  }
}
