import { fileInView, readIfFile, type FsView } from './fsview.ts';
import {
  blsToBootEntry,
  chooseBlsEntry,
  compareVersions,
  composeCmdline,
  defaultGrubCmdline,
  grubDefaultEntry,
  grubToBootEntry,
  parseBlsEntry,
  parseFstab,
  parseGrubCfg,
  parseGrubenv,
  rootArgument,
  type BootEntry,
} from './parse.ts';

// Which kernel, initrd and command line the deployed OS boots, found the way
// its boot loader would: grub.cfg's default entry (BLS entries when grub.cfg
// says blscfg, or when there is no grub.cfg, as with systemd-boot), else the
// Debian-style /boot/vmlinuz + /boot/initrd.img links (or the newest
// versioned kernel) with root= from the deployed fstab.

export class KexecError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'KexecError';
  }
}

export interface FileRef {
  partition: number;
  /** Path inside that partition's filesystem, symlinks resolved. */
  path: string;
  /** The path as the boot configuration names it, when it differs. */
  named?: string;
}

export interface BootTarget {
  method: 'grub' | 'bls' | 'symlinks';
  /** Where the entry came from, e.g. "/boot/grub/grub.cfg on partition 1". */
  source: string;
  entry?: string;
  kernel: FileRef;
  /** Concatenated in this order into the one initrd kexec takes (microcode first). */
  initrds: FileRef[];
  /** The command line the entry boots with, before custom parameters. */
  baseCmdline: string;
  /** With the custom kernel parameters added. */
  cmdline: string;
  /** What was looked at and skipped, for the result and for errors. */
  notes: string[];
}

export interface FindOptions {
  /** Partition images: the root filesystem's UUID (tried first). */
  rootUuid?: string;
  kernelParams?: readonly string[];
}

const GRUB_CFGS = ['/boot/grub/grub.cfg', '/boot/grub2/grub.cfg', '/grub/grub.cfg', '/grub2/grub.cfg'];
const BLS_DIRS = ['/loader/entries', '/boot/loader/entries'];

const where = (v: FsView, path: string) => `${path} on partition ${v.number}`;

function byFsRef(views: FsView[], spec: string): FsView | undefined {
  const m = /^(UUID|PARTUUID|LABEL)=["']?([^"']+)["']?$/.exec(spec);
  if (!m) return undefined;
  const val = m[2]!.toLowerCase();
  return views.find((v) =>
    m[1] === 'UUID' ? v.fsUuid?.toLowerCase() === val : m[1] === 'PARTUUID' ? v.partUuid === val : v.label?.toLowerCase() === val,
  );
}

/** A path named by a boot entry, in the view it should live in; BLS/GRUB paths may or may not carry /boot. */
async function locate(view: FsView, named: string, alsoUnderBoot: boolean): Promise<FileRef | null> {
  const candidates = [named, ...(alsoUnderBoot && !named.startsWith('/boot/') ? [`/boot${named}`] : [])];
  for (const c of candidates) {
    const real = await fileInView(view, c);
    if (real) return { partition: view.number, path: real, ...(real !== named ? { named } : {}) };
  }
  return null;
}

async function grubenvNear(view: FsView, cfgPath: string): Promise<Record<string, string>> {
  const text = await readIfFile(view, cfgPath.replace(/grub\.cfg$/, 'grubenv'));
  return text ? parseGrubenv(text) : {};
}

async function rootView(views: FsView[], opts: FindOptions): Promise<FsView | undefined> {
  if (opts.rootUuid) {
    const hit = views.find((v) => v.fsUuid?.toLowerCase() === opts.rootUuid!.toLowerCase() || v.partUuid === opts.rootUuid!.toLowerCase());
    if (hit) return hit;
  }
  for (const v of views) if (await fileInView(v, '/etc/os-release')) return v;
  return undefined;
}

/** root= for entries that carry none (and for the symlink method). */
async function rootArgFor(views: FsView[], opts: FindOptions): Promise<string | undefined> {
  const root = await rootView(views, opts);
  if (!root) return undefined;
  return rootArgument((await readIfFile(root, '/etc/fstab')) ?? undefined, root.fsUuid);
}

async function finish(
  views: FsView[],
  opts: FindOptions,
  t: Omit<BootTarget, 'cmdline' | 'baseCmdline'> & { args: string },
): Promise<BootTarget> {
  let base = t.args;
  if (!/(^|\s)root=/.test(base)) {
    const root = await rootArgFor(views, opts);
    if (root) {
      base = `${root} ${base}`.trim();
      t.notes.push(`the entry has no root=: added ${root} from the deployed root`);
    }
  }
  const { args: _args, ...rest } = t;
  return { ...rest, baseCmdline: base, cmdline: composeCmdline(base, opts.kernelParams ?? []) };
}

