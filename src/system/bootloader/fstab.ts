import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

// A partition image does not know the UUID of the ESP we created for it, so
// (like IPA's _append_uefi_to_fstab) we tell its fstab where /boot/efi is;
// otherwise grub/kernel updates in the deployed OS would miss the ESP.

/** fstab content with a /boot/efi line added, unless one is there already. */
export function withEspLine(fstab: string, espUuid: string): string {
  const hasBootEfi = fstab
    .split('\n')
    .some((l) => !l.trim().startsWith('#') && l.trim().split(/\s+/)[1] === '/boot/efi');
  if (hasBootEfi) return fstab;
  const sep = fstab === '' || fstab.endsWith('\n') ? '' : '\n';
  return `${fstab}${sep}UUID=${espUuid}\t/boot/efi\tvfat\tumask=0077\t0\t1\n`;
}

/** Adds the ESP to etc/fstab of a mounted root; returns whether the file changed. */
export async function ensureEspInFstab(root: string, espUuid: string): Promise<boolean> {
  const path = join(root, 'etc/fstab');
  const current = await readFile(path, 'utf8').catch(() => '');
  const next = withEspLine(current, espUuid);
  if (next === current) return false;
  await writeFile(path, next);
  return true;
}
