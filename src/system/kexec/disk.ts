import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, mkdtemp, open, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { log } from '../../log.ts';
import { withMount, type MountOptions } from '../mounts.ts';
import { withPartitionDevice, probePartitionFilesystem, deviceSize, readPartitionTable, type PartitionEntry } from '../partitions/index.ts';
import { findBootTarget, KexecError, type BootTarget, type FileRef, type FindOptions } from './find.ts';
import { mountedView, type FsView } from './fsview.ts';
import { kernelInfo, type KernelInfo } from './parse.ts';

// The disk side of a handoff: every filesystem of the deployed disk mounted
// read-only with journal replay off (a failed or dry-run handoff must not
// change a byte of the disk), the boot target found, the kernel and initrd
// copied to a RAM-backed staging directory, then everything unmounted again
// before kexec ever runs.

/** Filesystems that may hold a kernel or boot configuration. */
const READABLE_FS = new Set(['ext2', 'ext3', 'ext4', 'xfs', 'btrfs', 'vfat']);

/** Read-only without replaying journals/logs, so mounting writes nothing. */
function readOnlyMountOptions(fsType: string): MountOptions {
  const extra: Record<string, string[]> = { ext3: ['noload'], ext4: ['noload'], xfs: ['norecovery'], btrfs: ['nologreplay'] };
  return { readOnly: true, fsType, options: extra[fsType] ?? [] };
}

export interface StagedFile extends FileRef {
  size: number;
  sha256: string;
}

export interface StagedKernel extends StagedFile {
  format: KernelInfo['format'];
  version?: string;
}

export interface Staged {
  target: BootTarget;
  dir: string;
  kernelPath: string;
  initrdPath?: string;
  kernel: StagedKernel;
  initrds: StagedFile[];
  initrdSize?: number;
}

/** Where staged files go: /run when it is a tmpfs (always in the ramdisk), else the temp dir. */
async function stagingBase(): Promise<string> {
  const mounts = await readFile('/proc/self/mounts', 'utf8').catch(() => '');
  const runIsTmpfs = mounts.split('\n').some((l) => {
    const [, mp, type] = l.split(' ');
    return mp === '/run' && type === 'tmpfs';
  });
  if (runIsTmpfs) {
    const base = '/run/metal-agent';
    await mkdir(base, { recursive: true });
    return base;
  }
  return tmpdir();
}

async function sha256(path: string): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(path)) h.update(chunk as Buffer);
  return h.digest('hex');
}

async function copyFrom(view: FsView & { dir: string }, ref: FileRef, out: string, append: boolean): Promise<StagedFile> {
  const src = join(view.dir, ref.path);
  try {
    await pipeline(createReadStream(src), createWriteStream(out, { flags: append ? 'a' : 'w' }));
  } catch (err) {
    throw new KexecError(`cannot read ${ref.path} on partition ${ref.partition}: ${(err as Error).message}`);
  }
  const size = (await stat(src)).size;
  return { ...ref, size, sha256: await sha256(src) };
}

function cpuSince(start: NodeJS.CpuUsage): { userMs: number; systemMs: number } {
  const d = process.cpuUsage(start);
  return { userMs: Math.round(d.user / 1000), systemMs: Math.round(d.system / 1000) };
}

interface Part {
  entry: Pick<PartitionEntry, 'number' | 'start' | 'size'> & { uuid?: string };
  fsType: string;
  fsUuid?: string;
  label?: string;
}

/** The filesystems on a disk (a filesystem on the whole device counts as partition 0). */
async function readableFilesystems(device: string): Promise<{ parts: Part[]; skipped: string[] }> {
  const table = await readPartitionTable(device);
  const entries = table ? table.partitions : [{ number: 0, start: 0, size: await deviceSize(device) }];
  const parts: Part[] = [];
  const skipped: string[] = [];
  for (const p of entries) {
    const fs = await probePartitionFilesystem(device, p as PartitionEntry);
    if (fs.type && READABLE_FS.has(fs.type)) parts.push({ entry: p, fsType: fs.type, fsUuid: fs.uuid, label: fs.label });
    else skipped.push(`partition ${p.number}: ${fs.type ?? 'no filesystem'}`);
  }
  return { parts, skipped };
}

