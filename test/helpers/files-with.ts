import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';

/**
 * Files under dir (recursively) whose text holds `needle`: how the tests find
 * what Ironic rendered for one node (its PXE/iPXE config names the node's UUID
 * or MAC) without depending on each release's file layout.
 */
export function filesWith(dir: string, needle: string): string[] {
  const out: string[] = [];
  for (const e of readdirSync(dir)) {
    const p = join(dir, e);
    const st = statSync(p, { throwIfNoEntry: false });
    if (!st) continue;
    if (st.isDirectory()) out.push(...filesWith(p, needle));
    else if (st.size < 1_000_000 && readFileSync(p, 'utf8').includes(needle)) out.push(p);
  }
  return out;
}