async function fromEntry(
  views: FsView[],
  opts: FindOptions,
  view: FsView,
  e: BootEntry,
  method: 'grub' | 'bls',
  source: string,
  notes: string[],
  alsoUnderBoot: boolean,
): Promise<BootTarget | null> {
  let home = view;
  if (e.rootFsUuid) {
    const hit = views.find((v) => v.fsUuid?.toLowerCase() === e.rootFsUuid!.toLowerCase());
    if (hit) home = hit;
    else {
      notes.push(
        `${source}: entry '${e.title}' searches for filesystem ${e.rootFsUuid}, which is not on this disk; ` +
          `looking on partition ${view.number}`,
      );
    }
  }
  const kernel = await locate(home, e.kernel, alsoUnderBoot);
  if (!kernel) {
    notes.push(`${source}: entry '${e.title ?? e.id}' names kernel ${e.kernel}, which is not on partition ${home.number}`);
    return null;
  }
  const initrds: FileRef[] = [];
  for (const i of e.initrds) {
    const ref = await locate(home, i, alsoUnderBoot);
    if (!ref) {
      notes.push(`${source}: entry '${e.title ?? e.id}' names initrd ${i}, which is not on partition ${home.number}`);
      return null;
    }
    initrds.push(ref);
  }
  return finish(views, opts, { method, source, entry: e.title ?? e.id, kernel, initrds, args: e.args, notes });
}

async function blsEntriesOf(view: FsView): Promise<Array<{ dir: string; entries: ReturnType<typeof parseBlsEntry>[] }>> {
  const out = [];
  for (const dir of BLS_DIRS) {
    const names = (await view.list(dir)).filter((n) => n.endsWith('.conf')).sort();
    const entries = [];
    for (const n of names) {
      const text = await readIfFile(view, `${dir}/${n}`);
      if (text !== null) entries.push(parseBlsEntry(text, n));
    }
    if (entries.length) out.push({ dir, entries });
  }
  return out;
}

async function anyGrubenv(views: FsView[]): Promise<Record<string, string>> {
  for (const v of views) {
    for (const p of ['/boot/grub2/grubenv', '/grub2/grubenv', '/boot/grub/grubenv', '/grub/grubenv']) {
      const text = await readIfFile(v, p);
      if (text) return parseGrubenv(text);
    }
  }
  return {};
}

async function tryBls(views: FsView[], opts: FindOptions, notes: string[], env?: Record<string, string>): Promise<BootTarget | null> {
  const grubenv = env ?? (await anyGrubenv(views));
  for (const v of views) {
    for (const { dir, entries } of await blsEntriesOf(v)) {
      const chosen = chooseBlsEntry(entries, grubenv.saved_entry);
      if (!chosen) {
        notes.push(`${where(v, dir)}: no entry with a Linux kernel`);
        continue;
      }
      const entry = blsToBootEntry(chosen, grubenv);
      const t = await fromEntry(views, opts, v, entry, 'bls', where(v, `${dir}/${chosen.id}.conf`), notes, dir.startsWith('/boot/'));
      if (t) return t;
    }
  }
  return null;
}

async function tryGrub(views: FsView[], opts: FindOptions, notes: string[]): Promise<BootTarget | null> {
  for (const v of views) {
    const efi = (await v.list('/EFI')).map((d) => `/EFI/${d}/grub.cfg`);
    for (const path of [...GRUB_CFGS, ...efi]) {
      const text = await readIfFile(v, path);
      if (text === null) continue;
      const cfg = parseGrubCfg(text);
      const env = await grubenvNear(v, path);
      if (cfg.usesBlscfg) {
        const t = await tryBls(views, opts, notes, { ...(await anyGrubenv(views)), ...env });
        if (t) return t;
        notes.push(`${where(v, path)}: uses blscfg but no usable BLS entry was found`);
        continue;
      }
      const entry = grubDefaultEntry(cfg, env);
      if (!entry) {
        notes.push(`${where(v, path)}: no menu entry with a Linux kernel`);
        continue;
      }
      // Paths in grub.cfg are relative to the filesystem `search` set root to,
      // or to the one grub.cfg was read from (its /boot, when /boot is not separate).
      const t = await fromEntry(views, opts, v, grubToBootEntry(cfg, entry, env), 'grub', where(v, path), notes, false);
      if (t) return t;
    }
  }
  return null;
}

