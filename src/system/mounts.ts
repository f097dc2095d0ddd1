import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { run } from './exec.ts';
import { log } from '../log.ts';

// Mounting deployed filesystems for the bootloader step. Everything mounted
// here is unmounted again in reverse order, also when the work fails, so a
// failed deploy never leaves the disk busy (the next attempt repartitions it).

export interface MountOptions {
  readOnly?: boolean;
  fsType?: string;
  /** Extra -o options. */
  options?: string[];
}

/** Whether anything is mounted at `dir` (reads /proc/self/mountinfo). */
export async function isMountPoint(dir: string): Promise<boolean> {
  const info = await readFile('/proc/self/mountinfo', 'utf8').catch(() => '');
  return info.split('\n').some((line) => line.split(' ')[4] === dir);
}

export async function mount(source: string, target: string, opts: MountOptions = {}): Promise<void> {
  const o = [...(opts.readOnly ? ['ro'] : []), ...(opts.options ?? [])];
  const args = [...(opts.fsType ? ['-t', opts.fsType] : []), ...(o.length ? ['-o', o.join(',')] : []), source, target];
  await run('mount', args, { timeoutMs: 120_000 });
}

/** Unmounts; falls back to a lazy unmount so cleanup never wedges on a busy mount. */
export async function unmount(target: string): Promise<void> {
  try {
    await run('umount', [target], { timeoutMs: 120_000 });
  } catch (err) {
    log.warn({ target, err: String(err) }, 'umount failed, detaching lazily');
    await run('umount', ['-l', target], { timeoutMs: 60_000 });
  }
}

/** Mounts `source` on a fresh temp dir, runs fn, always unmounts and removes the dir. */
export async function withMount<T>(source: string, opts: MountOptions, fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(join(tmpdir(), 'metal-mnt-'));
  try {
    await mount(source, dir, opts);
    try {
      return await fn(dir);
    } finally {
      await unmount(dir);
    }
  } finally {
    await rm(dir, { recursive: true, force: true }).catch(() => undefined);
  }
}

/** The kernel filesystems a chroot needs to run grub-install and friends. */
const CHROOT_BINDS = ['/dev', '/dev/pts', '/proc', '/sys', '/run'];

/**
 * Bind-mounts /dev, /proc, /sys (and friends) into `root`, runs fn, and
 * unmounts them in reverse order whatever happens. Extra mounts (the ESP on
 * /boot/efi) can be passed and are mounted after the binds.
 */
export async function withChrootMounts<T>(
  root: string,
  fn: () => Promise<T>,
  extra: Array<{ source: string; target: string; opts?: MountOptions }> = [],
): Promise<T> {
  const mounted: string[] = [];
  try {
    for (const src of CHROOT_BINDS) {
      const target = join(root, src);
      // Only bind where the deployed OS has the directory: we never create
      // directories in the deployed root just for our mounts.
      const ok = await run('mount', ['--bind', src, target], { okExitCodes: [32] });
      if (ok.exitCode === 0) mounted.push(target);
      else log.debug({ src, target, stderr: ok.stderr }, 'bind mount skipped');
    }
    for (const m of extra) {
      const target = join(root, m.target);
      await mount(m.source, target, m.opts);
      mounted.push(target);
    }
    return await fn();
  } finally {
    for (const target of mounted.reverse()) {
      await unmount(target).catch((err) => log.error({ target, err: String(err) }, 'could not unmount'));
    }
  }
}
