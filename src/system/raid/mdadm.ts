import { existsSync } from 'node:fs';
import { basename } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { listDir, readTrimmed } from '../../hardware/sysfs.ts';
import { log } from '../../log.ts';
import { CommandFailedError, output, run, ToolMissingError } from '../exec.ts';
import { SoftwareRaidFailure } from '../../base/errors.ts';

// mdadm and the kernel's md sysfs: the few things the RAID steps ask.
// md sysfs (/sys/block/mdX/slaves, /sys/class/block/<part>/partition) says
// which partitions and disks hold an array without parsing mdadm's prose.

/** LANG=C so "No md superblock detected" is the text we look for. */
const C_LOCALE = { LANG: 'C', LC_ALL: 'C', PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin' };

export interface MdArray {
  /** /dev/mdN */
  device: string;
  /** Member block devices (/dev/vda2, ...). */
  components: string[];
  /** The whole disks the members live on. */
  holders: string[];
  /** The array's name without the homehost ("root" for "host:root"), if known. */
  name: string | null;
}

/** The whole disk a partition (or disk) lives on: /dev/vda2 -> /dev/vda. */
export function holderDisk(device: string): string {
  const name = basename(device);
  if (readTrimmed(`/sys/class/block/${name}/partition`) === null) return `/dev/${name}`;
  const parentLink = listDir('/sys/block').find((disk) => existsSync(`/sys/block/${disk}/${name}`));
  return parentLink ? `/dev/${parentLink}` : `/dev/${name}`;
}

/** Parses `mdadm --detail --export` (KEY=value lines) for MD_NAME without the homehost. */
export function mdNameFromExport(text: string): string | null {
  const line = text.split('\n').find((l) => l.startsWith('MD_NAME='));
  if (!line) return null;
  const full = line.slice('MD_NAME='.length).trim();
  return full.includes(':') ? full.slice(full.indexOf(':') + 1) : full || null;
}

/** Every md array the kernel has now (assembled or broken). */
export async function listArrays(): Promise<MdArray[]> {
  const arrays: MdArray[] = [];
  for (const entry of listDir('/sys/block').filter((n) => /^md\d+$/.test(n))) {
    const device = `/dev/${entry}`;
    const components = listDir(`/sys/block/${entry}/slaves`).map((s) => `/dev/${s}`);
    let name: string | null = null;
    try {
      name = mdNameFromExport(await output('mdadm', ['--detail', '--export', device], { env: C_LOCALE }));
    } catch (err) {
      log.debug({ device, err: String(err) }, 'mdadm --detail failed (an inactive array?)');
    }
    arrays.push({ device, components, holders: [...new Set(components.map(holderDisk))], name });
  }
  return arrays;
}

/** Assemble whatever arrays the disks' superblocks describe (IPA does this before deleting). */
export async function assembleAll(): Promise<void> {
  await run('mdadm', ['--assemble', '--scan'], { okExitCodes: [1, 2], env: C_LOCALE, timeoutMs: 120_000 });
}

/** `mdadm --examine` of an md member: "Magic : a92b4efc" (the superblock magic of every metadata version). */
export const MD_MAGIC_LINE = /^\s*Magic : a92b4efc\s*$/m;

/** Whether the device carries an md superblock (`mdadm --examine`). */
export async function hasSuperblock(device: string): Promise<boolean> {
  try {
    // On a disk with an MBR or GPT, --examine succeeds and describes the table ("MBR Magic : aa55"): only md's magic counts.
    return MD_MAGIC_LINE.test((await run('mdadm', ['--examine', device], { env: C_LOCALE })).stdout);
  } catch (err) {
    if (err instanceof CommandFailedError && /No md superblock detected|cannot open|No such file/i.test(err.stderr + err.message)) return false;
    if (err instanceof ToolMissingError) throw err;
    throw new SoftwareRaidFailure(`Failed to examine device ${device}: ${(err as Error).message}`);
  }
}

export async function zeroSuperblock(device: string): Promise<void> {
  await run('mdadm', ['--zero-superblock', device], { env: C_LOCALE });
}

export async function stopArray(device: string): Promise<void> {
  await run('mdadm', ['--stop', device], { env: C_LOCALE });
}

export interface CreateArrayOptions {
  device: string;
  level: string;
  members: string[];
  name?: string;
}

/** mdadm --create with IPA's options: metadata 1.x, no questions asked. */
export async function createArray(o: CreateArrayOptions): Promise<void> {
  const args = ['--create', o.device, '--force', '--run', '--metadata=1', '--level', o.level, '--raid-devices', String(o.members.length)];
  if (o.name) args.push('--name', o.name);
  await run('mdadm', [...args, ...o.members], { env: C_LOCALE, timeoutMs: 300_000 });
  // udev makes /dev/mdN and /dev/md/<name>; the device node must exist before anyone writes to it.
  for (let i = 0; i < 50 && !existsSync(o.device); i++) await sleep(200);
  if (!existsSync(o.device)) throw new SoftwareRaidFailure(`mdadm created ${o.device} but the device node did not appear`);
}

/** The whole disks under an array (/dev/md0 -> [/dev/vda, /dev/vdb]); [] for anything that is not an md array. */
export function arrayHolders(device: string): string[] {
  const m = /^\/dev\/(md\d+)$/.exec(device);
  if (!m) return [];
  const components = listDir(`/sys/block/${m[1]}/slaves`).map((s) => `/dev/${s}`);
  return [...new Set(components.map(holderDisk))];
}
