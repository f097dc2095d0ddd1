import { describe, expect, it } from 'vitest';
import { findBootTarget, KexecError } from '../../src/system/kexec/find.ts';
import { memoryView, resolveInView } from '../../src/system/kexec/fsview.ts';

// The resolution logic over in-memory filesystems: which partition and which
// file a boot configuration means, the way the deployed boot loader would.

const ROOT = '11111111-2222-4333-8444-555555555555';
const BOOT = '66666666-7777-4888-9999-aaaaaaaaaaaa';
const OS_RELEASE = 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nID=debian\n';

describe('symlinks inside a view', () => {
  it('absolute links resolve inside the deployed filesystem, relative ones from their directory; loops fail', async () => {
    const v = memoryView({ number: 1 }, {
      '/boot/vmlinuz-6.1.0-18-amd64': 'K',
      '/boot/vmlinuz': { link: 'vmlinuz-6.1.0-18-amd64' },
      '/vmlinuz': { link: '/boot/vmlinuz' },
      '/loop-a': { link: 'loop-b' },
      '/loop-b': { link: 'loop-a' },
      '/escape': { link: '../../../../boot/vmlinuz' },
    });
    expect(await resolveInView(v, '/vmlinuz')).toBe('/boot/vmlinuz-6.1.0-18-amd64');
    expect(await resolveInView(v, '/boot/vmlinuz')).toBe('/boot/vmlinuz-6.1.0-18-amd64');
    expect(await resolveInView(v, '/escape')).toBe('/boot/vmlinuz-6.1.0-18-amd64');
    expect(await resolveInView(v, '/loop-a')).toBeNull();
    expect(await resolveInView(v, '/missing')).toBeNull();
  });
});

