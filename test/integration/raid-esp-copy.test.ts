import { basename } from 'node:path';
import { createHash, randomBytes } from 'node:crypto';
import { closeSync, mkdtempSync, openSync, readFileSync, readSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Guard } from '../../src/system/safety.ts';
import { copyEspToMember } from '../../src/system/raid/esp-copy.ts';
import { installOnArrayMembers } from '../../src/system/bootloader/softraid.ts';
import { sgdiskArgs, UEFI_HEAD_MIB, type DiskPlan } from '../../src/system/raid/plan.ts';
import { loopDiskPool, withRange, type LoopDisk } from '../helpers/loop-disk.ts';

// Issue 18: a whole-disk image on a UEFI software RAID keeps its ESP inside the
// array; each member disk gets its own ESP at its head, with the image ESP's
// label, volume id and files (filesystem-level copy), and the member's RAID
// partition is not touched. Loop disks: the "image" disk has a GPT + ESP as a
// whole-disk image would, the member has the GPT create_configuration makes.

const MiB = 1024 * 1024;
const MTOOLS_ENV = { MTOOLS_SKIP_CHECK: '1' };

describe('the image ESP copied onto each RAID member', () => {
  const pool = loopDiskPool();
  let image: LoopDisk;
  let members: LoopDisk[];
  const dir = mkdtempSync(join(tmpdir(), 'raid-esp-test-'));
  const bootx64 = randomBytes(300 * 1024);
  const grubCfg = Buffer.from('search --fs-uuid 1234-ABCD\nconfigfile /EFI/debian/grub.cfg\n');
  const raidHead = randomBytes(MiB);
  const guard = () => new Guard({ inRamdisk: false, allowedDevices: members.map((m) => m.device), allowPowerActions: false });

  beforeAll(async () => {
    image = await pool.disk(256 * MiB);
    await execa('sgdisk', ['-n', '1:2048:+100M', '-t', '1:EF00', '-n', '2:0:0', '-t', '2:8300', image.device]);
    await withRange(image.device, MiB, 100 * MiB, async (esp) => {
      await execa('mkfs.vfat', ['-I', '-F', '32', '-n', 'EFI-SYSTEM', '-i', '1234ABCD', esp]);
      writeFileSync(join(dir, 'BOOTX64.EFI'), bootx64);
      writeFileSync(join(dir, 'grub.cfg'), grubCfg);
      for (const d of ['::/EFI', '::/EFI/BOOT', '::/EFI/debian']) await execa('mmd', ['-i', esp, d], { env: MTOOLS_ENV });
      await execa('mcopy', ['-i', esp, join(dir, 'BOOTX64.EFI'), '::/EFI/BOOT/BOOTX64.EFI'], { env: MTOOLS_ENV });
      await execa('mcopy', ['-i', esp, join(dir, 'grub.cfg'), '::/EFI/debian/grub.cfg'], { env: MTOOLS_ENV });
      await execa('mcopy', ['-i', esp, join(dir, 'BOOTX64.EFI'), '::/EFI/debian/grubx64.efi'], { env: MTOOLS_ENV });
    });
    members = [await pool.disk(700 * MiB), await pool.disk(700 * MiB)];
    for (const m of members) {
      const plan: DiskPlan = { device: m.device, table: 'gpt', partitions: [{ number: 1, startMiB: UEFI_HEAD_MIB, sizeMiB: 100, role: 'raid', arrayIndex: 0 }] };
      await execa('sgdisk', [...sgdiskArgs(plan, 512), m.device]);
      const fd = openSync(m.device, 'r+');
      writeSync(fd, raidHead, 0, raidHead.length, UEFI_HEAD_MIB * MiB);
      closeSync(fd);
    }
  }, 120_000);

  afterAll(async () => {
    await pool.cleanup();
    rmSync(dir, { recursive: true, force: true });
  });

  it('gives every member an ESP at 1 MiB with the same label, volume id and files, and leaves the RAID partition alone', async () => {
    for (const m of members) {
      const esp = await copyEspToMember({ device: image.device, start: MiB, size: 100 * MiB }, m.device, guard());
      expect(esp.partition.start).toBe(MiB);
      expect(esp.partition.size).toBe((UEFI_HEAD_MIB - 1) * MiB);
      expect(esp.partition.type.toUpperCase()).toBe('C12A7328-F81F-11D2-BA4B-00A0C93EC93B');
      const blkid = await execa('blkid', ['-p', '-O', String(MiB), '-S', String(esp.partition.size), '-o', 'export', m.device]);
      expect(blkid.stdout).toMatch(/^LABEL=EFI-SYSTEM$/m);
      expect(blkid.stdout).toMatch(/^UUID=1234-ABCD$/m);
      for (const [path, want] of [['EFI/BOOT/BOOTX64.EFI', bootx64], ['EFI/debian/grub.cfg', grubCfg]] as const) {
        const out = join(dir, `out-${Date.now()}`);
        await execa('mcopy', ['-n', '-i', `${m.device}@@${MiB}`, `::/${path}`, out], { env: MTOOLS_ENV });
        expect(createHash('sha256').update(readFileSync(out)).digest('hex'), path).toBe(createHash('sha256').update(want).digest('hex'));
      }
      const head = Buffer.alloc(MiB);
      const fd = openSync(m.device, 'r');
      readSync(fd, head, 0, MiB, UEFI_HEAD_MIB * MiB);
      closeSync(fd);
      expect(head.equals(raidHead)).toBe(true);
      // The RAID partition is still partition 1, where create_configuration put it.
      expect((await execa('sgdisk', ['-i', '1', m.device])).stdout).toMatch(/First sector: 1128448/);
    }
  }, 120_000);

  it('a second run (redeploy) reuses the ESP partition instead of adding one', async () => {
    const esp = await copyEspToMember({ device: image.device, start: MiB, size: 100 * MiB }, members[0]!.device, guard());
    expect(esp.partition.number).toBe(2);
    expect((await execa('sgdisk', ['-p', members[0]!.device])).stdout.match(/^\s+\d+\s+\d+\s+\d+/gm)?.length).toBe(2);
  }, 120_000);

  it("install_bootloader's software RAID path (UEFI): each member gets the ESP and its own boot entry (dry run: not in a ramdisk)", async () => {
    // The "array" is the image loop disk itself: what the path reads from an array is only its partition table and ESP.
    const res = await installOnArrayMembers(image.device, members.map((m) => m.device), 'uefi', { runDeployedTools: true }, guard());
    expect(res.members.map((m) => m.disk)).toEqual(members.map((m) => m.device));
    for (const m of res.members) {
      expect(m.efi!.espPartition).toBe(2);
      expect(m.efi!.entries.map((e) => [e.device, e.partition, e.loader, e.label])).toEqual([[m.disk, 2, '\\EFI\\debian\\grubx64.efi', `debian ${basename(m.disk)}`]]);
      expect(m.efi!.entries[0]!.applied).toBe(false);
    }
  }, 120_000);

  it('refuses a disk not in --allowed-devices', async () => {
    const other = await pool.disk(64 * MiB);
    await expect(copyEspToMember({ device: image.device, start: MiB, size: 100 * MiB }, other.device, guard())).rejects.toThrow(/not in --allowed-devices/);
  });
});
