import { splitKernelCmdline } from '../../base/kernel-cmdline.ts';
import { log } from '../../log.ts';
import type { Guard } from '../safety.ts';
import { readPartitionTable, probePartitionFilesystem, partitionPath } from '../partitions/index.ts';
import { findEsp } from './esp.ts';
import {
  BootloaderError,
  findDeployedRoot,
  findGrubTools,
  grubInstallBios,
  grubMkconfig,
  withDeployedRoot,
} from './grub.ts';
import { applyKernelParams } from './kernel-params.ts';
import { populateEspWithGrub, registerEfiLoaders, type UefiResult } from './uefi.ts';
import { arrayHolders } from '../raid/index.ts';
import { installOnArrayMembers, type SoftRaidResult } from './softraid.ts';

// image.install_bootloader. Ironic 21.4 sends root_uuid (partition images:
// the root filesystem UUID; whole disk images: the disk signature or nothing),
// efi_system_part_uuid (partition images in UEFI mode), prep_boot_part_uuid
// (ppc64) and target_boot_mode.

export { BootloaderError, findDeployedRoot, findGrubTools, grubMkconfig, withDeployedRoot } from './grub.ts';
export { EspNotFoundError } from './esp.ts';
export { applyKernelParams, InvalidKernelParamsError, kernelParamsArg } from './kernel-params.ts';

export interface InstallBootloaderOptions {
  device: string;
  rootUuid?: string | null;
  efiSystemPartUuid?: string | null;
  prepBootPartUuid?: string | null;
  targetBootMode?: 'uefi' | 'bios' | null;
  /** Extra kernel command line for the deployed OS (string or list). */
  customKernelParams?: string | string[] | null;
  /**
   * Whether the deployed OS's own grub-install/grub-mkconfig may run (in a
   * chroot, as root, inside the ramdisk). Ironic 29.0's lookup sends
   * enable_bios_bootloader_install ([agent] option; CVE-2026-43003 mitigation:
   * a tenant image's programs should not run in the agent); false refuses it.
   */
  runDeployedTools?: boolean;
}

/** Refuses to run the image's own boot loader tools when the conductor disabled that. */
function assertDeployedToolsAllowed(opts: InstallBootloaderOptions, what: string): void {
  if (opts.runDeployedTools === false) {
    throw new BootloaderError(
      `${what} would run the deployed image's own GRUB tools, which the conductor disabled ` +
        '(enable_bios_bootloader_install is false; CVE-2026-43003 mitigation)',
    );
  }
}

export interface BiosResult {
  rootPartition: number;
  grubInstall: string[];
  grubMkconfig: string[];
}

export interface InstallBootloaderResult {
  targetBootMode: 'uefi' | 'bios';
  efi?: UefiResult;
  bios?: BiosResult;
  kernelParams?: { params: string[]; files: string[] };
  softRaid?: SoftRaidResult;
}

function paramsList(p: InstallBootloaderOptions['customKernelParams']): string[] {
  if (!p) return [];
  return Array.isArray(p) ? p.flatMap(splitKernelCmdline) : splitKernelCmdline(p);
}

/** A usable root filesystem UUID (whole disk images report the MBR signature "0x...", which is not one). */
const isFsUuid = (u?: string | null): u is string => !!u && !u.toLowerCase().startsWith('0x');

/** The PReP partition's device node (ppc64 BIOS boot: grub-install writes there). */
async function prepTarget(device: string, prepUuid: string): Promise<string> {
  const table = await readPartitionTable(device);
  for (const p of table?.partitions ?? []) {
    if (p.uuid === prepUuid.toLowerCase() || (await probePartitionFilesystem(device, p)).uuid === prepUuid) {
      return partitionPath(device, p.number);
    }
  }
  throw new BootloaderError(`no PReP boot partition with UUID ${prepUuid} on ${device}`);
}