describe('findBootTarget', () => {
  it('Debian whole-disk image, /boot on root: grub.cfg default entry, kernel and initrd on the root partition', async () => {
    const cfg = `set default="0"\nmenuentry 'Debian GNU/Linux' {\n\tsearch --no-floppy --fs-uuid --set=root ${ROOT}\n\tlinux\t/boot/vmlinuz-6.1.0-18-amd64 root=UUID=${ROOT} ro quiet\n\tinitrd\t/boot/initrd.img-6.1.0-18-amd64\n}\n`;
    const esp = memoryView({ number: 15, fsType: 'vfat', fsUuid: 'ABCD-1234' }, { '/EFI/debian/grub.cfg': `search.fs_uuid ${ROOT} root hd0,gpt1\nset prefix=($root)'/boot/grub'\nconfigfile $prefix/grub.cfg\n` });
    const root = memoryView({ number: 1, fsType: 'ext4', fsUuid: ROOT }, {
      '/etc/os-release': OS_RELEASE,
      '/boot/grub/grub.cfg': cfg,
      '/boot/vmlinuz-6.1.0-18-amd64': 'KERNEL',
      '/boot/initrd.img-6.1.0-18-amd64': 'INITRD',
    });
    const t = await findBootTarget([esp, root], { kernelParams: ['console=ttyS0'] });
    expect(t).toMatchObject({
      method: 'grub',
      source: '/boot/grub/grub.cfg on partition 1',
      entry: 'Debian GNU/Linux',
      kernel: { partition: 1, path: '/boot/vmlinuz-6.1.0-18-amd64' },
      initrds: [{ partition: 1, path: '/boot/initrd.img-6.1.0-18-amd64' }],
      baseCmdline: `root=UUID=${ROOT} ro quiet`,
      cmdline: `root=UUID=${ROOT} ro quiet console=ttyS0`,
    });
  });

  it('separate /boot: grub.cfg on the boot partition, paths relative to it (search --fs-uuid)', async () => {
    const root = memoryView({ number: 2, fsType: 'ext4', fsUuid: ROOT }, { '/etc/os-release': OS_RELEASE, '/etc/fstab': `UUID=${ROOT} / ext4 defaults 0 1\nUUID=${BOOT} /boot ext4 defaults 0 2\n` });
    const boot = memoryView({ number: 1, fsType: 'ext4', fsUuid: BOOT }, {
      '/grub/grub.cfg': `set default=0\nmenuentry 'Debian' {\n  search --no-floppy --fs-uuid --set=root ${BOOT}\n  linux /vmlinuz-6.1.0-18-amd64 root=UUID=${ROOT} ro\n  initrd /initrd.img-6.1.0-18-amd64\n}\n`,
      '/vmlinuz-6.1.0-18-amd64': 'K',
      '/initrd.img-6.1.0-18-amd64': 'I',
    });
    const t = await findBootTarget([boot, root]);
    expect(t.method).toBe('grub');
    expect(t.kernel).toEqual({ partition: 1, path: '/vmlinuz-6.1.0-18-amd64' });
    expect(t.initrds).toEqual([{ partition: 1, path: '/initrd.img-6.1.0-18-amd64' }]);
  });

  it('grub.cfg naming a kernel that is not there falls through to the /boot/vmlinuz links, and says so', async () => {
    const root = memoryView({ number: 1, fsType: 'ext4', fsUuid: ROOT }, {
      '/etc/os-release': OS_RELEASE,
      '/etc/fstab': `LABEL=root / ext4 defaults 0 1\n`,
      '/etc/default/grub': 'GRUB_CMDLINE_LINUX_DEFAULT="quiet"\nGRUB_CMDLINE_LINUX="console=ttyS0"\n',
      '/boot/grub/grub.cfg': `menuentry 'old' {\n linux /boot/vmlinuz-5.10.0-1-amd64 root=UUID=${ROOT} ro\n}\n`,
      '/boot/vmlinuz-6.1.0-18-amd64': 'K',
      '/boot/initrd.img-6.1.0-18-amd64': 'I',
      '/boot/vmlinuz': { link: 'vmlinuz-6.1.0-18-amd64' },
      '/boot/initrd.img': { link: '/boot/initrd.img-6.1.0-18-amd64' },
    });
    const t = await findBootTarget([root]);
    expect(t.method).toBe('symlinks');
    expect(t.kernel).toEqual({ partition: 1, path: '/boot/vmlinuz-6.1.0-18-amd64', named: '/boot/vmlinuz' });
    expect(t.initrds[0]!.path).toBe('/boot/initrd.img-6.1.0-18-amd64');
    expect(t.cmdline).toBe('root=LABEL=root ro console=ttyS0 quiet');
    expect(t.notes.join(' ')).toMatch(/vmlinuz-5\.10\.0-1-amd64, which is not on partition 1/);
  });

  it('no links: the newest versioned kernel and its initrd; root= from the filesystem UUID when there is no fstab', async () => {
    const root = memoryView({ number: 3, fsType: 'xfs', fsUuid: ROOT }, {
      '/etc/os-release': OS_RELEASE,
      '/boot/vmlinuz-5.14.0-70.el9.x86_64': 'K1',
      '/boot/initramfs-5.14.0-70.el9.x86_64.img': 'I1',
      '/boot/vmlinuz-5.14.0-362.el9.x86_64': 'K2',
      '/boot/initramfs-5.14.0-362.el9.x86_64.img': 'I2',
    });
    const t = await findBootTarget([root]);
    expect(t.kernel.path).toBe('/boot/vmlinuz-5.14.0-362.el9.x86_64');
    expect(t.initrds[0]!.path).toBe('/boot/initramfs-5.14.0-362.el9.x86_64.img');
    expect(t.cmdline).toBe(`root=UUID=${ROOT} ro`);
  });

  it('Fedora: grub.cfg says blscfg; the BLS entry saved in grubenv wins, $kernelopts expanded', async () => {
    const boot = memoryView({ number: 2, fsType: 'ext4', fsUuid: BOOT }, {
      '/grub2/grub.cfg': 'set default="${saved_entry}"\ninsmod blscfg\nblscfg\n',
      '/grub2/grubenv': `# GRUB Environment Block\nsaved_entry=abc-6.5.6\nkernelopts=root=UUID=${ROOT} ro rhgb quiet\n`,
      '/loader/entries/abc-6.5.6.conf': 'title Fedora (6.5.6)\nversion 6.5.6\nlinux /vmlinuz-6.5.6\ninitrd /initramfs-6.5.6.img\noptions $kernelopts\n',
      '/loader/entries/abc-6.7.1.conf': 'title Fedora (6.7.1)\nversion 6.7.1\nlinux /vmlinuz-6.7.1\ninitrd /initramfs-6.7.1.img\noptions $kernelopts\n',
      '/vmlinuz-6.5.6': 'K',
      '/initramfs-6.5.6.img': 'I',
      '/vmlinuz-6.7.1': 'K',
      '/initramfs-6.7.1.img': 'I',
    });
    const root = memoryView({ number: 3, fsType: 'btrfs', fsUuid: ROOT }, { '/etc/os-release': 'ID=fedora\n' });
    const t = await findBootTarget([root, boot]);
    expect(t.method).toBe('bls');
    expect(t.entry).toBe('Fedora (6.5.6)');
    expect(t.kernel).toEqual({ partition: 2, path: '/vmlinuz-6.5.6' });
    expect(t.cmdline).toBe(`root=UUID=${ROOT} ro rhgb quiet`);
  });

  it('systemd-boot style BLS on the ESP without grub.cfg; no root= in options gets one from fstab', async () => {
    const esp = memoryView({ number: 1, fsType: 'vfat', fsUuid: 'AAAA-BBBB' }, {
      '/loader/entries/debian-6.1.conf': 'title Debian\nversion 6.1.0-18-amd64\nlinux /debian/6.1/linux\ninitrd /debian/6.1/initrd.img-6.1.0-18-amd64\noptions quiet\n',
      '/debian/6.1/linux': 'K',
      '/debian/6.1/initrd.img-6.1.0-18-amd64': 'I',
    });
    const root = memoryView({ number: 2, fsType: 'ext4', fsUuid: ROOT }, { '/etc/os-release': OS_RELEASE, '/etc/fstab': `UUID=${ROOT} / ext4 defaults 0 1\n` });
    const t = await findBootTarget([esp, root]);
    expect(t.method).toBe('bls');
    expect(t.kernel).toEqual({ partition: 1, path: '/debian/6.1/linux' });
    expect(t.cmdline).toBe(`root=UUID=${ROOT} quiet`);
    expect(t.notes.join(' ')).toMatch(/added root=UUID/);
  });

  it('partition images: the root named by its UUID is looked at first', async () => {
    const mk = (n: number, uuid: string, version: string) =>
      memoryView({ number: n, fsType: 'ext4', fsUuid: uuid }, { '/etc/os-release': OS_RELEASE, [`/boot/vmlinuz-${version}`]: 'K' });
    const t = await findBootTarget([mk(1, ROOT, '1.0'), mk(2, BOOT, '2.0')], { rootUuid: BOOT });
    expect(t.kernel).toEqual({ partition: 2, path: '/boot/vmlinuz-2.0' });
    expect(t.cmdline).toBe(`root=UUID=${BOOT} ro`);
  });

  it('no kernel anywhere: KexecError naming what was looked at', async () => {
    const root = memoryView({ number: 1, fsType: 'ext4', fsUuid: ROOT }, { '/etc/os-release': OS_RELEASE, '/boot/grub/grub.cfg': 'set default=0\n' });
    const err = await findBootTarget([root]).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(KexecError);
    expect((err as Error).message).toMatch(/no kernel found on the deployed disk/);
    expect((err as Error).message).toMatch(/no menu entry with a Linux kernel/);
    expect((err as Error).message).toMatch(/no \/boot\/vmlinuz link and no \/boot\/vmlinuz-\* kernel/);
    await expect(findBootTarget([])).rejects.toThrow(/no kernel found/);
  });
});
