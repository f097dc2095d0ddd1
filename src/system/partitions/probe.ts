import { run } from '../exec.ts';
import type { PartitionEntry } from './table.ts';

// Filesystem identities inside a partition, read straight from the whole
// disk at the partition's offset (blkid -p -O/-S), so no partition node or
// loop device is needed just to look.

export interface FilesystemInfo {
  type?: string;
  uuid?: string;
  label?: string;
}

/** Parses `blkid -o export` output into a key/value map. */
export function parseBlkidExport(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const eq = line.indexOf('=');
    if (eq > 0) out[line.slice(0, eq).trim()] = line.slice(eq + 1).trim();
  }
  return out;
}

export async function probeFilesystemAt(device: string, offset: number, size: number): Promise<FilesystemInfo> {
  // Exit code 2: no filesystem found, which is an answer, not an error.
  const r = await run('blkid', ['-p', '-O', String(offset), '-S', String(size), '-o', 'export', device], {
    okExitCodes: [2],
  });
  if (r.exitCode === 2) return {};
  const tags = parseBlkidExport(r.stdout);
  return { type: tags.TYPE, uuid: tags.UUID, label: tags.LABEL };
}

export function probePartitionFilesystem(device: string, part: PartitionEntry): Promise<FilesystemInfo> {
  return probeFilesystemAt(device, part.start, part.size);
}