/** Mounts each filesystem read-only (one that refuses is skipped), runs fn with the views, unmounts all. */
async function withViews<T>(
  device: string,
  parts: Part[],
  notes: string[],
  fn: (views: Array<FsView & { dir: string }>) => Promise<T>,
): Promise<T> {
  const views: Array<FsView & { dir: string }> = [];
  const step = async (i: number): Promise<T> => {
    if (i === parts.length) return fn(views);
    const p = parts[i]!;
    let entered = false;
    try {
      return await withPartitionDevice(device, p.entry, (dev) =>
        withMount(dev, readOnlyMountOptions(p.fsType), async (dir) => {
          entered = true;
          const where = { number: p.entry.number, fsType: p.fsType, fsUuid: p.fsUuid, label: p.label, partUuid: p.entry.uuid };
          views.push(mountedView(dir, where));
          return step(i + 1);
        }),
      );
    } catch (err) {
      if (entered) throw err;
      // This filesystem could not be mounted (e.g. no vfat in this kernel): go on without it.
      const msg = `partition ${p.entry.number} (${p.fsType}) could not be mounted read-only: ${(err as Error).message.split('\n')[0]}`;
      log.warn({ device }, msg);
      notes.push(msg);
      return step(i + 1);
    }
  };
  return step(0);
}

/**
 * Finds the deployed OS's kernel on `device` and copies kernel and initrd
 * (several initrds concatenated, as the kernel accepts) into a fresh staging
 * directory. Every filesystem is unmounted again when this returns or throws.
 * The caller owns the staging directory (removeStaging).
 */
export async function stageBootTarget(device: string, opts: FindOptions): Promise<Staged> {
  const { parts, skipped } = await readableFilesystems(device);
  const mountNotes: string[] = [];
  if (!parts.length) {
    throw new KexecError(
      `no kernel found on the deployed disk ${device}: it holds no Linux or EFI filesystem (${skipped.join(', ') || 'no partitions'})`,
    );
  }
  const dir = await mkdtemp(join(await stagingBase(), 'kexec-'));
  try {
    const t0 = Date.now();
    const cpu0 = process.cpuUsage();
    return await withViews(device, parts, mountNotes, async (views) => {
      const tMounted = Date.now();
      const target = await findBootTarget(views, opts).catch((err) => {
        if (err instanceof KexecError && mountNotes.length) err.message += `; ${mountNotes.join('; ')}`;
        throw err;
      });
      target.notes.push(...mountNotes);
      const tFound = Date.now();
      const viewOf = (ref: FileRef) => views.find((v) => v.number === ref.partition)!;
      const kernelPath = join(dir, 'kernel');
      const tK = Date.now();
      const k = await copyFrom(viewOf(target.kernel), target.kernel, kernelPath, false);
      const kernelCopyMs = Date.now() - tK;
      if (k.size === 0) throw new KexecError(`kernel ${target.kernel.path} on partition ${k.partition} is empty`);
      const head = Buffer.alloc(64 * 1024); // the bzImage version string sits past 16 KiB
      const fh = await open(kernelPath, 'r');
      let bytesRead: number;
      try {
        ({ bytesRead } = await fh.read(head, 0, head.length, 0));
      } finally {
        await fh.close();
      }
      const info = kernelInfo(head.subarray(0, bytesRead));
      if (!info) {
        throw new KexecError(
          `${target.kernel.path} on partition ${k.partition} (named by ${target.source}) is not a kernel image kexec can load ` +
            '(no bzImage, arm64 Image, PE/EFI or ELF header)',
        );
      }
      const initrds: StagedFile[] = [];
      const initrdPath = target.initrds.length ? join(dir, 'initrd') : undefined;
      for (const [i, ref] of target.initrds.entries()) initrds.push(await copyFrom(viewOf(ref), ref, initrdPath!, i > 0));
      log.info(
        {
          device,
          method: target.method,
          mountMs: tMounted - t0,
          findMs: tFound - tMounted,
          totalMs: Date.now() - t0,
          // The agent's own CPU time meanwhile: system time far above the
          // copy's size means page allocation is slow (see docs/kexec.md, TCG).
          ...cpuSince(cpu0),
          kernelCopyMs,
          kernelBytes: k.size,
          initrdBytes: initrds.reduce((n, f) => n + f.size, 0),
        },
        'deployed kernel staged',
      );
      return {
        target,
        dir,
        kernelPath,
        initrdPath,
        kernel: { ...k, format: info.format, ...(info.version ? { version: info.version } : {}) },
        initrds,
        initrdSize: initrdPath ? (await stat(initrdPath)).size : undefined,
      };
    });
  } catch (err) {
    await removeStaging(dir);
    throw err;
  }
}

export async function removeStaging(dir: string): Promise<void> {
  await rm(dir, { recursive: true, force: true }).catch((err) =>
    log.warn({ dir, err: String(err) }, 'could not remove the kexec staging directory'),
  );
}