/** Newest versioned kernel in a directory of a view, with its initrd. */
async function newestKernel(view: FsView, dir: string): Promise<{ kernel: string; initrd?: string } | null> {
  const names = await view.list(dir);
  const versions = names
    .filter((n) => /^(vmlinuz|vmlinux|Image)-./.test(n))
    .map((n) => n.replace(/^(vmlinuz|vmlinux|Image)-/, ''))
    .sort((a, b) => compareVersions(b, a));
  const base = dir === '/' ? '' : dir;
  for (const ver of versions) {
    const kernel = names.map((n) => `${base}/${n}`).find((p) => /\/(vmlinuz|vmlinux|Image)-/.test(p) && p.endsWith(`-${ver}`));
    if (!kernel || !(await fileInView(view, kernel))) continue;
    const initrd = [`initrd.img-${ver}`, `initramfs-${ver}.img`, `initrd-${ver}`, `initrd-${ver}.img`].find((n) => names.includes(n));
    return { kernel, initrd: initrd ? `${base}/${initrd}` : undefined };
  }
  return null;
}

async function trySymlinks(views: FsView[], opts: FindOptions, notes: string[]): Promise<BootTarget | null> {
  const root = await rootView(views, opts);
  if (!root) {
    notes.push('no partition holds a Linux root filesystem (etc/os-release)');
    return null;
  }
  const fstab = (await readIfFile(root, '/etc/fstab')) ?? undefined;
  const bootLine = fstab ? parseFstab(fstab).find((e) => e.mountPoint === '/boot') : undefined;
  const bootView = bootLine ? byFsRef(views, bootLine.spec) : undefined;
  if (bootLine && !bootView) notes.push(`fstab mounts /boot from ${bootLine.spec}, which is not on this disk`);
  // [view, path prefix of its /boot]
  const places: Array<[FsView, string]> = [
    [root, '/boot'],
    ...(bootView && bootView !== root ? [[bootView, ''] as [FsView, string]] : []),
    [root, ''],
  ];
  let kernel: FileRef | null = null;
  let initrd: FileRef | null = null;
  for (const [v, boot] of places) {
    for (const [k, i] of [
      [`${boot}/vmlinuz`, `${boot}/initrd.img`],
      [`${boot}/vmlinux`, `${boot}/initrd.img`],
    ] as const) {
      kernel = await locate(v, k, false);
      if (kernel) {
        initrd = await locate(v, i, false);
        break;
      }
    }
    if (kernel) break;
    const newest = await newestKernel(v, boot || '/');
    if (newest) {
      kernel = await locate(v, newest.kernel, false);
      initrd = newest.initrd ? await locate(v, newest.initrd, false) : null;
      break;
    }
  }
  if (!kernel) {
    const nor = bootView && bootView !== root ? `; nor has the /boot partition ${bootView.number}` : '';
    notes.push(`partition ${root.number} (the deployed root) has no /boot/vmlinuz link and no /boot/vmlinuz-* kernel${nor}`);
    return null;
  }
  const rootArg = rootArgument(fstab, root.fsUuid);
  const defaults = await readIfFile(root, '/etc/default/grub');
  const args = [rootArg, 'ro', defaults ? defaultGrubCmdline(defaults) : ''].filter(Boolean).join(' ');
  const source = `${kernel.named ?? kernel.path} on partition ${kernel.partition}${fstab ? ', root= from /etc/fstab' : ''}`;
  return finish(views, opts, { method: 'symlinks', source, kernel, initrds: initrd ? [initrd] : [], args, notes });
}

/**
 * The deployed OS's boot target. Views of every filesystem on the deployed
 * disk; the root (partition images: opts.rootUuid) is looked at first.
 * Throws KexecError naming everything that was tried when nothing boots.
 */
export async function findBootTarget(views: FsView[], opts: FindOptions = {}): Promise<BootTarget> {
  const root = await rootView(views, opts);
  const ordered = root ? [root, ...views.filter((v) => v !== root)] : views;
  const notes: string[] = [];
  const target =
    (await tryGrub(ordered, opts, notes)) ?? (await tryBls(ordered, opts, notes)) ?? (await trySymlinks(ordered, opts, notes));
  if (target) return target;
  const looked = views.map((v) => `${v.number}${v.fsType ? ` (${v.fsType})` : ''}`).join(', ') || 'none';
  throw new KexecError(
    `no kernel found on the deployed disk (filesystems looked at: partition ${looked}): ` +
      (notes.join('; ') || 'no grub.cfg, BLS entry or /boot/vmlinuz'),
  );
}
