import { accessSync, constants, readFileSync, readdirSync, readlinkSync, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';

// Tiny, never-throwing readers for /sys and /dev: inventory code asks many
// optional questions and a missing file simply means "unknown".

/** File contents with surrounding whitespace removed, or null if unreadable. */
export function readTrimmed(path: string): string | null {
  try {
    return readFileSync(path, 'utf8').trim();
  } catch {
    return null;
  }
}

export function listDir(path: string): string[] {
  try {
    return readdirSync(path);
  } catch {
    return [];
  }
}

/** Absolute target of a symlink (relative links resolved against the link's directory). */
export function linkTarget(path: string): string | null {
  try {
    return resolve(dirname(path), readlinkSync(path));
  } catch {
    return null;
  }
}

/** True when a program is found on PATH (synchronous, for step descriptors built at import). */
export function onPath(program: string, pathEnv = process.env.PATH ?? ''): boolean {
  for (const dir of pathEnv.split(':').filter(Boolean)) {
    try {
      const file = `${dir}/${program}`;
      accessSync(file, constants.X_OK);
      if (statSync(file).isFile()) return true;
    } catch {
      // keep looking
    }
  }
  return false;
}
