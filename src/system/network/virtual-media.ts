import { mkdtemp, readFile, rmdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseKernelCmdline } from '../../base/kernel-cmdline.ts';
import { log } from '../../log.ts';
import { output, run } from '../exec.ts';

// Virtual media boots (Redfish/iLO/iDRAC) carry the agent's configuration on
// a device the BMC attaches, the way IPA 9.4 finds it:
//  - parameters: a FAT image labelled `ir-vfd-dev` with `parameters.txt`
//    (key=value separated by whitespace, like the kernel command line), read
//    only when the kernel command line says `boot_method=vmedia`;
//  - DHCP-less network config: the boot ISO / config drive labelled `config-2`
//    or `vmedia_boot_iso`, file `openstack/latest/network_data.json`.
// Labels match case-insensitively (FAT upper-cases them). A candidate must look
// like virtual media (a CD-ROM, or a small USB disk) and never be a partition:
// a previous tenant's config-drive partition on a local disk also says config-2.

export const PARAMETERS_LABELS = ['ir-vfd-dev'];
export const CONFIG_LABELS = ['config-2', 'vmedia_boot_iso'];
const NETWORK_DATA_PATH = 'openstack/latest/network_data.json';
const MAX_USB_VMEDIA_BYTES = 4 * 1024 ** 3;

/** Rows of `lsblk -P`: KEY="value" pairs, with lsblk's \xNN escapes undone. */
export function parseLsblkPairs(text: string): Array<Record<string, string>> {
  const rows: Array<Record<string, string>> = [];
  for (const line of text.split('\n')) {
    if (line.trim() === '') continue;
    const row: Record<string, string> = {};
    for (const m of line.matchAll(/([A-Z0-9:_-]+)="((?:[^"\\]|\\.)*)"/g)) {
      row[m[1]!] = m[2]!.replace(/\\x([0-9a-fA-F]{2})/g, (_, h: string) => String.fromCharCode(parseInt(h, 16)));
    }
    rows.push(row);
  }
  return rows;
}

/** Devices whose filesystem label is one of `labels` (case-insensitive), from `lsblk -p -P -o KNAME,LABEL`. */
export function devicesWithLabel(lsblkText: string, labels: readonly string[]): string[] {
  const wanted = labels.map((l) => l.toUpperCase());
  return parseLsblkPairs(lsblkText)
    .filter((r) => r.KNAME && wanted.includes((r.LABEL ?? '').toUpperCase()))
    .map((r) => r.KNAME!);
}

/**
 * Whether `lsblk -n -s -P -b -o KNAME,TRAN,TYPE,SIZE DEV` describes virtual
 * media: the first row is the device itself (-s lists it, then its parents).
 */
export function looksLikeVirtualMedia(lsblkText: string): boolean {
  const dev = parseLsblkPairs(lsblkText)[0];
  if (!dev) return false;
  if (dev.TYPE === 'rom') return true;
  if (dev.TYPE === 'disk' && dev.TRAN === 'usb') {
    const size = Number(dev.SIZE);
    return dev.SIZE !== '' && Number.isFinite(size) && size < MAX_USB_VMEDIA_BYTES;
  }
  return false; // partitions, local disks, loop devices, ...
}

