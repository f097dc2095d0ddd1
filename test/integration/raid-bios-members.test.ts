import { chmod, mkdir, readFile, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { installOnArrayMembers } from '../../src/system/bootloader/softraid.ts';
import { run } from '../../src/system/exec.ts';
import { withMount } from '../../src/system/mounts.ts';
import { makeFilesystem } from '../../src/system/partitions/layout.ts';
import { withPartitionDevice } from '../../src/system/partitions/device.ts';
import { readPartitionTable, type PartitionEntry } from '../../src/system/partitions/table.ts';
import { Guard } from '../../src/system/safety.ts';
import { loopDiskPool } from '../helpers/loop-disk.ts';

// install_bootloader's software RAID path under BIOS (issue 18): the deployed
// OS's grub-install runs once per member disk, in a chroot of the root found
// inside the array, then grub-mkconfig once. The "array" is a loop disk holding
// a whole-disk image (MBR + ext4 root) with a fake OS whose grub tools record
// their arguments; the members are two more loop disks. No md needed.

const MiB = 1024 * 1024;

describe("install_bootloader's software RAID path, BIOS", () => {
  const pool = loopDiskPool();
  afterAll(() => pool.cleanup());

  it('runs the deployed grub-install on every member disk, then grub-mkconfig', async () => {
    const array = await pool.disk(96 * MiB);
    const members = [await pool.disk(16 * MiB), await pool.disk(16 * MiB)];
    const guard = new Guard({ inRamdisk: false, allowedDevices: [array, ...members].map((d) => d.device), allowPowerActions: false });
    await run('sfdisk', [array.device], { input: 'label: dos\nstart=2048, type=83, bootable\n' });
    const root = (await readPartitionTable(array.device))!.partitions[0] as PartitionEntry;
    await makeFilesystem(array.device, root, 'ext4', 'root', guard);
    await withPartitionDevice(array.device, root, (dev) =>
      withMount(dev, {}, async (dir) => {
        for (const sub of ['bin', 'usr/sbin', 'etc/default', 'dev', 'proc', 'sys', 'run', 'var/log', 'boot']) await mkdir(join(dir, sub), { recursive: true });
        await writeFile(join(dir, 'bin/busybox'), await readFile('/usr/bin/busybox'));
        await chmod(join(dir, 'bin/busybox'), 0o755);
        for (const applet of ['sh', 'mkdir', 'cat']) await symlink('busybox', join(dir, 'bin', applet));
        await writeFile(join(dir, 'etc/os-release'), 'ID=fakeos\n');
        await writeFile(join(dir, 'etc/default/grub'), 'GRUB_DEFAULT=0\n');
        const install = ['#!/bin/sh', 'for last; do :; done', '[ -b "$last" ] && echo "$@ block" >> /var/log/grub-install.args', 'exit 0'];
        const mkconfig = ['#!/bin/sh', 'mkdir -p /boot/grub', 'echo made > "$2"', 'echo once >> /var/log/mkconfig.runs'];
        await writeFile(join(dir, 'usr/sbin/grub-install'), install.join('\n') + '\n', { mode: 0o755 });
        await writeFile(join(dir, 'usr/sbin/grub-mkconfig'), mkconfig.join('\n') + '\n', { mode: 0o755 });
      }),
    );

    const res = await installOnArrayMembers(array.device, members.map((m) => m.device), 'bios', { runDeployedTools: true }, guard);
    expect(res.members).toEqual(members.map((m) => ({ disk: m.device, grubInstall: ['/usr/sbin/grub-install', '--target=i386-pc', m.device] })));
    const read = (path: string) =>
      withPartitionDevice(array.device, root, (dev) => withMount(dev, { readOnly: true }, (dir) => readFile(join(dir, path), 'utf8')));
    // Each member was a block device inside the chroot when its grub-install ran.
    expect(await read('var/log/grub-install.args')).toBe(members.map((m) => `--target=i386-pc ${m.device} block\n`).join(''));
    expect(await read('var/log/mkconfig.runs')).toBe('once\n');

    // The conductor's enable_bios_bootloader_install=false: refused before anything runs.
    await expect(installOnArrayMembers(array.device, members.map((m) => m.device), 'bios', { runDeployedTools: false }, guard)).rejects.toThrow(/disabled/);
    expect(await read('var/log/mkconfig.runs')).toBe('once\n');
    // A member outside --allowed-devices: refused before anything runs.
    const stranger = await pool.disk(16 * MiB);
    await expect(installOnArrayMembers(array.device, [members[0]!.device, stranger.device], 'bios', { runDeployedTools: true }, guard)).rejects.toThrow(/not in --allowed-devices/);
    expect(await read('var/log/mkconfig.runs')).toBe('once\n');
  }, 120_000);
});
