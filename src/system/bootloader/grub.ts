import { dirname } from 'node:path';
import { run } from '../exec.ts';
import { log } from '../../log.ts';
import type { Guard } from '../safety.ts';
import { withChrootMounts, withMount, type MountOptions } from '../mounts.ts';
import { withPartitionDevice, probePartitionFilesystem, readPartitionTable, type PartitionEntry } from '../partitions/index.ts';
import { existsInImage, mkdirInImage, readImageFile } from '../image-root.ts';

// The deployed OS's own GRUB, run in a chroot of its root filesystem: the
// agent never brings a boot loader of its own, so the deployed OS keeps
// boot code that matches its grub.cfg and modules.

export class BootloaderError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'BootloaderError';
  }
}

const LINUX_FS = new Set(['ext2', 'ext3', 'ext4', 'xfs', 'btrfs']);

/**
 * The deployed root partition: the one whose filesystem UUID (or partition
 * GUID) is rootUuid; without a usable UUID (whole disk images report the disk
 * signature), the first Linux filesystem that holds etc/os-release.
 */
export async function findDeployedRoot(device: string, rootUuid?: string | null): Promise<PartitionEntry> {
  const table = await readPartitionTable(device);
  if (!table) throw new BootloaderError(`${device} has no partition table: cannot find the deployed root filesystem`);
  const probed = await Promise.all(
    table.partitions.map(async (p) => ({ p, fs: await probePartitionFilesystem(device, p) })),
  );
  const wanted = rootUuid?.toLowerCase();
  if (wanted && !wanted.startsWith('0x')) {
    const hit = probed.find(({ p, fs }) => fs.uuid?.toLowerCase() === wanted || p.uuid === wanted);
    if (hit) return hit.p;
    throw new BootloaderError(`no partition with UUID ${rootUuid} on ${device}`);
  }
  for (const { p, fs } of probed) {
    if (!fs.type || !LINUX_FS.has(fs.type)) continue;
    const found = await withPartitionDevice(device, p, (dev) =>
      withMount(dev, { readOnly: true }, (dir) => existsInImage(dir, '/etc/os-release')),
    ).catch(() => false);
    if (found) return p;
  }
  throw new BootloaderError(`no partition on ${device} holds a Linux root filesystem (etc/os-release)`);
}

/**
 * Mounts the deployed root read-write with /dev, /proc, /sys bound into it
 * (plus extra mounts such as the ESP), runs fn, unmounts everything.
 */
export async function withDeployedRoot<T>(
  device: string,
  root: PartitionEntry,
  guard: Guard,
  fn: (rootDir: string) => Promise<T>,
  extra: (rootDir: string) => Promise<Array<{ source: string; target: string; opts?: MountOptions }>> = async () => [],
): Promise<T> {
  guard.assertWritable(device);
  return withPartitionDevice(device, root, (dev) =>
    withMount(dev, {}, async (dir) => withChrootMounts(dir, () => fn(dir), await extra(dir))),
  );
}

export interface GrubTools {
  install: string;
  mkconfig: string;
  /** grub.cfg path inside the root. */
  config: string;
}

/** Finds the deployed OS's grub tools (Debian grub-*, Fedora/RHEL grub2-*). */
export async function findGrubTools(root: string): Promise<GrubTools> {
  const dirs = ['usr/sbin', 'sbin', 'usr/bin', 'bin'];
  const find = async (names: string[]) => {
    for (const name of names) for (const d of dirs) if (await existsInImage(root, `/${d}/${name}`)) return `/${d}/${name}`;
    return undefined;
  };
  const install = await find(['grub-install', 'grub2-install']);
  const mkconfig = await find(['grub-mkconfig', 'grub2-mkconfig']);
  if (!install || !mkconfig) {
    throw new BootloaderError(
      `the deployed image has no GRUB (${!install ? 'grub-install/grub2-install' : 'grub-mkconfig/grub2-mkconfig'} ` +
        'not found in its root filesystem); install GRUB in the image or use a whole disk image with its own boot loader',
    );
  }
  const config = mkconfig.includes('grub2') || (await existsInImage(root, '/boot/grub2')) ? '/boot/grub2/grub.cfg' : '/boot/grub/grub.cfg';
  return { install, mkconfig, config };
}

async function inChroot(root: string, cmd: string, args: string[]): Promise<void> {
  log.info({ root, cmd, args }, 'running in the deployed root');
  // os-prober would scan (and mount) every other disk of the machine.
  await run('chroot', [root, cmd, ...args], { env: { GRUB_DISABLE_OS_PROBER: 'true' }, timeoutMs: 20 * 60_000 });
}

export async function grubInstallBios(root: string, tools: GrubTools, target: string): Promise<string[]> {
  const args = ['--target=i386-pc', target];
  await inChroot(root, tools.install, args);
  return [tools.install, ...args];
}

export async function grubInstallEfi(root: string, tools: GrubTools, bootloaderId: string): Promise<string[]> {
  // NVRAM entries are ours to manage (and must stay off in dry runs).
  const args = ['--target=x86_64-efi', '--efi-directory=/boot/efi', `--bootloader-id=${bootloaderId}`, '--no-nvram'];
  await inChroot(root, tools.install, args);
  return [tools.install, ...args];
}

export async function grubMkconfig(root: string, tools: GrubTools): Promise<string[]> {
  await mkdirInImage(root, dirname(tools.config));
  const args = ['-o', tools.config];
  await inChroot(root, tools.mkconfig, args);
  return [tools.mkconfig, ...args];
}

/** The deployed OS's ID from etc/os-release (bootloader id on the ESP). */
export async function osId(root: string): Promise<string> {
  const text = (await readImageFile(root, '/etc/os-release').catch(() => null)) ?? '';
  return /^ID="?([A-Za-z0-9._-]+)"?$/m.exec(text)?.[1] ?? 'linux';
}