async function findVirtualMediaDevice(labels: readonly string[]): Promise<string | undefined> {
  let listing: string;
  try {
    listing = await output('lsblk', ['-p', '-P', '-o', 'KNAME,LABEL'], { timeoutMs: 30_000 });
  } catch (err) {
    log.warn({ err: String(err) }, 'lsblk failed, no virtual media');
    return undefined;
  }
  // lsblk takes labels from udev's database, which lacks them when a rule did not
  // probe the device; blkid probes the devices itself (FAT labels read upper-case).
  const probed: string[] = [];
  for (const label of new Set(labels.flatMap((l) => [l, l.toUpperCase()]))) {
    const r = await output('blkid', ['-o', 'device', '-t', `LABEL=${label}`], { timeoutMs: 30_000, okExitCodes: [2] }).catch(() => '');
    probed.push(...r.split('\n').map((l) => l.trim()).filter(Boolean));
  }
  for (const dev of new Set([...devicesWithLabel(listing, labels), ...probed])) {
    try {
      const info = await output('lsblk', ['-n', '-s', '-P', '-b', '-o', 'KNAME,TRAN,TYPE,SIZE', dev], { timeoutMs: 30_000 });
      if (looksLikeVirtualMedia(info)) return dev;
      log.info({ dev, labels }, 'labelled device does not look like virtual media, ignored');
    } catch (err) {
      log.warn({ dev, err: String(err) }, 'lsblk on a virtual media candidate failed');
    }
  }
  return undefined;
}

export function bootedFromVirtualMedia(cmdline: string): boolean {
  return parseKernelCmdline(cmdline).boot_method === 'vmedia';
}

/** Runs fn on the device's filesystem: where it is already mounted, or mounted read-only for the call. */
async function withMountedDevice<T>(dev: string, fn: (dir: string) => Promise<T>): Promise<T> {
  const already = (await run('findmnt', ['-n', '-o', 'TARGET', dev], { okExitCodes: [1], timeoutMs: 10_000 })).stdout
    .split('\n')[0]
    ?.trim();
  if (already) return fn(already);
  const dir = await mkdtemp(join(tmpdir(), 'metal-agent-vmedia-'));
  try {
    await run('mount', ['-o', 'ro', dev, dir], { timeoutMs: 60_000 });
    try {
      return await fn(dir);
    } finally {
      await run('umount', [dir], { timeoutMs: 60_000 }).catch((err: unknown) =>
        log.warn({ dev, dir, err: String(err) }, 'could not unmount virtual media'),
      );
    }
  } finally {
    await rmdir(dir).catch(() => undefined);
  }
}

async function readIfExists(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

/** network_data.json from a mounted config drive / boot ISO directory, undefined if it has none. */
export async function readNetworkDataFromDir(dir: string): Promise<unknown> {
  const text = await readIfExists(join(dir, NETWORK_DATA_PATH));
  if (text === undefined) return undefined;
  try {
    return JSON.parse(text) as unknown;
  } catch (err) {
    throw new Error(`${NETWORK_DATA_PATH} on virtual media is not JSON: ${String(err)}`);
  }
}

export interface VirtualMediaConfig {
  /** From parameters.txt; the caller merges these over the kernel command line (IPA's precedence). */
  params: Record<string, string>;
  /** Raw network_data.json, to be given to applyNetworkData (which validates it). */
  networkData?: unknown;
}

/**
 * Everything a virtual media boot carries. Nothing is read unless the kernel
 * command line says boot_method=vmedia (`force` skips that check).
 */
export async function readVirtualMediaConfig(opts: { cmdline?: string; force?: boolean } = {}): Promise<VirtualMediaConfig> {
  const cmdline = opts.cmdline ?? (await readIfExists('/proc/cmdline')) ?? '';
  if (!opts.force && !bootedFromVirtualMedia(cmdline)) return { params: {} };
  const result: VirtualMediaConfig = { params: {} };
  const paramsDev = await findVirtualMediaDevice(PARAMETERS_LABELS);
  if (paramsDev) {
    const text = await withMountedDevice(paramsDev, (dir) => readIfExists(join(dir, 'parameters.txt')));
    result.params = parseKernelCmdline(text ?? '');
    log.info({ dev: paramsDev, keys: Object.keys(result.params) }, 'virtual media parameters read');
  }
  const configDev = await findVirtualMediaDevice(CONFIG_LABELS);
  if (configDev) {
    result.networkData = await withMountedDevice(configDev, readNetworkDataFromDir);
    log.info({ dev: configDev, found: result.networkData !== undefined }, 'virtual media network_data.json');
  }
  return result;
}
