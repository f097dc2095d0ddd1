import { afterEach, describe, expect, it } from 'vitest';
import { output, run } from '../../src/system/exec.ts';
import { Guard, SafetyError } from '../../src/system/safety.ts';
import { createPartitionImageLayout } from '../../src/system/partitions/layout.ts';
import { getPartitionUuids } from '../../src/system/partitions/uuids.ts';
import { probeFilesystemAt } from '../../src/system/partitions/probe.ts';
import { withPartitionDevice } from '../../src/system/partitions/device.ts';
import { readPartitionTable } from '../../src/system/partitions/table.ts';
import { buildEncodedConfigDrive, readFileInRange } from '../helpers/configdrive.ts';
import { loopDiskPool, type LoopDisk } from '../helpers/loop-disk.ts';

const MiB = 1024 * 1024;
const pool = loopDiskPool();
afterEach(async () => {
  await pool.cleanup();
});
const loopDisk = (size: number): Promise<LoopDisk> => pool.disk(size);
const guardFor = (dev: string) => new Guard({ inRamdisk: false, allowedDevices: [dev], allowPowerActions: false });

interface SfdiskPart { node: string; start: number; size: number; type: string; bootable?: boolean }
async function sfdiskJson(dev: string): Promise<{ label: string; partitions: SfdiskPart[] }> {
  return JSON.parse(await output('sfdisk', ['-J', dev])).partitiontable;
}

/** Puts an ext4 "root image" into the root partition, as the image writer would. */
async function fakeRootImage(dev: string, layoutRoot: { number: number; offset: number; size: number }) {
  const table = await readPartitionTable(dev);
  const part = table!.partitions.find((p) => p.number === layoutRoot.number)!;
  await withPartitionDevice(dev, part, (p) => run('mkfs.ext4', ['-q', '-L', 'img-root', p]));
}

