import { chmod, mkdir, readFile, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { run } from '../../src/system/exec.ts';
import { Guard } from '../../src/system/safety.ts';
import { installBootloader, BootloaderError, EspNotFoundError } from '../../src/system/bootloader/index.ts';
import { EspFs } from '../../src/system/bootloader/esp.ts';
import { createPartitionImageLayout, makeFilesystem } from '../../src/system/partitions/layout.ts';
import { withPartitionDevice } from '../../src/system/partitions/device.ts';
import { probeFilesystemAt } from '../../src/system/partitions/probe.ts';
import { readPartitionTable, type PartitionEntry } from '../../src/system/partitions/table.ts';
import { withMount } from '../../src/system/mounts.ts';
import { loopDiskPool, type LoopDisk } from '../helpers/loop-disk.ts';

const MiB = 1024 * 1024;
const pool = loopDiskPool();
afterEach(async () => {
  await pool.cleanup();
});
const loopDisk = (size: number): Promise<LoopDisk> => pool.disk(size);
/** Not a ramdisk: NVRAM must stay untouched, disk writes to the loop disk are allowed. */
const guardFor = (dev: string) => new Guard({ inRamdisk: false, allowedDevices: [dev], allowPowerActions: false });
const utf16 = (s: string) => Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from(s, 'utf16le')]);

async function ourMounts(): Promise<string[]> {
  const info = await readFile('/proc/self/mountinfo', 'utf8');
  return info.split('\n').filter((l) => l.includes('metal-mnt-'));
}

async function partition(dev: string, n: number): Promise<PartitionEntry> {
  return (await readPartitionTable(dev))!.partitions.find((p) => p.number === n)!;
}

/** A GPT disk as a whole disk image leaves it: ESP (vfat) + root. */
async function diskWithEsp(espType = 'EF00'): Promise<{ d: LoopDisk; esp: EspFs; g: Guard }> {
  const d = await loopDisk(128 * MiB);
  await run('sgdisk', ['-n', '1:2048:+40M', '-t', `1:${espType}`, '-n', '2:0:0', '-t', '2:8300', d.device]);
  const g = guardFor(d.device);
  const p1 = await partition(d.device, 1);
  await makeFilesystem(d.device, p1, 'vfat', 'ESP', g);
  return { d, esp: new EspFs(d.device, p1), g };
}

describe('installBootloader, UEFI (outside a ramdisk: NVRAM untouched)', () => {
  it('honours BOOTX64.CSV and creates the fallback loader', async () => {
    const { d, esp, g } = await diskWithEsp();
    await esp.writeFile('EFI/debian/shimx64.efi', Buffer.from('SHIM'), g);
    await esp.writeFile('EFI/debian/grubx64.efi', Buffer.from('GRUB'), g);
    await esp.writeFile('EFI/debian/mmx64.efi', Buffer.from('MOKMANAGER'), g);
    await esp.writeFile('EFI/debian/BOOTX64.CSV', utf16('shimx64.efi,Debian GNU/Linux,,This is the boot entry for debian\n'), g);

    const res = await installBootloader({ device: d.device, rootUuid: '0x12345678', targetBootMode: 'uefi' }, g);

    expect(res.targetBootMode).toBe('uefi');
    expect(res.efi!.espPartition).toBe(1);
    expect(res.efi!.loaders).toEqual([{ path: 'EFI/debian/shimx64.efi', label: 'Debian GNU/Linux', csv: 'EFI/debian/BOOTX64.CSV' }]);
    expect(res.efi!.entries).toEqual([
      {
        device: d.device,
        partition: 1,
        loader: '\\EFI\\debian\\shimx64.efi',
        label: 'Debian GNU/Linux',
        args: ['-v', '-c', '-d', d.device, '-p', '1', '-w', '-L', 'Debian GNU/Linux', '-l', '\\EFI\\debian\\shimx64.efi'],
        replaces: [],
        applied: false,
      },
    ]);
    expect(res.efi!.fallback).toEqual({
      path: 'EFI/BOOT/BOOTX64.EFI',
      created: true,
      copied: ['EFI/BOOT/BOOTX64.EFI', 'EFI/BOOT/grubx64.efi', 'EFI/BOOT/mmx64.efi'],
    });
    expect((await esp.readFile('EFI/BOOT/BOOTX64.EFI')).toString()).toBe('SHIM');
    expect((await esp.readFile('EFI/BOOT/grubx64.efi')).toString()).toBe('GRUB');
    // The filesystem is still a healthy FAT the firmware can read.
    await withPartitionDevice(d.device, esp.partition, (dev) => run('fsck.vfat', ['-n', dev]));

    const again = await installBootloader({ device: d.device, targetBootMode: 'uefi' }, g);
    expect(again.efi!.fallback).toEqual({ path: 'EFI/BOOT/BOOTX64.EFI', created: false, copied: [] });
  });

  it('without a CSV registers the distro shim, found by the recorded ESP UUID when the type is not ESP', async () => {
    const { d, esp, g } = await diskWithEsp('8300');
    await esp.writeFile('EFI/fedora/shimx64.efi', Buffer.from('SHIM'), g);
    await esp.writeFile('EFI/BOOT/BOOTX64.EFI', Buffer.from('OLD'), g);
    const uuid = (await probeFilesystemAt(d.device, esp.partition.start, esp.partition.size)).uuid!;
    await expect(installBootloader({ device: d.device, targetBootMode: 'uefi' }, g)).rejects.toBeInstanceOf(EspNotFoundError);

    const res = await installBootloader({ device: d.device, targetBootMode: 'uefi', efiSystemPartUuid: uuid }, g);
    expect(res.efi!.entries.map((e) => [e.label, e.loader, e.applied])).toEqual([['fedora', '\\EFI\\fedora\\shimx64.efi', false]]);
    expect(res.efi!.fallback.created).toBe(false);
    expect((await esp.readFile('EFI/BOOT/BOOTX64.EFI')).toString()).toBe('OLD');
  });

  it('fails clearly on an empty ESP of a whole disk image', async () => {
    const { d, g } = await diskWithEsp();
    const err = await installBootloader({ device: d.device, targetBootMode: 'uefi', rootUuid: '0xdeadbeef' }, g).catch((e: Error) => e);
    expect(err).toBeInstanceOf(BootloaderError);
    expect((err as Error).message).toMatch(/holds no boot loader/);
  });
});

