import { constants, lstat, mkdir, open, readdir, readlink } from 'node:fs/promises';
import { join } from 'node:path';

// Paths inside a mounted deployed image, seen as the image itself sees them.
// The image is someone else's data: an absolute symlink in it (etc/default/grub
// -> /etc/passwd) means the image's /etc/passwd, never the agent's, and `..`
// stops at the image's root. Every read, write, directory and mount target
// under a mounted image goes through here (the kexec code's read-only FsView
// uses the same resolver), so nothing the agent does as root follows a link
// out of the image. Writes also refuse anything but a regular file at the
// end (a device node or FIFO in the image is not a config file).

export type NodeKind = 'file' | 'dir' | { link: string };

/** What the resolver needs: lstat of an in-image path whose parents hold no symlinks. */
export interface LinkView {
  /** What is at `path` without following a final symlink, or null (missing, or neither file, dir nor link). */
  lstat(path: string): Promise<NodeKind | null>;
}

export class ImagePathError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ImagePathError';
  }
}

const MAX_LINKS = 40;

/**
 * Resolves symlinks as if the view's root were `/`: absolute links start again
 * at that root, `..` never climbs above it. Returns the in-image path with no
 * symlink left in it, or null when something is missing, loops or a file is
 * used as a directory.
 */
export async function resolveInRoot(view: LinkView, path: string): Promise<string | null> {
  let pending = path.split('/').filter(Boolean);
  const cur: string[] = [];
  let hops = 0;
  while (pending.length) {
    const part = pending.shift()!;
    if (part === '.') continue;
    if (part === '..') {
      cur.pop();
      continue;
    }
    const here = '/' + [...cur, part].join('/');
    const kind = await view.lstat(here);
    if (kind === null) return null;
    if (typeof kind === 'object') {
      if (++hops > MAX_LINKS) return null;
      if (kind.link.startsWith('/')) cur.length = 0;
      pending = [...kind.link.split('/').filter(Boolean), ...pending];
      continue;
    }
    if (kind === 'file' && pending.length) return null;
    cur.push(part);
  }
  return '/' + cur.join('/');
}

/** The view of a directory where an image is mounted. */
function imageView(root: string): LinkView {
  return {
    async lstat(path) {
      try {
        const st = await lstat(join(root, path));
        if (st.isSymbolicLink()) return { link: await readlink(join(root, path)) };
        if (st.isDirectory()) return 'dir';
        return st.isFile() ? 'file' : null;
      } catch {
        return null;
      }
    },
  };
}

/** The in-image path `path` names once its symlinks are followed inside the image, or null. */
export function resolveInImage(root: string, path: string): Promise<string | null> {
  return resolveInRoot(imageView(root), path);
}

/** Whether something (file or directory) is at `path` inside the image. */
export async function existsInImage(root: string, path: string): Promise<boolean> {
  return (await resolveInImage(root, path)) !== null;
}

async function lstatOrNull(hostPath: string) {
  return lstat(hostPath).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return null;
    throw err;
  });
}

/**
 * Where a file that may not exist yet would be: its parent resolved in the
 * image, then the leaf (followed in the image when it is a symlink to an
 * existing file). A dangling link or a leaf that is not a regular file is refused.
 */
async function resolveFileForWrite(root: string, path: string): Promise<string> {
  const whole = await resolveInImage(root, path);
  if (whole !== null) {
    if ((await imageView(root).lstat(whole)) !== 'file') throw new ImagePathError(`${path} in the deployed image is not a regular file`);
    return whole;
  }
  const parts = path.split('/').filter(Boolean);
  const leaf = parts.pop();
  if (!leaf || leaf === '.' || leaf === '..') throw new ImagePathError(`${path} is not a file path`);
  const dir = await resolveInImage(root, '/' + parts.join('/'));
  if (dir === null || (await imageView(root).lstat(dir)) !== 'dir') {
    throw new ImagePathError(`the directory of ${path} is missing from the deployed image`);
  }
  const inImage = dir === '/' ? `/${leaf}` : `${dir}/${leaf}`;
  const st = await lstatOrNull(join(root, inImage));
  if (st !== null) {
    throw new ImagePathError(
      `${path} in the deployed image is ` +
        `${st.isSymbolicLink() ? 'a symlink to nothing inside the image' : 'not a regular file'}: not written`,
    );
  }
  return inImage;
}

const READ_FLAGS = constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK;
const WRITE_FLAGS = constants.O_WRONLY | constants.O_CREAT | constants.O_NOFOLLOW | constants.O_NONBLOCK;

/** Text of a regular file in the image (symlinks followed inside it), or null when there is none. */
export async function readImageFile(root: string, path: string, maxBytes = 1024 * 1024): Promise<string | null> {
  const real = await resolveInImage(root, path);
  if (real === null) return null;
  if ((await imageView(root).lstat(real)) !== 'file') return null;
  const fh = await open(join(root, real), READ_FLAGS);
  try {
    const st = await fh.stat();
    if (!st.isFile()) return null;
    if (st.size > maxBytes) throw new ImagePathError(`${path} in the deployed image is larger than ${maxBytes} bytes`);
    return await fh.readFile('utf8');
  } finally {
    await fh.close();
  }
}

/**
 * Replaces the content of a regular file in the image (created when absent);
 * returns the in-image path written, which differs from `path` when `path` is
 * a symlink inside the image.
 */
export async function writeImageFile(root: string, path: string, data: string): Promise<string> {
  const real = await resolveFileForWrite(root, path);
  const fh = await open(join(root, real), WRITE_FLAGS, 0o644);
  try {
    if (!(await fh.stat()).isFile()) throw new ImagePathError(`${path} in the deployed image is not a regular file: not written`);
    await fh.truncate(0);
    await fh.writeFile(data);
  } finally {
    await fh.close();
  }
  return real;
}

/** Names in a directory of the image (symlinks followed inside it); [] when there is no such directory. */
export async function listImageDir(root: string, path: string): Promise<string[]> {
  const real = await resolveInImage(root, path);
  if (real === null || (await imageView(root).lstat(real)) !== 'dir') return [];
  return readdir(join(root, real)).catch(() => []);
}

/** mkdir -p inside the image: existing parts followed inside it, missing ones created. Returns the in-image path. */
export async function mkdirInImage(root: string, path: string): Promise<string> {
  let cur = '/';
  for (const part of path.split('/').filter(Boolean)) {
    const next = cur === '/' ? `/${part}` : `${cur}/${part}`;
    let real = await resolveInImage(root, next);
    if (real === null) {
      if (part === '.' || part === '..' || (await lstatOrNull(join(root, next))) !== null) {
        throw new ImagePathError(`cannot create ${path} in the deployed image: ${next} is a symlink to nothing inside it`);
      }
      await mkdir(join(root, next));
      real = next;
    }
    if ((await imageView(root).lstat(real)) !== 'dir') {
      throw new ImagePathError(`cannot create ${path} in the deployed image: ${next} is not a directory`);
    }
    cur = real;
  }
  return cur;
}

/** Whether in-image path `inner` is `outer` or below it. */
export function isWithin(inner: string, outer: string): boolean {
  return outer === '/' || inner === outer || inner.startsWith(outer + '/');
}
