import { readdir, rm } from 'node:fs/promises';
import { log } from '../../log.ts';
import { readTrimmed } from '../../hardware/sysfs.ts';

// IPA's erase_pstore: empty the kernel's persistent store (crash logs the
// previous tenant's kernel left in firmware-backed storage).

/** Mount point of the pstore filesystem from /proc/mounts text, if mounted. */
export function pstoreMountPoint(mounts: string): string | null {
  for (const line of mounts.split('\n')) {
    const m = /^pstore (\S+) pstore/.exec(line);
    if (m) return m[1]!;
  }
  return null;
}

/** Removes every entry under the pstore mount; returns what was removed. */
export async function erasePstore(mounts = readTrimmed('/proc/mounts') ?? ''): Promise<string[]> {
  const dir = pstoreMountPoint(mounts);
  if (!dir) {
    log.debug('no pstore found');
    return [];
  }
  log.info({ dir }, 'cleaning up pstore');
  const removed: string[] = [];
  for (const entry of await readdir(dir)) {
    await rm(`${dir}/${entry}`, { recursive: true, force: true });
    removed.push(entry);
  }
  return removed;
}
