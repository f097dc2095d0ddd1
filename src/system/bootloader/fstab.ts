import { readImageFile, writeImageFile } from '../image-root.ts';

// A partition image does not know the UUID of the ESP we created for it, so
// (like IPA's _append_uefi_to_fstab) we tell its fstab where /boot/efi is;
// otherwise grub/kernel updates in the deployed OS would miss the ESP.
// etc/fstab is read and written as the image sees it (image-root.ts): a
// symlink in the image never leads the write out of it.

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
  const current = (await readImageFile(root, '/etc/fstab')) ?? '';
  const next = withEspLine(current, espUuid);
  if (next === current) return false;
  await writeImageFile(root, '/etc/fstab', next);
  return true;
}