describe('createPartitionImageLayout', () => {
  it('gpt + uefi with ephemeral, swap and a config drive', async () => {
    const d = await loopDisk(512 * MiB);
    // Old content that must not survive: an msdos table.
    await run('sfdisk', [d.device], { input: 'label: dos\nsize=50MiB\n' });
    const configdrive = await buildEncodedConfigDrive({ metaData: { uuid: 'n1' } });
    const layout = await createPartitionImageLayout(
      d.device,
      { bootMode: 'uefi', rootMb: 100, swapMb: 32, ephemeralMb: 40, ephemeralFormat: 'ext4', configdrive },
      guardFor(d.device),
    );
    expect(layout.label).toBe('gpt');
    expect([layout.efiSystem, layout.ephemeral, layout.swap, layout.configdrive, layout.root].map((p) => p && [p.number, p.offset / MiB, p.size / MiB])).toEqual([
      [1, 1, 200],
      [2, 201, 40],
      [3, 241, 32],
      [4, 273, 1],
      [5, 274, 100],
    ]);
    expect(layout.root.path).toBe(`${d.device}p5`);

    const pt = await sfdiskJson(d.device);
    expect(pt.label).toBe('gpt');
    expect(pt.partitions.map((p) => [p.start, p.size, p.type])).toEqual([
      [2048, 409600, 'C12A7328-F81F-11D2-BA4B-00A0C93EC93B'],
      [411648, 81920, '0FC63DAF-8483-4772-8E79-3D69D8477DE4'],
      [493568, 65536, '0657FD6D-A4AB-43C4-84E5-0933C84B4F4F'],
      [559104, 2048, '0FC63DAF-8483-4772-8E79-3D69D8477DE4'],
      [561152, 204800, '0FC63DAF-8483-4772-8E79-3D69D8477DE4'],
    ]);
    expect(await output('sgdisk', ['-v', d.device])).toMatch(/No problems found/);

    const fsAt = (p: { offset: number; size: number }) => probeFilesystemAt(d.device, p.offset, p.size);
    expect(await fsAt(layout.efiSystem!)).toMatchObject({ type: 'vfat', label: 'EFI-PART' });
    expect(await fsAt(layout.ephemeral!)).toMatchObject({ type: 'ext4', label: 'ephemeral0' });
    expect(await fsAt(layout.swap!)).toMatchObject({ type: 'swap', label: 'swap1' });
    expect(await fsAt(layout.configdrive!)).toMatchObject({ type: 'iso9660', label: 'config-2' });
    expect(JSON.parse(await readFileInRange(d.device, layout.configdrive!.offset, layout.configdrive!.size, 'openstack/latest/meta_data.json'))).toEqual({ uuid: 'n1' });

    await fakeRootImage(d.device, layout.root);
    const rootFs = await fsAt(layout.root);
    const espFs = await fsAt(layout.efiSystem!);
    const uuids = await getPartitionUuids(d.device, { type: 'partition', layout });
    expect(uuids['root uuid']).toBe(rootFs.uuid);
    expect(uuids['efi system partition uuid']).toBe(espFs.uuid);
    expect(uuids['efi system partition uuid']).toMatch(/^[0-9A-F]{4}-[0-9A-F]{4}$/);
    expect(uuids.partitions).toEqual({
      root: `${d.device}p5`,
      'efi system partition': `${d.device}p1`,
      swap: `${d.device}p3`,
      ephemeral: `${d.device}p2`,
      configdrive: `${d.device}p4`,
    });
    expect('PReP Boot partition uuid' in uuids).toBe(false);
  });

  it('gpt + bios: BIOS boot partition, root takes the rest', async () => {
    const d = await loopDisk(128 * MiB);
    const layout = await createPartitionImageLayout(d.device, { bootMode: 'bios', diskLabel: 'gpt', swapMb: 8 }, guardFor(d.device));
    const pt = await sfdiskJson(d.device);
    expect(pt.partitions.map((p) => [p.start, p.size, p.type])).toEqual([
      [2048, 2048, '21686148-6449-6E6F-744E-656564454649'],
      [4096, 16384, '0657FD6D-A4AB-43C4-84E5-0933C84B4F4F'],
      [20480, 239616, '0FC63DAF-8483-4772-8E79-3D69D8477DE4'],
    ]);
    expect(layout.biosBoot).toMatchObject({ number: 1, size: MiB });
    expect(layout.efiSystem).toBeUndefined();
    // Without a filesystem in root yet, IPA's block_uuid falls back to the partition GUID.
    const uuids = await getPartitionUuids(d.device, { type: 'partition', layout });
    expect(uuids['root uuid']).toBe(layout.root.partUuid);
    expect(uuids['efi system partition uuid']).toBeNull();
  });

  it('msdos + bios: swap and ephemeral, boot flag on root', async () => {
    const d = await loopDisk(256 * MiB);
    const layout = await createPartitionImageLayout(
      d.device,
      { bootMode: 'bios', rootMb: 64, swapMb: 16, ephemeralMb: 32, ephemeralFormat: 'ext3' },
      guardFor(d.device),
    );
    const pt = await sfdiskJson(d.device);
    expect(pt.label).toBe('dos');
    expect(pt.partitions.map((p) => [p.start, p.size, p.type, p.bootable ?? false])).toEqual([
      [2048, 65536, '83', false],
      [67584, 32768, '82', false],
      [100352, 131072, '83', true],
    ]);
    expect(await probeFilesystemAt(d.device, layout.ephemeral!.offset, layout.ephemeral!.size)).toMatchObject({ type: 'ext3' });
    const uuids = await getPartitionUuids(d.device, { type: 'partition', layout });
    // No filesystem in root: the MBR PARTUUID form "<signature>-03" as lsblk shows it.
    const sig = (await output('sfdisk', ['--disk-id', d.device])).trim().replace(/^0x/, '');
    expect(uuids['root uuid']).toBe(`${sig}-03`);
  });

  it('msdos + uefi: ESP with the boot flag', async () => {
    const d = await loopDisk(512 * MiB);
    const layout = await createPartitionImageLayout(d.device, { bootMode: 'uefi', diskLabel: 'msdos', rootMb: 64, swapMb: 16 }, guardFor(d.device));
    const pt = await sfdiskJson(d.device);
    expect(pt.partitions.map((p) => [p.start / 2048, p.size / 2048, p.type, p.bootable ?? false])).toEqual([
      [1, 200, 'ef', true],
      [201, 16, '82', false],
      [217, 64, '83', false],
    ]);
    expect(await probeFilesystemAt(d.device, layout.efiSystem!.offset, layout.efiSystem!.size)).toMatchObject({ type: 'vfat' });
  });

  it('preserve_ephemeral keeps the table and the ephemeral filesystem', async () => {
    const d = await loopDisk(256 * MiB);
    const g = guardFor(d.device);
    const opts = { bootMode: 'bios' as const, rootMb: 64, ephemeralMb: 32 };
    const first = await createPartitionImageLayout(d.device, opts, g);
    const ephBefore = await probeFilesystemAt(d.device, first.ephemeral!.offset, first.ephemeral!.size);
    const again = await createPartitionImageLayout(d.device, { ...opts, preserveEphemeral: true }, g);
    expect(again).toEqual(first);
    expect(await probeFilesystemAt(d.device, first.ephemeral!.offset, first.ephemeral!.size)).toEqual(ephBefore);
    await expect(createPartitionImageLayout(d.device, { ...opts, ephemeralMb: 16, preserveEphemeral: true }, g)).rejects.toThrow(
      /cannot preserve the ephemeral partition/,
    );
  });

  it('whole disk images report the MBR signature as root uuid', async () => {
    const d = await loopDisk(64 * MiB);
    await run('sfdisk', [d.device], { input: 'label: dos\nlabel-id: 0x1234abcd\nsize=10MiB\n' });
    expect(await getPartitionUuids(d.device, { type: 'whole-disk' })).toEqual({ 'root uuid': '0x1234abcd' });
  });

  it('refuses a disk the guard does not allow and a layout that does not fit', async () => {
    const d = await loopDisk(64 * MiB);
    const other = new Guard({ inRamdisk: false, allowedDevices: [], allowPowerActions: false });
    await expect(createPartitionImageLayout(d.device, { bootMode: 'bios', rootMb: 10 }, other)).rejects.toBeInstanceOf(SafetyError);
    await expect(createPartitionImageLayout(d.device, { bootMode: 'uefi', rootMb: 10 }, guardFor(d.device))).rejects.toThrow(/needs 211 MiB/);
    expect(await readPartitionTable(d.device)).toBeNull();
  });
});
