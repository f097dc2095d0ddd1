import { truncate } from 'node:fs/promises';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { output, run } from '../../src/system/exec.ts';
import { Guard, SafetyError } from '../../src/system/safety.ts';
import { writeConfigDrive, ConfigDriveError } from '../../src/system/configdrive.ts';
import { readPartitionTable } from '../../src/system/partitions/table.ts';
import { probeFilesystemAt } from '../../src/system/partitions/probe.ts';
import { buildEncodedConfigDrive, readFileInRange } from '../helpers/configdrive.ts';
import { loopDiskPool, type LoopDisk } from '../helpers/loop-disk.ts';

const MiB = 1024 * 1024;
const pool = loopDiskPool();
afterEach(async () => {
  await pool.cleanup();
});
afterAll(async () => {
  await pool.cleanup();
});

const loopDisk = (size: number): Promise<LoopDisk> => pool.disk(size);
const guardFor = (dev: string) => new Guard({ inRamdisk: false, allowedDevices: [dev], allowPowerActions: false });

const meta = { uuid: '2c1e3b0a-1111-4222-8333-444455556666', hostname: 'node-1', name: 'node-1' };

async function readMetaData(device: string, start: number, size: number): Promise<unknown> {
  return JSON.parse(await readFileInRange(device, start, size, 'openstack/latest/meta_data.json'));
}

/**
 * A disk that received a smaller GPT whole disk image: the image's GPT (with
 * its backup header at the image's end) is made on the loop device while it
 * is small, then the backing file grows.
 */
async function gptDiskWithSmallImage(): Promise<LoopDisk> {
  const d = await loopDisk(150 * MiB);
  await run('sgdisk', ['-n', '1:2048:+100M', '-t', '1:8300', d.device]);
  await run('mkfs.ext4', ['-q', '-E', 'offset=' + 1 * MiB, d.device, String(100 * 1024)]);
  await truncate(d.file, 300 * MiB);
  await run('losetup', ['-c', d.device]);
  return d;
}

describe('writeConfigDrive on GPT', () => {
  it('adds a config-2 partition at the end after moving the backup header', async () => {
    const d = await gptDiskWithSmallImage();
    const rootBefore = await probeFilesystemAt(d.device, 1 * MiB, 100 * MiB);
    expect(rootBefore.type).toBe('ext4');

    const cd = await buildEncodedConfigDrive({ metaData: meta });
    const res = await writeConfigDrive(d.device, cd, guardFor(d.device));

    expect(res.reused).toBe(false);
    expect(res.partition.number).toBe(2);
    // At least IPA's 64 MiB, from an aligned start up to the last usable sector.
    expect(res.partition.size).toBeGreaterThanOrEqual(64 * MiB);
    expect(res.partition.size).toBeLessThan(65 * MiB);
    const table = await readPartitionTable(d.device);
    expect(table!.lastLba).toBe(300 * 2048 - 34);
    const p2 = table!.partitions.find((p) => p.number === 2)!;
    expect(p2.name).toBe('config-2');
    expect(p2.uuid).toBe(res.partition.uuid);
    expect(p2.start).toBe(res.partition.start);
    expect(p2.start % MiB).toBe(0);
    expect((p2.startSector + p2.sizeSectors - 1)).toBe(table!.lastLba);

    const fs = await probeFilesystemAt(d.device, p2.start, p2.size);
    expect(fs).toMatchObject({ type: 'iso9660', label: 'config-2' });
    expect(await readMetaData(d.device, p2.start, p2.size)).toEqual(meta);
    // The image's own partition is untouched and the table verifies cleanly.
    expect(await probeFilesystemAt(d.device, 1 * MiB, 100 * MiB)).toEqual(rootBefore);
    expect(await output('sgdisk', ['-v', d.device])).toMatch(/No problems found/);
  });

  it('overwrites an existing config-2 partition instead of adding another', async () => {
    const d = await gptDiskWithSmallImage();
    const g = guardFor(d.device);
    const first = await writeConfigDrive(d.device, await buildEncodedConfigDrive({ metaData: meta }), g);
    const meta2 = { ...meta, hostname: 'rebuilt' };
    const second = await writeConfigDrive(d.device, await buildEncodedConfigDrive({ metaData: meta2 }, 'vfat'), g);
    expect(second.reused).toBe(true);
    expect(second.partition.number).toBe(first.partition.number);
    expect((await readPartitionTable(d.device))!.partitions).toHaveLength(2);
    const fs = await probeFilesystemAt(d.device, second.partition.start, second.partition.size);
    expect(fs.type).toBe('vfat');
    expect(fs.label?.toLowerCase()).toBe('config-2');
    expect(await readMetaData(d.device, second.partition.start, second.partition.size)).toEqual(meta2);
  });

  it('fails clearly when the image fills the disk', async () => {
    const d = await loopDisk(100 * MiB);
    await run('sgdisk', ['-n', '1:2048:0', d.device]);
    const err = await writeConfigDrive(d.device, await buildEncodedConfigDrive({ metaData: meta }), guardFor(d.device)).catch((e: Error) => e);
    expect(err).toBeInstanceOf(Error);
    expect((err as Error).message).toMatch(/no room for a 1 MiB partition at the end of the disk: 0 MiB free/);
    expect((await readPartitionTable(d.device))!.partitions).toHaveLength(1);
  });

  it('uses a smaller partition when less than 64 MiB are free but the drive fits', async () => {
    const d = await loopDisk(100 * MiB);
    await run('sgdisk', ['-n', '1:2048:+90M', d.device]);
    const res = await writeConfigDrive(d.device, await buildEncodedConfigDrive({ metaData: meta }), guardFor(d.device));
    expect(res.partition.size).toBeLessThan(64 * MiB);
    expect(res.partition.start).toBeGreaterThanOrEqual(91 * MiB);
    expect(await readMetaData(d.device, res.partition.start, res.partition.size)).toEqual(meta);
  });
});