async function installBios(opts: InstallBootloaderOptions, params: string[], guard: Guard): Promise<InstallBootloaderResult> {
  if (!isFsUuid(opts.rootUuid)) {
    throw new BootloaderError('BIOS boot loader installation needs the root partition UUID of a partition image');
  }
  assertDeployedToolsAllowed(opts, 'BIOS boot loader installation');
  const root = await findDeployedRoot(opts.device, opts.rootUuid);
  const target = opts.prepBootPartUuid ? await prepTarget(opts.device, opts.prepBootPartUuid) : opts.device;
  guard.assertWritable(opts.device);
  return withDeployedRoot(opts.device, root, guard, async (dir) => {
    const tools = await findGrubTools(dir);
    const files = params.length ? await applyKernelParams(dir, params) : [];
    const install = await grubInstallBios(dir, tools, target);
    const mkconfig = await grubMkconfig(dir, tools);
    return {
      targetBootMode: 'bios',
      bios: { rootPartition: root.number, grubInstall: install, grubMkconfig: mkconfig },
      ...(params.length ? { kernelParams: { params, files } } : {}),
    };
  });
}

/** Kernel parameters for an image whose boot loader we did not install (whole disk UEFI). */
async function applyParamsToDeployedRoot(opts: InstallBootloaderOptions, params: string[], guard: Guard) {
  const root = await findDeployedRoot(opts.device, isFsUuid(opts.rootUuid) ? opts.rootUuid : null);
  return withDeployedRoot(opts.device, root, guard, async (dir) => {
    const files = await applyKernelParams(dir, params);
    if (files.includes('/etc/default/grub')) await grubMkconfig(dir, await findGrubTools(dir));
    return files;
  });
}

async function installUefi(opts: InstallBootloaderOptions, params: string[], guard: Guard): Promise<InstallBootloaderResult> {
  const esp = await findEsp(opts.device, opts.efiSystemPartUuid);
  let registered = await registerEfiLoaders(opts.device, esp, guard);
  let grubInstall: string[] | undefined;
  let kernelParamsFiles: string[] | undefined;
  if (!registered) {
    // An empty ESP (the partition image case): let the deployed OS's grub fill it.
    if (!isFsUuid(opts.rootUuid)) {
      throw new BootloaderError(
        `the EFI system partition on ${opts.device} holds no boot loader and there is no root partition UUID ` +
          'to install one from',
      );
    }
    assertDeployedToolsAllowed(opts, `the EFI system partition on ${opts.device} holds no boot loader; filling it`);
    log.warn({ device: opts.device }, 'empty EFI system partition: installing the deployed OS\'s GRUB');
    const root = await findDeployedRoot(opts.device, opts.rootUuid);
    ({ grubInstall, kernelParamsFiles } = await populateEspWithGrub(opts.device, esp, root, params, guard));
    registered = await registerEfiLoaders(opts.device, esp, guard);
    if (!registered) throw new BootloaderError('grub-install ran but the EFI system partition still holds no boot loader');
  } else if (params.length) {
    assertDeployedToolsAllowed(opts, 'adding kernel parameters (grub-mkconfig)');
    kernelParamsFiles = await applyParamsToDeployedRoot(opts, params, guard);
  }
  return {
    targetBootMode: 'uefi',
    efi: { ...registered, ...(grubInstall ? { grubInstall } : {}), ...(kernelParamsFiles ? { kernelParamsFiles } : {}) },
    ...(params.length ? { kernelParams: { params, files: kernelParamsFiles ?? [] } } : {}),
  };
}

/**
 * Makes the deployed disk bootable. Disk writes are guarded; UEFI NVRAM is
 * only touched when guard.powerIsReal (the agent runs in the node's ramdisk),
 * otherwise the result lists the entries that would have been created.
 */
export async function installBootloader(opts: InstallBootloaderOptions, guard: Guard): Promise<InstallBootloaderResult> {
  guard.assertWritable(opts.device);
  const params = paramsList(opts.customKernelParams);
  const mode = opts.targetBootMode ?? 'bios'; // IPA's default when Ironic sends none
  log.info({ ...opts, mode }, 'installing the boot loader');
  // Root on a software RAID array: every member disk gets a boot loader of its own.
  const holders = arrayHolders(opts.device);
  if (holders.length) {
    const runDeployedTools = opts.runDeployedTools !== false;
    return { targetBootMode: mode, softRaid: await installOnArrayMembers(opts.device, holders, mode, { ...opts, runDeployedTools }, guard) };
  }
  return mode === 'uefi' ? installUefi(opts, params, guard) : installBios(opts, params, guard);
}
