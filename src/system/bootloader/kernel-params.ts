import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

// Custom kernel parameters for the deployed OS: appended to
// GRUB_CMDLINE_LINUX_DEFAULT in etc/default/grub (grub.cfg is regenerated
// afterwards) and to the options line of BLS entries (Fedora/RHEL keep the
// command line there). Parameters already present are not added twice.

/** Splits a kernel command line, keeping quoted values together. */
export function splitParams(text: string): string[] {
  return text.match(/(?:[^\s"]+|"[^"]*")+/g) ?? [];
}

function appendMissing(existing: string, params: string[]): string {
  const have = new Set(splitParams(existing));
  const add = params.filter((p) => !have.has(p));
  return [existing.trim(), ...add].filter(Boolean).join(' ');
}

/** Returns etc/default/grub content with params added to GRUB_CMDLINE_LINUX_DEFAULT. */
export function addToDefaultGrub(content: string, params: string[]): string {
  const re = /^([ \t]*GRUB_CMDLINE_LINUX_DEFAULT=)(?:"([^"]*)"|'([^']*)'|(\S*))[ \t]*$/m;
  const m = re.exec(content);
  if (!m) {
    const sep = content === '' || content.endsWith('\n') ? '' : '\n';
    return `${content}${sep}GRUB_CMDLINE_LINUX_DEFAULT="${params.join(' ')}"\n`;
  }
  const current = m[2] ?? m[3] ?? m[4] ?? '';
  return content.replace(re, `${m[1]}"${appendMissing(current, params)}"`);
}

/** Returns a BLS entry with params added to its options line (or a new options line). */
export function addToBlsEntry(content: string, params: string[]): string {
  const re = /^options[ \t]+(.*)$/m;
  const m = re.exec(content);
  if (!m) return `${content.replace(/\n?$/, '\n')}options ${params.join(' ')}\n`;
  return content.replace(re, `options ${appendMissing(m[1]!, params)}`);
}

/** Applies params to the files of a mounted deployed root; returns the files changed. */
export async function applyKernelParams(root: string, params: string[]): Promise<string[]> {
  const changed: string[] = [];
  const defaultGrub = join(root, 'etc/default/grub');
  const current = await readFile(defaultGrub, 'utf8').catch(() => null);
  if (current !== null) {
    const next = addToDefaultGrub(current, params);
    if (next !== current) {
      await writeFile(defaultGrub, next);
      changed.push('/etc/default/grub');
    }
  }
  const blsDir = join(root, 'boot/loader/entries');
  const entries = await readdir(blsDir).catch(() => [] as string[]);
  for (const name of entries.filter((n) => n.endsWith('.conf'))) {
    const file = join(blsDir, name);
    const text = await readFile(file, 'utf8');
    const next = addToBlsEntry(text, params);
    if (next !== text) {
      await writeFile(file, next);
      changed.push(`/boot/loader/entries/${name}`);
    }
  }
  if (current === null && entries.length === 0) {
    throw new Error('cannot apply kernel parameters: the deployed OS has neither /etc/default/grub nor BLS entries');
  }
  return changed;
}
