import { describe, expect, it } from 'vitest';
import {
  chooseLoaderWithoutCsv,
  efiPath,
  findBootCsvs,
  loaderFromCsv,
  parseBootCsv,
} from '../../src/system/bootloader/efi-loaders.ts';
import { addToBlsEntry, addToDefaultGrub } from '../../src/system/bootloader/kernel-params.ts';
import { parseBootRecords, entryArgs } from '../../src/system/bootloader/efibootmgr.ts';
import { withEspLine } from '../../src/system/bootloader/fstab.ts';

const utf16 = (s: string, bom = true) => Buffer.concat([bom ? Buffer.from([0xff, 0xfe]) : Buffer.alloc(0), Buffer.from(s, 'utf16le')]);

describe('BOOTX64.CSV', () => {
  it('parses UTF-16LE with and without BOM, UTF-16BE with BOM', () => {
    const line = 'shimx64.efi,debian,,This is the boot entry for debian\n';
    const want = { file: 'shimx64.efi', label: 'debian', options: '', description: 'This is the boot entry for debian' };
    expect(parseBootCsv(utf16(line))).toEqual(want);
    expect(parseBootCsv(utf16(line, false))).toEqual(want);
    const be = Buffer.from(line, 'utf16le');
    be.swap16();
    expect(parseBootCsv(Buffer.concat([Buffer.from([0xfe, 0xff]), be]))).toEqual(want);
    expect(parseBootCsv(utf16('shimx64.efi,Red Hat Enterprise Linux,,This, has commas\r\n')).description).toBe('This, has commas');
  });

  it('refuses a CSV without loader or label', () => {
    expect(() => parseBootCsv(utf16('\n'))).toThrow(/malformed/);
    expect(() => parseBootCsv(utf16('shimx64.efi\n'))).toThrow(/malformed/);
  });

  it('resolves the loader next to the CSV, case-insensitively', () => {
    const files = ['EFI/ubuntu/BOOTX64.CSV', 'EFI/ubuntu/ShimX64.efi', 'EFI/BOOT/BOOTX64.EFI'];
    const [csv] = findBootCsvs(files);
    expect(csv).toBe('EFI/ubuntu/BOOTX64.CSV');
    expect(loaderFromCsv(csv!, { file: 'shimx64.efi', label: 'ubuntu', options: '', description: '' }, files)).toEqual({
      path: 'EFI/ubuntu/ShimX64.efi',
      label: 'ubuntu',
      csv: 'EFI/ubuntu/BOOTX64.CSV',
    });
    expect(findBootCsvs(['EFI/BOOT/BOOTX64.CSV', 'EFI/centos/BOOTX64.CSV'])).toEqual(['EFI/centos/BOOTX64.CSV', 'EFI/BOOT/BOOTX64.CSV']);
  });
});

describe('loader choice without CSV', () => {
  it('prefers a distro shim, then distro grub, then the well-known names', () => {
    expect(chooseLoaderWithoutCsv(['EFI/BOOT/BOOTX64.EFI', 'EFI/debian/grubx64.efi', 'EFI/debian/shimx64.efi'])).toEqual([
      { path: 'EFI/debian/shimx64.efi', label: 'debian' },
    ]);
    expect(chooseLoaderWithoutCsv(['EFI/BOOT/BOOTX64.EFI', 'EFI/arch/grubx64.efi'])).toEqual([{ path: 'EFI/arch/grubx64.efi', label: 'arch' }]);
    expect(chooseLoaderWithoutCsv(['EFI/BOOT/BOOTX64.EFI', 'EFI/BOOT/grubx64.efi'])).toEqual([{ path: 'EFI/BOOT/BOOTX64.EFI', label: 'ironic1' }]);
    expect(chooseLoaderWithoutCsv(['EFI/Microsoft/Boot/bootmgfw.efi', 'readme.txt'])).toEqual([]);
  });

  it('writes EFI paths with backslashes', () => {
    expect(efiPath('EFI/debian/shimx64.efi')).toBe('\\EFI\\debian\\shimx64.efi');
  });
});

describe('kernel parameters', () => {
  it('appends to GRUB_CMDLINE_LINUX_DEFAULT without duplicates, keeping the rest of the file', () => {
    const before = '# comment\nGRUB_DEFAULT=0\nGRUB_CMDLINE_LINUX_DEFAULT="quiet splash"\nGRUB_CMDLINE_LINUX=""\n';
    expect(addToDefaultGrub(before, ['console=ttyS0,115200n8', 'quiet'])).toBe(
      '# comment\nGRUB_DEFAULT=0\nGRUB_CMDLINE_LINUX_DEFAULT=\'quiet splash console=ttyS0,115200n8\'\nGRUB_CMDLINE_LINUX=""\n',
    );
    expect(addToDefaultGrub("GRUB_CMDLINE_LINUX_DEFAULT='quiet'\n", ['a=1'])).toBe("GRUB_CMDLINE_LINUX_DEFAULT='quiet a=1'\n");
    expect(addToDefaultGrub('GRUB_TIMEOUT=5', ['a=1'])).toBe("GRUB_TIMEOUT=5\nGRUB_CMDLINE_LINUX_DEFAULT='a=1'\n");
  });

  it('appends to BLS options lines', () => {
    const entry = 'title Fedora\nlinux /vmlinuz\noptions root=UUID=abc ro\n';
    expect(addToBlsEntry(entry, ['nomodeset', 'ro'])).toBe('title Fedora\nlinux /vmlinuz\noptions root=UUID=abc ro nomodeset\n');
    expect(addToBlsEntry('title x\nlinux /v', ['a'])).toBe('title x\nlinux /v\noptions a\n');
  });
});

describe('efibootmgr', () => {
  it('parses boot records', () => {
    const text = [
      'BootCurrent: 0001',
      'BootOrder: 0001,0000',
      'Boot0000* UiApp\tFvVol(7cb8bdc9-f8eb-4f34-aaea-3ee4af6516a1)/FvFile(462caa21-7614-4503-836e-8ab6f4662331)',
      'Boot0001* debian\tHD(1,GPT,0b4c..,0x800,0x100000)/File(\\EFI\\debian\\shimx64.efi)',
      'Boot0002  ironic1  HD(1,GPT,..)/File(\\EFI\\BOOT\\BOOTX64.EFI)',
    ].join('\n');
    expect(parseBootRecords(text).map((r) => [r.num, r.label])).toEqual([
      ['0000', 'UiApp'],
      ['0001', 'debian'],
      ['0002', 'ironic1'],
    ]);
  });

  it('builds IPA\'s efibootmgr create arguments', () => {
    expect(entryArgs('/dev/sda', 1, '\\EFI\\debian\\shimx64.efi', 'debian')).toEqual([
      '-v', '-c', '-d', '/dev/sda', '-p', '1', '-w', '-L', 'debian', '-l', '\\EFI\\debian\\shimx64.efi',
    ]);
  });
});

describe('fstab', () => {
  it('adds the ESP once', () => {
    const fstab = 'UUID=abc / ext4 errors=remount-ro 0 1\n# /boot/efi was here\n';
    const once = withEspLine(fstab, 'ABCD-1234');
    expect(once).toBe(fstab + 'UUID=ABCD-1234\t/boot/efi\tvfat\tumask=0077\t0\t1\n');
    expect(withEspLine(once, 'FFFF-0000')).toBe(once);
    expect(withEspLine('', 'A-B')).toBe('UUID=A-B\t/boot/efi\tvfat\tumask=0077\t0\t1\n');
  });
});
