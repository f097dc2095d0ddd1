import { openSync, readSync, closeSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { agentCommand, serialShell, startVm, type Vm } from './qemu.ts';

// Issue 18 Show it 2 inside the ramdisk: three virtio disks, the agent's
// raid.create_configuration builds a RAID-1 (two disks picked by serial
// hints, volume "root") and a RAID-5 over all three (size_gb MAX); the
// guest's kernel runs them and the inventory reports them; delete_configuration
// keeps the volume named in skip_block_devices, then removes everything: no
// array, no md superblock, no partition table left on any disk.

const LIMIT_MS = 600_000;
const MiB = 1024 * 1024;
const DISK_MIB = 256;
/** md's superblock magic (0xa92b4efc, little endian), at 4 KiB into a 1.2-metadata member. */
const MD_MAGIC = Buffer.from([0xfc, 0x4e, 0x2b, 0xa9]);

/** Offsets (4 KiB aligned) in a disk image where an md superblock magic sits. */
function mdMagicOffsets(file: string): number[] {
  const found: number[] = [];
  const fd = openSync(file, 'r');
  try {
    const buf = Buffer.alloc(MiB);
    for (let off = 0; off < DISK_MIB * MiB; off += MiB) {
      readSync(fd, buf, 0, MiB, off);
      for (let i = 0; i < MiB; i += 4096) if (buf.subarray(i, i + 4).equals(MD_MAGIC)) found.push(off + i);
    }
  } finally {
    closeSync(fd);
  }
  return found;
}

describe('software RAID in a VM booted from the ramdisk', () => {
  let vm: Vm;
  const dir = mkdtempSync(join(tmpdir(), 'metal-agent-e2e-raid-'));
  const files = ['A', 'B', 'C'].map((s) => join(dir, `${s}.raw`));

  const shell = (cmd: string) => serialShell(vm, cmd);

  function cleanStep(step: string, node: Record<string, unknown>, iface = 'raid', args: object = {}, phase: 'clean' | 'deploy' = 'clean'): Promise<any> {
    const params = { step: { step, interface: iface, args }, node: { uuid: 'e2e-raid', ...node }, ports: [] };
    return agentCommand(vm, `${phase}.execute_${phase}_step`, params);
  }

  const config = {
    logical_disks: [
      { controller: 'software', raid_level: '1', size_gb: 0.1, volume_name: 'root', physical_disks: [{ serial: 'RAID-A' }, { serial: 'RAID-B' }] },
      { controller: 'software', raid_level: '5', size_gb: 'MAX', volume_name: 'data' },
    ],
  };

  beforeAll(async () => {
    for (const f of files) await execa('truncate', ['-s', `${DISK_MIB}M`, f]);
    vm = await startVm({
      memoryMiB: 512,
      disks: files.map((file, i) => ({ file, bus: 'virtio' as const, serial: `RAID-${'ABC'[i]}` })),
      kernelArgs: ['ipa-standalone=1', 'ipa-enable-auto-tls=0', 'metal.shell'],
    });
    await vm.waitForSerial(/"msg":"API listening"/, LIMIT_MS);
  }, LIMIT_MS);

  afterAll(async () => {
    await vm?.stop();
    rmSync(dir, { recursive: true, force: true });
  }, 120_000);

  it('create_configuration builds RAID-1 (by serial hints) and RAID-5 (MAX) over partitions; the inventory reports both', async () => {
    const r = await cleanStep('create_configuration', { target_raid_config: config });
    expect(r.command_status, JSON.stringify(r.command_error)).toBe('SUCCEEDED');
    expect(r.command_result.clean_result).toEqual(config);

    const mdstat = await shell('cat /proc/mdstat');
    // Members as the kernel lists them: md0 on the first partitions of vda/vdb, md1 on vda2, vdb2, vdc1.
    const line = (md: string) => mdstat.split('\n').find((l) => l.startsWith(`${md} :`)) ?? '';
    expect(line('md0')).toMatch(/active raid1/);
    expect(line('md0').match(/vd[a-c]\d/g)?.sort()).toEqual(['vda1', 'vdb1']);
    expect(line('md1')).toMatch(/active raid5/);
    expect(line('md1').match(/vd[a-c]\d/g)?.sort()).toEqual(['vda2', 'vdb2', 'vdc1']);
    expect(await shell('mdadm --detail --export /dev/md0')).toMatch(/^MD_NAME=(.*:)?root$/m);
    // BIOS boot (qemu -kernel under SeaBIOS) without disk_label: MBR, Linux RAID partitions from 1 MiB.
    expect(await shell('sfdisk -d /dev/vda')).toMatch(/\/dev\/vda1 : start=\s*2048, size=\s*210944, type=fd/);

    const res = await vm.httpGet('/v1/inventory', { timeoutSec: 120 });
    const inv = JSON.parse(res.body);
    const names = inv.disks.map((d: { name: string }) => d.name);
    expect(names).toEqual(expect.arrayContaining(['/dev/md0', '/dev/md1', '/dev/vda', '/dev/vdb', '/dev/vdc']));
    const md0 = inv.disks.find((d: { name: string }) => d.name === '/dev/md0');
    expect(md0.size).toBeGreaterThan(90 * MiB);
    expect(md0.size).toBeLessThanOrEqual(103 * MiB);

    // With target_raid_config asking for software RAID, the root device is the first array.
    const verify = await cleanStep('verify_root_device', { target_raid_config: config }, 'deploy');
    expect(verify.command_status, JSON.stringify(verify.command_error)).toBe('SUCCEEDED');
    expect(verify.command_result.clean_result.device).toBe('/dev/md0');
    expect(verify.command_result.clean_result.bytes).toBe(md0.size);
  }, LIMIT_MS);

  it('a second create_configuration on used disks fails naming them, and changes nothing', async () => {
    const before = await shell('cat /proc/mdstat; sfdisk -d /dev/vda; sfdisk -d /dev/vdc');
    const r = await cleanStep('create_configuration', { target_raid_config: config });
    expect(r.command_status).toBe('FAILED');
    expect(r.command_error.details).toMatch(/Partitions detected on devices during RAID config: \/dev\/vda has a dos partition table/);
    expect(await shell('cat /proc/mdstat; sfdisk -d /dev/vda; sfdisk -d /dev/vdc')).toBe(before);
  }, LIMIT_MS);

  it('delete_configuration and erase_devices_metadata keep the skip_block_devices volume; delete_configuration then removes every array, superblock and partition table', async () => {
    const keep = await cleanStep('delete_configuration', { properties: { skip_block_devices: [{ volume_name: 'data' }] } });
    expect(keep.command_status, JSON.stringify(keep.command_error)).toBe('SUCCEEDED');
    let mdstat = await shell('cat /proc/mdstat');
    expect(mdstat).not.toMatch(/md0 :/);
    expect(mdstat).toMatch(/md1 : active raid5/);

    // erase_devices_metadata leaves the kept volume's disks (all three hold a member of md1) alone.
    const tables = await shell('sfdisk -d /dev/vda; sfdisk -d /dev/vdc');
    const erase = await cleanStep('erase_devices_metadata', { properties: { skip_block_devices: [{ volume_name: 'data' }] } }, 'deploy');
    expect(erase.command_status, JSON.stringify(erase.command_error)).toBe('SUCCEEDED');
    expect(await shell('sfdisk -d /dev/vda; sfdisk -d /dev/vdc')).toBe(tables);
    expect(await shell('cat /proc/mdstat')).toMatch(/md1 : active raid5/);

    const all = await cleanStep('delete_configuration', {});
    expect(all.command_status, JSON.stringify(all.command_error)).toBe('SUCCEEDED');
    mdstat = await shell('cat /proc/mdstat');
    expect(mdstat).not.toMatch(/^md\d+ :/m);
    const examine = await shell('for d in /dev/vda /dev/vdb /dev/vdc; do mdadm --examine $d 2>&1; done; sync');
    expect(examine.match(/No md superblock detected/g)?.length).toBe(3);
    // What reached the disk images: no md superblock anywhere, no partition table.
    for (const f of files) {
      expect(mdMagicOffsets(f), f).toEqual([]);
      const blkid = await execa('blkid', ['-p', '-o', 'export', f], { reject: false });
      expect(blkid.stdout, f).not.toMatch(/PTTYPE/);
    }
  }, LIMIT_MS);

  it('deploy-time raid.apply_configuration: a bad raid_config fails before the existing array is deleted; a good one replaces it', async () => {
    const raid1 = { logical_disks: [{ controller: 'software', raid_level: '1', size_gb: 'MAX', physical_disks: [{ serial: 'RAID-A' }, { serial: 'RAID-C' }] }] };
    const ok = await cleanStep('apply_configuration', {}, 'raid', { raid_config: raid1 }, 'deploy');
    expect(ok.command_status, JSON.stringify(ok.command_error)).toBe('SUCCEEDED');
    const line = () => shell('cat /proc/mdstat').then((t) => t.split('\n').find((l) => l.startsWith('md0 :')) ?? '');
    expect((await line()).match(/vd[a-c]\d/g)?.sort()).toEqual(['vda1', 'vdc1']);

    const bad = await cleanStep('apply_configuration', {}, 'raid', { raid_config: { logical_disks: [{ controller: 'software', raid_level: '7', size_gb: 'MAX' }] } }, 'deploy');
    expect(bad.command_status).toBe('FAILED');
    expect(bad.command_error.details).toMatch(/does not support RAID level "7"/);
    expect((await line()).match(/vd[a-c]\d/g)?.sort()).toEqual(['vda1', 'vdc1']);

    // delete_existing (default true): the old array goes, the new one is built on vdb and vdc.
    const again = await cleanStep('apply_configuration', {}, 'raid', { raid_config: { logical_disks: [{ ...raid1.logical_disks[0], physical_disks: [{ serial: 'RAID-B' }, { serial: 'RAID-C' }] }] } }, 'deploy');
    expect(again.command_status, JSON.stringify(again.command_error)).toBe('SUCCEEDED');
    expect((await line()).match(/vd[a-c]\d/g)?.sort()).toEqual(['vdb1', 'vdc1']);
    expect(await shell('mdadm --examine /dev/vda 2>&1')).toMatch(/No md superblock detected/);
  }, LIMIT_MS);
});