/**
 * A tiny "deployed OS" on the root partition of a partition image layout:
 * static busybox as /bin/sh and fake grub tools that record what they were
 * asked to do and check what the chroot gives them (/dev nodes, /proc).
 */
async function deployFakeOs(d: LoopDisk, opts: { withGrub: boolean; grubInstallFails?: boolean }) {
  const g = guardFor(d.device);
  const layout = await createPartitionImageLayout(d.device, { bootMode: 'bios', rootMb: 64, swapMb: 8 }, g);
  const root = await partition(d.device, layout.root.number);
  await makeFilesystem(d.device, root, 'ext4', 'root', g);
  await withPartitionDevice(d.device, root, (dev) =>
    withMount(dev, {}, async (dir) => {
      for (const sub of ['bin', 'usr/sbin', 'etc/default', 'dev', 'proc', 'sys', 'run', 'var/log', 'boot']) {
        await mkdir(join(dir, sub), { recursive: true });
      }
      await writeFile(join(dir, 'bin/busybox'), await readFile('/usr/bin/busybox'));
      await chmod(join(dir, 'bin/busybox'), 0o755);
      for (const applet of ['sh', 'mkdir', 'cat']) await symlink('busybox', join(dir, 'bin', applet));
      await writeFile(join(dir, 'etc/os-release'), 'NAME="Fake"\nID=fakeos\n');
      await writeFile(join(dir, 'etc/default/grub'), 'GRUB_DEFAULT=0\nGRUB_CMDLINE_LINUX_DEFAULT="quiet"\n');
      if (opts.withGrub) {
        const install = [
          '#!/bin/sh',
          'echo "$@" > /var/log/grub-install.args',
          'for last; do :; done',
          '[ -b "$last" ] && echo block-device-visible >> /var/log/grub-install.args',
          opts.grubInstallFails ? 'echo "grub-install: error: will not proceed" >&2; exit 1' : 'exit 0',
        ];
        const mkconfig = [
          '#!/bin/sh',
          '. /etc/default/grub',
          '[ -r /proc/self/status ] && echo proc-ok > /var/log/mkconfig.proc',
          'echo "os-prober disabled: $GRUB_DISABLE_OS_PROBER" > /var/log/mkconfig.env',
          'mkdir -p /boot/grub',
          'echo "linux /vmlinuz root=UUID=x $GRUB_CMDLINE_LINUX_DEFAULT" > "$2"',
        ];
        await writeFile(join(dir, 'usr/sbin/grub-install'), install.join('\n') + '\n', { mode: 0o755 });
        await writeFile(join(dir, 'usr/sbin/grub-mkconfig'), mkconfig.join('\n') + '\n', { mode: 0o755 });
      }
    }),
  );
  const uuid = (await probeFilesystemAt(d.device, root.start, root.size)).uuid!;
  return { g, root, uuid };
}