describe('writeConfigDrive on MBR', () => {
  it('adds a primary partition at the end of the disk', async () => {
    const d = await loopDisk(200 * MiB);
    await run('sfdisk', [d.device], { input: 'label: dos\nstart=2048, size=100MiB, type=83, bootable\n' });
    const res = await writeConfigDrive(d.device, await buildEncodedConfigDrive({ metaData: meta }, 'vfat'), guardFor(d.device));
    expect(res.partition).toMatchObject({ number: 2, size: 64 * MiB, start: 136 * MiB });
    const table = await readPartitionTable(d.device);
    expect(table!.label).toBe('dos');
    expect(table!.partitions.map((p) => p.number)).toEqual([1, 2]);
    expect(await readMetaData(d.device, res.partition.start, res.partition.size)).toEqual(meta);
  });

  it('stays below the 2 TiB MBR limit on a bigger disk (sparse 3 TiB loop disk)', async () => {
    const d = await loopDisk(3 * 1024 * 1024 * MiB);
    await run('sfdisk', ['-q', d.device], { input: 'label: dos\nsize=10MiB\n' }).catch(() => undefined); // warns about the size
    expect((await readPartitionTable(d.device))!.partitions).toHaveLength(1);
    const res = await writeConfigDrive(d.device, await buildEncodedConfigDrive({ metaData: meta }), guardFor(d.device));
    const table = await readPartitionTable(d.device);
    const p2 = table!.partitions.find((p) => p.number === 2)!;
    expect(p2.startSector + p2.sizeSectors).toBe(2 ** 32 - 1);
    expect(p2.start % MiB).toBe(0);
    expect(res.partition.size).toBeGreaterThanOrEqual(64 * MiB);
    expect(await readMetaData(d.device, p2.start, p2.size)).toEqual(meta);
  });

  it('refuses when four primary partitions exist', async () => {
    const d = await loopDisk(200 * MiB);
    await run('sfdisk', [d.device], {
      input: 'label: dos\nsize=10MiB\nsize=10MiB\nsize=10MiB\nsize=10MiB\n',
    });
    const err = await writeConfigDrive(d.device, await buildEncodedConfigDrive({ metaData: meta }), guardFor(d.device)).catch((e: Error) => e);
    expect((err as Error).message).toMatch(/already has 4 primary partitions/);
  });

  it('uses a logical partition when the fourth primary is an extended partition reaching the end', async () => {
    const d = await loopDisk(200 * MiB);
    await run('sfdisk', [d.device], {
      input: 'label: dos\nsize=10MiB\nsize=10MiB\nsize=10MiB\ntype=5\nsize=20MiB\n',
    });
    const res = await writeConfigDrive(d.device, await buildEncodedConfigDrive({ metaData: meta }), guardFor(d.device));
    expect(res.partition.number).toBe(6);
    expect(res.partition.start + res.partition.size).toBe(200 * MiB);
    expect(await readMetaData(d.device, res.partition.start, res.partition.size)).toEqual(meta);
  });
});

describe('writeConfigDrive refusals', () => {
  it('refuses a disk without a partition table', async () => {
    const d = await loopDisk(100 * MiB);
    const err = await writeConfigDrive(d.device, await buildEncodedConfigDrive({ metaData: meta }), guardFor(d.device)).catch((e: Error) => e);
    expect(err).toBeInstanceOf(ConfigDriveError);
    expect((err as Error).message).toMatch(/no partition table/);
  });

  it('refuses a device the guard does not allow, before touching it', async () => {
    const d = await loopDisk(100 * MiB);
    await run('sgdisk', ['-n', '1:2048:+10M', d.device]);
    const other = new Guard({ inRamdisk: false, allowedDevices: ['/dev/loop-none'], allowPowerActions: false });
    const err = await writeConfigDrive(d.device, await buildEncodedConfigDrive({ metaData: meta }), other).catch((e: Error) => e);
    expect(err).toBeInstanceOf(SafetyError);
    expect((await readPartitionTable(d.device))!.partitions).toHaveLength(1);
  });
});
