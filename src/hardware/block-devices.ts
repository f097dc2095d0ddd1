import { basename } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseBoolean } from '../base/booleans.ts';
import { log } from '../log.ts';
import { hasTool, output, run } from '../system/exec.ts';
import { runningInRamdisk } from '../system/safety.ts';
import { RootDeviceNotFoundError, selectRootDevice } from './root-device-hints.ts';
import { linkTarget, listDir, readTrimmed } from './sysfs.ts';
import type { BlockDevice } from './types.ts';

// The whole disks of this machine as IPA 9.4's list_all_block_devices sees
// them: lsblk for the list, udev's database for WWN/serial, /sys for vendor
// and SCSI address, /dev/disk/by-path for the stable path. Reading only:
// listing never opens a device for writing.

const LSBLK_COLUMNS = ['KNAME', 'MODEL', 'SIZE', 'ROTA', 'TYPE', 'UUID', 'PARTUUID', 'SERIAL', 'WWN', 'LOG-SEC', 'PHY-SEC', 'TRAN', 'MAJ:MIN'];

/** One row of `lsblk -J -l`; util-linux 2.38 prints numbers and booleans, older ones strings. */
export interface LsblkRow {
  kname: string;
  model?: string | null;
  size?: number | string | null;
  rota?: boolean | string | null;
  type?: string | null;
  uuid?: string | null;
  partuuid?: string | null;
  serial?: string | null;
  wwn?: string | null;
  'log-sec'?: number | string | null;
  'phy-sec'?: number | string | null;
  tran?: string | null;
  'maj:min'?: string | null;
}

export interface ListOptions {
  /**
   * Offer loop devices that have a backing file as disks. IPA never does; we
   * do outside a ramdisk so tests and lab runs can use loop disks. Default:
   * true outside a ramdisk, false inside one (a live ramdisk's squashfs loop
   * is not a disk to deploy to or erase).
   */
  includeLoop?: boolean;
  /** IPA's ignore_empty: skip zero-sized devices (virtual floppies, empty card readers). */
  ignoreEmpty?: boolean;
  /** Skip udevadm settle (tests that list repeatedly). */
  skipSettle?: boolean;
}

/** lsblk's flags: true/false from a recent lsblk's JSON, "1"/"0" from an older one. */
const toBool = (v: unknown): boolean => parseBoolean(v) ?? false;

function toInt(v: unknown): number | null {
  if (v === null || v === undefined || v === '') return null;
  const n = Number(v);
  return Number.isFinite(n) ? n : null;
}

function str(v: unknown): string | null {
  if (v === null || v === undefined) return null;
  const s = String(v).trim();
  return s === '' ? null : s;
}

/** udev's properties for a block device, read from its database (what pyudev reads). */
export function udevProperties(majMin: string | null | undefined): Record<string, string> {
  const props: Record<string, string> = {};
  if (!majMin) return props;
  const text = readTrimmed(`/run/udev/data/b${majMin}`);
  for (const line of (text ?? '').split('\n')) {
    if (!line.startsWith('E:')) continue;
    const eq = line.indexOf('=');
    if (eq > 2) props[line.slice(2, eq)] = line.slice(eq + 1);
  }
  return props;
}

/** /dev/disk/by-path links keyed by the device they point at. */
export function byPathMapping(dir = '/dev/disk/by-path'): Map<string, string> {
  const map = new Map<string, string>();
  for (const entry of listDir(dir)) {
    const link = `${dir}/${entry}`;
    const target = linkTarget(link);
    if (target) map.set(target, link);
  }
  return map;
}

/** The SCSI address host:channel:target:lun, as IPA reads it from /sys. */
export function hctlOf(kname: string): string | null {
  return listDir(`/sys/block/${kname}/device/scsi_device`)[0] ?? null;
}

/** Whether the kernel flags the disk read-only (/sys/block/X/ro). */
export function isReadOnly(device: string): boolean {
  return readTrimmed(`/sys/block/${basename(device)}/ro`) === '1';
}

function loopBackingFile(kname: string): string | null {
  return readTrimmed(`/sys/block/${kname}/loop/backing_file`);
}

/** IPA's filter, row by row: which lsblk rows are whole disks we report. */
export function isReportedDisk(row: LsblkRow, opts: Required<Pick<ListOptions, 'includeLoop' | 'ignoreEmpty'>>): boolean {
  const kname = row.kname;
  const type = row.type ?? '';
  if (kname.startsWith('fd')) return false; // floppies are TYPE disk too
  const isDisk = type === 'disk' || type.includes('raid'); // hardware/md RAID volumes are disks
  const isLoop = type === 'loop' && opts.includeLoop && loopBackingFile(kname) !== null;
  if (!isDisk && !isLoop) return false; // part, rom (cdrom), lvm, crypt, md partitions...
  if (kname.startsWith('ram') || kname.startsWith('zram')) return false;
  if (opts.ignoreEmpty && !toInt(row.size)) return false;
  return true;
}