async function readDeployed(d: LoopDisk, root: PartitionEntry, path: string): Promise<string> {
  return withPartitionDevice(d.device, root, (dev) => withMount(dev, { readOnly: true }, (dir) => readFile(join(dir, path), 'utf8')));
}

describe('installBootloader, BIOS (the deployed OS\'s grub in a chroot)', () => {
  it('runs grub-install on the disk and grub-mkconfig with the custom kernel parameters', async () => {
    const d = await loopDisk(128 * MiB);
    const { g, root, uuid } = await deployFakeOs(d, { withGrub: true });

    const res = await installBootloader(
      { device: d.device, rootUuid: uuid, targetBootMode: 'bios', customKernelParams: 'console=ttyS0,115200 nomodeset quiet' },
      g,
    );

    expect(res.bios).toEqual({
      rootPartition: root.number,
      grubInstall: ['/usr/sbin/grub-install', '--target=i386-pc', d.device],
      grubMkconfig: ['/usr/sbin/grub-mkconfig', '-o', '/boot/grub/grub.cfg'],
    });
    expect(res.kernelParams).toEqual({ params: ['console=ttyS0,115200', 'nomodeset', 'quiet'], files: ['/etc/default/grub'] });
    expect(await readDeployed(d, root, 'var/log/grub-install.args')).toBe(`--target=i386-pc ${d.device}\nblock-device-visible\n`);
    expect(await readDeployed(d, root, 'var/log/mkconfig.proc')).toBe('proc-ok\n');
    expect(await readDeployed(d, root, 'var/log/mkconfig.env')).toBe('os-prober disabled: true\n');
    expect(await readDeployed(d, root, 'boot/grub/grub.cfg')).toBe('linux /vmlinuz root=UUID=x quiet console=ttyS0,115200 nomodeset\n');
    expect(await readDeployed(d, root, 'etc/default/grub')).toBe(
      "GRUB_DEFAULT=0\nGRUB_CMDLINE_LINUX_DEFAULT='quiet console=ttyS0,115200 nomodeset'\n",
    );
    expect(await ourMounts()).toEqual([]);
  });

  it('says clearly when the image has no grub, and unmounts everything', async () => {
    const d = await loopDisk(128 * MiB);
    const { g, uuid } = await deployFakeOs(d, { withGrub: false });
    const err = await installBootloader({ device: d.device, rootUuid: uuid, targetBootMode: 'bios' }, g).catch((e: Error) => e);
    expect(err).toBeInstanceOf(BootloaderError);
    expect((err as Error).message).toMatch(/the deployed image has no GRUB/);
    expect(await ourMounts()).toEqual([]);
  });

  it('reports a failing grub-install and still unmounts everything', async () => {
    const d = await loopDisk(128 * MiB);
    const { g, uuid } = await deployFakeOs(d, { withGrub: true, grubInstallFails: true });
    await expect(installBootloader({ device: d.device, rootUuid: uuid, targetBootMode: 'bios' }, g)).rejects.toThrow(
      /grub-install: error: will not proceed/,
    );
    expect(await ourMounts()).toEqual([]);
  });

  it("refuses to run the image's grub when the conductor disabled it (enable_bios_bootloader_install=false); nothing ran", async () => {
    const d = await loopDisk(128 * MiB);
    const { g, root, uuid } = await deployFakeOs(d, { withGrub: true });
    const err = await installBootloader({ device: d.device, rootUuid: uuid, targetBootMode: 'bios', runDeployedTools: false }, g).catch((e: Error) => e);
    expect(err).toBeInstanceOf(BootloaderError);
    expect((err as Error).message).toMatch(/enable_bios_bootloader_install is false/);
    await expect(readDeployed(d, root, 'var/log/grub-install.args')).rejects.toThrow(/ENOENT/);
    expect(await ourMounts()).toEqual([]);
  });

  it('refuses an unknown root UUID and a disk the guard does not allow', async () => {
    const d = await loopDisk(128 * MiB);
    const { g, uuid } = await deployFakeOs(d, { withGrub: true });
    await expect(
      installBootloader({ device: d.device, rootUuid: '11111111-2222-3333-4444-555555555555', targetBootMode: 'bios' }, g),
    ).rejects.toThrow(/no partition with UUID/);
    const other = new Guard({ inRamdisk: false, allowedDevices: [], allowPowerActions: false });
    await expect(installBootloader({ device: d.device, rootUuid: uuid, targetBootMode: 'bios' }, other)).rejects.toThrow(/refusing to write/);
  });
});
