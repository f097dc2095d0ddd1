import { lstat, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { run } from './exec.ts';
import { ImagePathError, isWithin, resolveInImage } from './image-root.ts';
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
 *
 * Targets are paths inside the deployed image and are resolved inside it
 * (image-root.ts): a mount must never land outside the image because the
 * image has a symlink (/run -> /, /proc -> /etc on the agent's side). The
 * kernel filesystems are bound only where the image has a real directory at
 * that very path; an extra target may be reached through the image's own
 * symlinks, but not into one of the binds (they are the agent's /dev, /sys...,
 * and a mount below them would show up there too).
 */
export async function withChrootMounts<T>(
  root: string,
  fn: () => Promise<T>,
  extra: Array<{ source: string; target: string; opts?: MountOptions }> = [],
): Promise<T> {
  const mounted: string[] = [];
  const binds: string[] = [];
  try {
    for (const src of CHROOT_BINDS) {
      // Only bind where the deployed OS has the directory: we never create
      // directories in the deployed root just for our mounts.
      const inImage = await resolveInImage(root, src);
      if (inImage !== src || !(await isRealDir(join(root, src)))) {
        log.debug({ src, resolved: inImage }, 'bind mount skipped: the image has no directory there');
        continue;
      }
      const target = join(root, src);
      const ok = await run('mount', ['--bind', src, target], { okExitCodes: [32] });
      if (ok.exitCode === 0) {
        mounted.push(target);
        binds.push(src);
      } else log.debug({ src, target, stderr: ok.stderr }, 'bind mount skipped');
    }
    for (const m of extra) {
      const inImage = await resolveInImage(root, m.target);
      if (inImage === null || !(await isRealDir(join(root, inImage)))) {
        throw new ImagePathError(`cannot mount ${m.source} on ${m.target}: not a directory inside the deployed image`);
      }
      if (inImage === '/' || binds.some((b) => isWithin(inImage, b))) {
        throw new ImagePathError(`cannot mount ${m.source} on ${m.target}: in the deployed image it leads to ${inImage}`);
      }
      const target = join(root, inImage);
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

async function isRealDir(path: string): Promise<boolean> {
  return lstat(path).then(
    (st) => st.isDirectory(),
    () => false,
  );
}