/** Build IPA's BlockDevice from an lsblk row plus udev and /sys facts. */
export function toBlockDevice(row: LsblkRow, byPath: Map<string, string>): BlockDevice {
  const name = `/dev/${row.kname}`;
  const udev = udevProperties(row['maj:min']);
  return {
    name,
    model: str(row.model) ?? '',
    size: toInt(row.size) ?? 0,
    rotational: toBool(row.rota),
    // IPA takes these from udev (ID_SERIAL_SHORT is the short serial the
    // old bash ramdisk used); without a udev database lsblk's own sysfs
    // reading is the next best source.
    wwn: udev.ID_WWN ?? str(row.wwn),
    serial: udev.ID_SERIAL_SHORT ?? str(row.serial),
    wwn_with_extension: udev.ID_WWN_WITH_EXTENSION ?? null,
    wwn_vendor_extension: udev.ID_WWN_VENDOR_EXTENSION ?? null,
    vendor: readTrimmed(`/sys/class/block/${row.kname}/device/vendor`),
    hctl: hctlOf(row.kname),
    by_path: byPath.get(name) ?? null,
    uuid: str(row.uuid),
    partuuid: str(row.partuuid),
    logical_sectors: toInt(row['log-sec']),
    physical_sectors: toInt(row['phy-sec']),
    tran: str(row.tran),
  };
}

export async function lsblkRows(devices: readonly string[] = []): Promise<LsblkRow[]> {
  const text = await output('lsblk', ['-J', '-b', '-a', '-l', '-o', LSBLK_COLUMNS.join(','), ...devices]);
  return (JSON.parse(text) as { blockdevices?: LsblkRow[] }).blockdevices ?? [];
}

async function udevSettle(): Promise<void> {
  if (!(await hasTool('udevadm'))) return;
  try {
    await run('udevadm', ['settle', '--timeout=30'], { timeoutMs: 40_000 });
  } catch (err) {
    log.warn({ err }, 'udevadm settle failed; listing disks anyway');
  }
}

/** Every whole disk, in lsblk order (IPA's list_all_block_devices). */
export async function listBlockDevices(opts: ListOptions = {}): Promise<BlockDevice[]> {
  const filter = {
    includeLoop: opts.includeLoop ?? !runningInRamdisk(),
    ignoreEmpty: opts.ignoreEmpty ?? true,
  };
  if (!opts.skipSettle) await udevSettle();
  const byPath = byPathMapping();
  const seen = new Set<string>();
  const disks: BlockDevice[] = [];
  for (const row of await lsblkRows()) {
    if (seen.has(row.kname)) continue; // a RAID member's array appears once per member
    seen.add(row.kname);
    if (isReportedDisk(row, filter)) disks.push(toBlockDevice(row, byPath));
  }
  return disks;
}

export interface WaitForDisksOptions {
  /** IPA's disk_wait_attempts (ipa-disk-wait-attempts, default 10); 0 disables waiting. */
  attempts: number;
  /** IPA's disk_wait_delay in seconds (ipa-disk-wait-delay, default 3). */
  delaySec: number;
  /** Root device hints of the node, if known: wait for the disk they name. */
  hints?: unknown;
  /** Where disks come from (defaults to listBlockDevices; tests inject). */
  list?: () => Promise<BlockDevice[]>;
  signal?: AbortSignal;
}

/**
 * IPA's wait_for_disks: retry until the root device (hints, else the
 * default choice) shows up. Returns it, or null after the last attempt
 * (IPA only warns then; the deploy fails later with a precise error).
 */
export async function waitForDisks(opts: WaitForDisksOptions): Promise<BlockDevice | null> {
  if (!opts.attempts) return null;
  const list = opts.list ?? (() => listBlockDevices());
  for (let attempt = 1; attempt <= opts.attempts; attempt++) {
    try {
      return selectRootDevice(await list(), opts.hints);
    } catch (err) {
      if (!(err instanceof RootDeviceNotFoundError)) throw err;
      log.debug({ attempt, of: opts.attempts }, 'still waiting for the root device to appear');
    }
    if (attempt < opts.attempts && !opts.signal?.aborted) await sleep(opts.delaySec * 1000);
  }
  log.warn(`the root device was not detected in ${opts.delaySec * (opts.attempts - 1)} seconds`);
  return null;
}
