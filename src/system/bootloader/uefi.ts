import { log } from '../../log.ts';
import type { Guard } from '../safety.ts';
import { withPartitionDevice, type PartitionEntry, probePartitionFilesystem } from '../partitions/index.ts';
import { applyBootEntries, type BootEntryPlan } from './efibootmgr.ts';
import {
  chooseLoaderWithoutCsv,
  efiPath,
  fallbackLoaderName,
  findBootCsvs,
  loaderFromCsv,
  parseBootCsv,
  type EfiLoaderChoice,
} from './efi-loaders.ts';
import { EspFs } from './esp.ts';
import { findGrubTools, grubInstallEfi, grubMkconfig, osId, withDeployedRoot } from './grub.ts';
import { applyKernelParams } from './kernel-params.ts';
import { ensureEspInFstab } from './fstab.ts';
import { mkdirInImage } from '../image-root.ts';

// UEFI: register the deployed OS's loader (shim or grub) in NVRAM and make
// sure the removable-media fallback path exists, so the node boots even when
// its firmware forgets or reorders the NVRAM entries.

/** The loaders to register, from the ESP's file list (reading CSVs as needed). */
async function chooseEfiLoaders(esp: EspFs, files: string[]): Promise<EfiLoaderChoice[]> {
  for (const csv of findBootCsvs(files)) {
    try {
      const entry = parseBootCsv(await esp.readFile(csv));
      return [loaderFromCsv(csv, entry, files)];
    } catch (err) {
      log.warn({ csv, err: String(err) }, 'ignoring unreadable boot CSV');
    }
  }
  return chooseLoaderWithoutCsv(files);
}

export interface FallbackResult {
  path: string;
  created: boolean;
  /** Files copied into EFI/BOOT (shim needs its grub next to it). */
  copied: string[];
}

/** Makes EFI/BOOT/BOOTX64.EFI a copy of the chosen loader when the image has none. */
async function ensureFallbackLoader(
  esp: EspFs,
  files: string[],
  loader: EfiLoaderChoice,
  guard: Guard,
): Promise<FallbackResult> {
  const path = `EFI/BOOT/${fallbackLoaderName()}`;
  if (files.some((f) => f.toLowerCase() === path.toLowerCase())) return { path, created: false, copied: [] };
  const dir = loader.path.slice(0, loader.path.lastIndexOf('/'));
  const copies: Array<[string, string]> = [[loader.path, path]];
  if (/^shim/i.test(loader.path.slice(dir.length + 1))) {
    // shim chain-loads grub<arch>.efi (and mm<arch>.efi) from its own directory.
    const besideShim = (f: string) => f.slice(0, f.lastIndexOf('/')) === dir && /^(grub|mm)[a-z0-9]+\.efi$/i.test(f.slice(dir.length + 1));
    for (const f of files.filter(besideShim)) {
      copies.push([f, `EFI/BOOT/${f.slice(dir.length + 1)}`]);
    }
  }
  for (const [from, to] of copies) await esp.writeFile(to, await esp.readFile(from), guard);
  log.info({ path, from: loader.path }, 'created the removable-media fallback loader');
  return { path, created: true, copied: copies.map(([, to]) => to) };
}

export interface UefiResult {
  espPartition: number;
  loaders: EfiLoaderChoice[];
  entries: BootEntryPlan[];
  fallback: FallbackResult;
  /** grub-install run in the deployed root because the ESP held no loader. */
  grubInstall?: string[];
  kernelParamsFiles?: string[];
}

/**
 * grub-install --target=x86_64-efi in the deployed root with the ESP mounted
 * on /boot/efi: the partition image case, where we made the ESP empty.
 */
export async function populateEspWithGrub(
  device: string,
  esp: PartitionEntry,
  root: PartitionEntry,
  kernelParams: string[],
  guard: Guard,
): Promise<{ grubInstall: string[]; kernelParamsFiles: string[] }> {
  const espUuid = (await probePartitionFilesystem(device, esp)).uuid;
  return withPartitionDevice(device, esp, (espDev) =>
    withDeployedRoot(
      device,
      root,
      guard,
      async (dir) => {
        const tools = await findGrubTools(dir);
        const kernelParamsFiles = kernelParams.length ? await applyKernelParams(dir, kernelParams) : [];
        if (espUuid) await ensureEspInFstab(dir, espUuid);
        const grubInstall = await grubInstallEfi(dir, tools, await osId(dir));
        await grubMkconfig(dir, tools);
        return { grubInstall, kernelParamsFiles };
      },
      async (dir) => {
        await mkdirInImage(dir, '/boot/efi');
        return [{ source: espDev, target: 'boot/efi', opts: { fsType: 'vfat' } }];
      },
    ),
  );
}

/**
 * Registers the ESP's loaders with the firmware. `labelSuffix` tells apart entries of several disks
 * carrying the same loader (the members of a software RAID): entries are replaced by label, so
 * without it each member's entry would replace the previous member's and only the last disk would
 * keep one.
 */
export async function registerEfiLoaders(
  device: string,
  esp: PartitionEntry,
  guard: Guard,
  labelSuffix = '',
): Promise<Omit<UefiResult, 'grubInstall' | 'kernelParamsFiles'> | null> {
  const fs = new EspFs(device, esp);
  const files = await fs.listFiles();
  const loaders = await chooseEfiLoaders(fs, files);
  if (loaders.length === 0) return null;
  const fallback = await ensureFallbackLoader(fs, files, loaders[0]!, guard);
  const entries = await applyBootEntries(
    loaders.map((l) => ({ device, partition: esp.number, loader: efiPath(l.path), label: l.label + labelSuffix })),
    guard,
  );
  return { espPartition: esp.number, loaders, entries, fallback };
}
