import { describe, expect, it } from 'vitest';
import { planPartitionImageLayout, sfdiskScript, LayoutError } from '../../src/system/partitions/layout-plan.ts';
import { parseSfdiskJson } from '../../src/system/partitions/table.ts';
import { parseBlkidExport } from '../../src/system/partitions/probe.ts';

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;
const summary = (plan: ReturnType<typeof planPartitionImageLayout>) =>
  plan.partitions.map((p) => [p.number, p.role, p.offset / MiB, p.size / MiB]);

describe('planPartitionImageLayout (ironic-lib make_partitions order and sizes)', () => {
  it('UEFI defaults to GPT: ESP 200 MiB first, then ephemeral, swap, configdrive, root last', () => {
    const plan = planPartitionImageLayout({ bootMode: 'uefi', rootMb: 1024, swapMb: 512, ephemeralMb: 256, configdriveMb: 1 }, 10 * GiB);
    expect(plan.label).toBe('gpt');
    expect(summary(plan)).toEqual([
      [1, 'efiSystem', 1, 200],
      [2, 'ephemeral', 201, 256],
      [3, 'swap', 457, 512],
      [4, 'configdrive', 969, 1],
      [5, 'root', 970, 1024],
    ]);
    expect(plan.partitions[0]!.type).toBe('C12A7328-F81F-11D2-BA4B-00A0C93EC93B');
    expect(plan.partitions[2]!.type).toBe('0657FD6D-A4AB-43C4-84E5-0933C84B4F4F');
    expect(plan.partitions.every((p) => !p.bootable)).toBe(true);
  });

  it('BIOS defaults to msdos with the boot flag on root', () => {
    const plan = planPartitionImageLayout({ bootMode: 'bios', rootMb: 100, swapMb: 10 }, GiB);
    expect(plan.label).toBe('msdos');
    expect(summary(plan)).toEqual([
      [1, 'swap', 1, 10],
      [2, 'root', 11, 100],
    ]);
    expect(plan.partitions.map((p) => [p.type, p.bootable])).toEqual([
      ['82', false],
      ['83', true],
    ]);
  });

  it('BIOS on GPT gets a 1 MiB BIOS boot partition first', () => {
    const plan = planPartitionImageLayout({ bootMode: 'bios', diskLabel: 'gpt', rootMb: 100 }, GiB);
    expect(summary(plan)).toEqual([
      [1, 'biosBoot', 1, 1],
      [2, 'root', 2, 100],
    ]);
    expect(plan.partitions[0]!.type).toBe('21686148-6449-6E6F-744E-656564454649');
  });

  it('ppc64 BIOS gets an 8 MiB PReP partition and no BIOS boot partition', () => {
    const plan = planPartitionImageLayout({ bootMode: 'bios', diskLabel: 'gpt', rootMb: 100, cpuArch: 'ppc64le' }, GiB);
    expect(summary(plan)).toEqual([
      [1, 'prepBoot', 1, 8],
      [2, 'root', 9, 100],
    ]);
  });

  it('root without a size takes the rest of the disk, leaving room for the backup GPT', () => {
    const gpt = planPartitionImageLayout({ bootMode: 'uefi', swapMb: 64 }, 1 * GiB);
    const root = gpt.partitions.at(-1)!;
    expect(root.offset / MiB).toBe(265);
    expect((root.offset + root.size) / MiB).toBe(1023);
    const dos = planPartitionImageLayout({ bootMode: 'bios' }, 1 * GiB);
    expect((dos.partitions[0]!.offset + dos.partitions[0]!.size) / MiB).toBe(1024);
  });

  it('refuses layouts that do not fit, and five primaries on msdos', () => {
    expect(() => planPartitionImageLayout({ bootMode: 'bios', rootMb: 2048 }, GiB)).toThrow(/needs 2049 MiB but the disk has only 1024 MiB/);
    expect(() =>
      planPartitionImageLayout({ bootMode: 'uefi', diskLabel: 'msdos', rootMb: 10, swapMb: 10, ephemeralMb: 10, configdriveMb: 1 }, GiB),
    ).toThrow(LayoutError);
    expect(() => planPartitionImageLayout({ bootMode: 'bios', rootMb: 10, swapMb: -1 }, GiB)).toThrow(/invalid size/);
  });

  it('renders an sfdisk script in sectors', () => {
    const plan = planPartitionImageLayout({ bootMode: 'bios', rootMb: 100, swapMb: 10 }, GiB);
    expect(sfdiskScript(plan, 512)).toBe(
      'label: dos\nunit: sectors\n\nstart=2048, size=20480, type=82\nstart=22528, size=204800, type=83, bootable\n',
    );
  });
});

describe('parsers', () => {
  it('reads sfdisk -J in bytes and sectors', () => {
    const t = parseSfdiskJson(
      JSON.stringify({
        partitiontable: {
          label: 'gpt', id: 'X', device: '/dev/loop0', unit: 'sectors', firstlba: 34, lastlba: 409566, sectorsize: 512,
          partitions: [
            { node: '/dev/loop0p2', start: 4096, size: 2048, type: 'T', uuid: 'ABC', name: 'config-2' },
            { node: '/dev/loop0p1', start: 2048, size: 2048, type: 'T', uuid: 'DEF' },
          ],
        },
      }),
    );
    expect(t.partitions.map((p) => [p.number, p.start, p.size, p.uuid, p.name])).toEqual([
      [1, 1 * MiB, 1 * MiB, 'def', undefined],
      [2, 2 * MiB, 1 * MiB, 'abc', 'config-2'],
    ]);
    expect(t.lastLba).toBe(409566);
  });

  it('reads blkid export output', () => {
    expect(parseBlkidExport('DEVNAME=/dev/loop1\nLABEL=config-2\nTYPE=iso9660\nUUID=2026-01-01\n')).toMatchObject({
      LABEL: 'config-2',
      TYPE: 'iso9660',
    });
  });
});
