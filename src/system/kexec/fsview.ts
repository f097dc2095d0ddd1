import { lstat, readdir, readFile, readlink } from 'node:fs/promises';
import { join } from 'node:path';
import { resolveInRoot, type NodeKind } from '../image-root.ts';

// A read-only look into one deployed filesystem. Symlinks are followed
// inside that filesystem (an absolute link such as /boot/vmlinuz ->
// /boot/vmlinuz-6.1.0-18-amd64 means the deployed root's /boot, never the
// agent's own). find.ts works on this interface only, so the resolution
// logic runs the same against a mounted partition and an in-memory tree.
// The resolver itself is shared with every writer under a mounted image
// (src/system/image-root.ts).

export type { NodeKind };

export interface FsView {
  /** Partition number on the disk (0: a filesystem on the whole device). */
  number: number;
  fsType?: string;
  fsUuid?: string;
  label?: string;
  /** GPT partition GUID (lower case). */
  partUuid?: string;
  /** What is at `path` without following a final symlink, or null. */
  lstat(path: string): Promise<NodeKind | null>;
  /** Size in bytes of a regular file (no symlinks). */
  size(path: string): Promise<number>;
  readText(path: string): Promise<string>;
  list(path: string): Promise<string[]>;
}

/** Resolves symlinks inside the view; returns the final path, or null when something is missing or loops. */
export function resolveInView(view: FsView, path: string): Promise<string | null> {
  return resolveInRoot(view, path);
}

/** The regular file a path names (after symlinks), or null. */
export async function fileInView(view: FsView, path: string): Promise<string | null> {
  const real = await resolveInView(view, path);
  if (!real) return null;
  return (await view.lstat(real)) === 'file' ? real : null;
}

export async function readIfFile(view: FsView, path: string, maxBytes = 1024 * 1024): Promise<string | null> {
  const real = await fileInView(view, path);
  if (!real) return null;
  if ((await view.size(real)) > maxBytes) return null;
  return view.readText(real);
}

/** An FsView over a mounted directory. */
export function mountedView(dir: string, info: Omit<FsView, 'lstat' | 'size' | 'readText' | 'list'>): FsView & { dir: string } {
  const abs = (p: string) => join(dir, p);
  return {
    ...info,
    dir,
    async lstat(path) {
      try {
        const st = await lstat(abs(path));
        if (st.isSymbolicLink()) return { link: await readlink(abs(path)) };
        if (st.isDirectory()) return 'dir';
        return st.isFile() ? 'file' : null;
      } catch {
        return null;
      }
    },
    async size(path) {
      return (await lstat(abs(path))).size;
    },
    readText: (path) => readFile(abs(path), 'utf8'),
    async list(path) {
      const real = await resolveInView(this, path);
      if (!real) return [];
      return readdir(abs(real)).catch(() => []);
    },
  };
}

/** An FsView over an in-memory tree (unit tests): path -> content, or {link}. */
export function memoryView(
  info: Omit<FsView, 'lstat' | 'size' | 'readText' | 'list'>,
  tree: Record<string, string | { link: string }>,
): FsView {
  const norm = (p: string) => '/' + p.split('/').filter(Boolean).join('/');
  const entries = new Map(Object.entries(tree).map(([k, v]) => [norm(k), v]));
  const isDir = (p: string) => p === '/' || [...entries.keys()].some((k) => k.startsWith(p + '/'));
  return {
    ...info,
    async lstat(path) {
      const p = norm(path);
      const v = entries.get(p);
      if (v !== undefined) return typeof v === 'string' ? 'file' : { link: v.link };
      return isDir(p) ? 'dir' : null;
    },
    async size(path) {
      const v = entries.get(norm(path));
      if (typeof v !== 'string') throw new Error(`not a file: ${path}`);
      return Buffer.byteLength(v);
    },
    async readText(path) {
      const v = entries.get(norm(path));
      if (typeof v !== 'string') throw new Error(`not a file: ${path}`);
      return v;
    },
    async list(path) {
      const real = await resolveInView(this, path);
      if (!real) return [];
      const prefix = real === '/' ? '/' : real + '/';
      const names = new Set<string>();
      for (const k of entries.keys()) if (k.startsWith(prefix)) names.add(k.slice(prefix.length).split('/')[0]!);
      return [...names];
    },
  };
}
