import { describe, expect, it } from 'vitest';
import { SoftwareRaidFailure } from '../../src/base/errors.ts';
import { softwareRaidRootDevice } from '../../src/hardware/raid-root.ts';
import type { BlockDevice } from '../../src/hardware/types.ts';
import { keptVolumeNames, nodeBootMode, nodeTableType, parseSoftwareRaidConfig, wantsSoftwareRaid } from '../../src/system/raid/config.ts';
import { mdNameFromExport } from '../../src/system/raid/mdadm.ts';
import { planSoftwareRaid, sfdiskScript, sgdiskArgs, UEFI_HEAD_MIB } from '../../src/system/raid/plan.ts';

// Software RAID (issue 18): target_raid_config validation and the plan of
// partitions and arrays, all decided before a disk is touched.

const GiB = 1024 ** 3;
const disk = (name: string, sizeGiB: number, serial: string): BlockDevice => ({
  name, model: 'QEMU', size: sizeGiB * GiB, rotational: false, wwn: null, serial, vendor: null,
  wwn_with_extension: null, wwn_vendor_extension: null, hctl: null, by_path: null,
});
const two = [disk('/dev/vda', 10, 'A'), disk('/dev/vdb', 10, 'B')];
const four = [...two, disk('/dev/vdc', 10, 'C'), disk('/dev/vdd', 10, 'D')];
const sw = (lds: object[]) => ({ logical_disks: lds.map((l) => ({ controller: 'software', ...l })) });
const parseErr = (cfg: unknown) => {
  try {
    parseSoftwareRaidConfig(cfg, 'node-1');
  } catch (err) {
    expect(err).toBeInstanceOf(SoftwareRaidFailure);
    return (err as Error).message;
  }
  throw new Error('no error');
};
const planErr = (cfg: unknown, disks: BlockDevice[], bootMode: 'uefi' | 'bios' = 'uefi') => {
  try {
    planSoftwareRaid(parseSoftwareRaidConfig(cfg), disks, { bootMode, table: 'gpt' });
  } catch (err) {
    expect(err).toBeInstanceOf(SoftwareRaidFailure);
    return (err as Error).message;
  }
  throw new Error('no error');
};

describe('target_raid_config for software RAID', () => {
  it('is only software RAID when a logical disk says controller software', () => {
    expect(wantsSoftwareRaid(sw([{ raid_level: '1', size_gb: 'MAX' }]))).toBe(true);
    expect(wantsSoftwareRaid({ logical_disks: [{ raid_level: '1', size_gb: 10 }] })).toBe(false);
    expect(wantsSoftwareRaid({})).toBe(false);
  });

  it('reads levels, sizes, hints and names', () => {
    const lds = parseSoftwareRaidConfig(sw([
      { raid_level: '1', size_gb: 5, volume_name: 'root', physical_disks: [{ serial: 'A' }, { serial: 'B' }] },
      { raid_level: '0', size_gb: 'MAX' },
    ]));
    expect(lds).toEqual([
      { index: 0, level: '1', sizeGb: 5, physicalDisks: [{ serial: 'A' }, { serial: 'B' }], volumeName: 'root' },
      { index: 1, level: '0', sizeGb: 'MAX', physicalDisks: undefined, volumeName: undefined },
    ]);
  });

  it('names each problem in the message', () => {
    expect(parseErr(sw([{ raid_level: '7', size_gb: 10 }]))).toMatch(/Could not validate Software RAID config for node-1: .*does not support RAID level "7"/);
    expect(parseErr(sw([{ raid_level: '1', size_gb: -3 }]))).toMatch(/size_gb must be a positive number/);
    expect(parseErr({ logical_disks: [] })).toMatch(/no logical disks/);
    expect(parseErr({ logical_disks: [{ raid_level: '1', size_gb: 10, controller: 'megaraid' }] })).toMatch(/'controller'='software'/);
    expect(parseErr(sw([{ raid_level: '1', size_gb: 'MAX' }, { raid_level: '0', size_gb: 'MAX' }]))).toMatch(/only one RAID device with size 'MAX'/);
    expect(parseErr(sw([{ raid_level: '1', size_gb: 1, physical_disks: [{ serial: 'A' }] }]))).toMatch(/at least 2 items/);
    expect(parseErr(sw([{ raid_level: '5', size_gb: 1, physical_disks: [{ serial: 'A' }, { serial: 'B' }] }]))).toMatch(/RAID level 5 needs at least 3 disks/);
    expect(parseErr(sw([{ raid_level: '1', size_gb: 1, volume_name: 'a b/c' }]))).toMatch(/volume_name/);
  });
});

describe('the software RAID plan', () => {
  it('RAID-1 MAX over two disks under UEFI: one partition per disk after the ESP room, md0 over both', () => {
    const plan = planSoftwareRaid(parseSoftwareRaidConfig(sw([{ raid_level: '1', size_gb: 'MAX' }])), two, { bootMode: 'uefi', table: 'gpt' });
    expect(plan.arrays).toEqual([{ index: 0, device: '/dev/md0', level: '1', volumeName: undefined, members: [{ disk: '/dev/vda', partition: 1 }, { disk: '/dev/vdb', partition: 1 }], memberMiB: 10 * 1024 - UEFI_HEAD_MIB - 1 }]);
    expect(plan.disks.map((d) => d.partitions)).toEqual([
      [{ number: 1, startMiB: UEFI_HEAD_MIB, sizeMiB: 10 * 1024 - UEFI_HEAD_MIB - 1, role: 'raid', arrayIndex: 0 }],
      [{ number: 1, startMiB: UEFI_HEAD_MIB, sizeMiB: 10 * 1024 - UEFI_HEAD_MIB - 1, role: 'raid', arrayIndex: 0 }],
    ]);
  });

  it('BIOS with GPT: a BIOS boot partition first on each member', () => {
    const plan = planSoftwareRaid(parseSoftwareRaidConfig(sw([{ raid_level: '1', size_gb: 2 }])), two, { bootMode: 'bios', table: 'gpt' });
    expect(plan.disks[0]!.partitions[0]).toEqual({ number: 1, startMiB: 1, sizeMiB: 2, role: 'bios-boot' });
    expect(plan.arrays[0]!.members).toEqual([{ disk: '/dev/vda', partition: 2 }, { disk: '/dev/vdb', partition: 2 }]);
    expect(sgdiskArgs(plan.disks[0]!, 512)).toEqual(['--zap-all', '-n', '1:2048:6143', '-t', '1:EF02', '-c', '1:bios-boot', '-n', '2:6144:4200447', '-t', '2:FD00', '-c', '2:md0']);
  });

  it('BIOS with MBR: the first array starts at 1 MiB, type fd', () => {
    const plan = planSoftwareRaid(parseSoftwareRaidConfig(sw([{ raid_level: '1', size_gb: 1 }])), two, { bootMode: 'bios', table: 'msdos' });
    expect(sfdiskScript(plan.disks[0]!, 512)).toBe('label: dos\nstart=2048, size=2097152, type=fd\n');
  });

  it('size_gb is the array size: RAID-0, 5, 6 and 1+0 split it over the data members', () => {
    const cfg = (level: string) => parseSoftwareRaidConfig(sw([{ raid_level: level, size_gb: 6 }]));
    const member = (level: string) => planSoftwareRaid(cfg(level), four, { bootMode: 'uefi', table: 'gpt' }).arrays[0]!.memberMiB;
    expect(member('0')).toBe(1536);
    expect(member('1')).toBe(6144);
    expect(member('5')).toBe(2048);
    expect(member('6')).toBe(3072);
    expect(member('1+0')).toBe(3072);
  });

  it('fixed sizes first, MAX takes the rest; md numbers follow target_raid_config', () => {
    const plan = planSoftwareRaid(parseSoftwareRaidConfig(sw([{ raid_level: '1', size_gb: 'MAX', volume_name: 'root' }, { raid_level: '0', size_gb: 2 }])), two, { bootMode: 'uefi', table: 'gpt' });
    expect(plan.arrays.map((a) => [a.device, a.volumeName, a.members[0]!.partition])).toEqual([['/dev/md0', 'root', 2], ['/dev/md1', undefined, 1]]);
    expect(plan.disks[0]!.partitions[1]!.startMiB).toBe(UEFI_HEAD_MIB + 1024);
  });

  it('picks members by physical_disks hints, each hint a different disk', () => {
    const plan = planSoftwareRaid(parseSoftwareRaidConfig(sw([{ raid_level: '1', size_gb: 1, physical_disks: [{ serial: 'D' }, { name: '/dev/vdb' }] }])), four, { bootMode: 'uefi', table: 'gpt' });
    expect(plan.disks.map((d) => d.device)).toEqual(['/dev/vdd', '/dev/vdb']);
    expect(planErr(sw([{ raid_level: '1', size_gb: 1, physical_disks: [{ size: '>= 5' }, { size: '>= 5' }, { size: '>= 5' }] }]), two)).toMatch(/no disk left for physical_disks hint/);
  });

  it('refuses what the disks cannot hold, naming the disk or hint', () => {
    expect(planErr(sw([{ raid_level: '1', size_gb: 50 }]), two)).toMatch(/needs 51200 MiB on each member; \/dev\/vda has 9688 MiB left/);
    expect(planErr(sw([{ raid_level: '5', size_gb: 1 }]), two)).toMatch(/RAID level 5 needs at least 3 disks, 2 found/);
    expect(planErr(sw([{ raid_level: '1', size_gb: 1, physical_disks: [{ serial: 'A' }, { serial: 'NOPE' }] }]), two)).toMatch(/no disk matches physical_disks hint \{"serial":"NOPE"\}/);
    expect(planErr(sw([{ raid_level: '1', size_gb: 9.5 }, { raid_level: '1', size_gb: 'MAX' }]), two)).toMatch(/MAX leaves no space|needs/);
  });

  it('never counts existing arrays as members', () => {
    const plan = planSoftwareRaid(parseSoftwareRaidConfig(sw([{ raid_level: '1', size_gb: 1 }])), [...two, disk('/dev/md0', 9, 'x')], { bootMode: 'uefi', table: 'gpt' });
    expect(plan.disks.map((d) => d.device)).toEqual(['/dev/vda', '/dev/vdb']);
  });
});

describe('node facts the RAID steps read', () => {
  it('boot mode and partition table type like IPA', () => {
    expect(nodeBootMode({ instance_info: { deploy_boot_mode: 'bios' } }, 'uefi')).toBe('bios');
    expect(nodeBootMode({ properties: { capabilities: 'boot_mode:uefi,disk_label:gpt' } }, 'bios')).toBe('uefi');
    expect(nodeBootMode({}, 'bios')).toBe('bios');
    expect(nodeTableType({}, 'uefi')).toBe('gpt');
    expect(nodeTableType({}, 'bios')).toBe('msdos');
    expect(nodeTableType({ properties: { capabilities: { disk_label: 'gpt' } } }, 'bios')).toBe('gpt');
  });

  it('skip_block_devices volume names', () => {
    expect(keptVolumeNames({ properties: { skip_block_devices: [{ volume_name: 'data' }, { name: '/dev/sdb' }] } })).toEqual(['data']);
    expect(keptVolumeNames({})).toEqual([]);
  });

  it('md names from mdadm --detail --export drop the homehost', () => {
    expect(mdNameFromExport('MD_LEVEL=raid1\nMD_NAME=box:root\n')).toBe('root');
    expect(mdNameFromExport('MD_LEVEL=raid1\n')).toBeNull();
  });

  it('the root device is the lowest md array when the node asks for software RAID', () => {
    const disks = [...two, disk('/dev/md1', 2, ''), disk('/dev/md0', 9, '')];
    expect(softwareRaidRootDevice({ target_raid_config: sw([{ raid_level: '1', size_gb: 'MAX' }]) }, disks)?.name).toBe('/dev/md0');
    expect(softwareRaidRootDevice({ target_raid_config: {} }, disks)).toBeNull();
    expect(softwareRaidRootDevice({ target_raid_config: sw([{ raid_level: '1', size_gb: 'MAX' }]) }, two)).toBeNull();
  });
});

describe('the RAID steps on the wire', () => {
  it("are IPA's: raid.delete_configuration and raid.create_configuration (clean), raid.apply_configuration (deploy)", async () => {
    const { ALL_STEPS, StepRegistry } = await import('../../steps/index.ts');
    const registry = new StepRegistry(ALL_STEPS);
    const facts = { vendor: 'any', disks: [], hasTool: () => true };
    const raid = (phase: 'clean' | 'deploy') => registry.wireSteps(phase, facts).filter((s) => s.interface === 'raid');
    // IPA 9.4's GenericHardwareManager get_clean_steps / get_deploy_steps entries, verbatim.
    expect(raid('clean')).toEqual([
      { step: 'delete_configuration', priority: 0, interface: 'raid', reboot_requested: false, abortable: true },
      { step: 'create_configuration', priority: 0, interface: 'raid', reboot_requested: false, abortable: true },
    ]);
    expect(raid('deploy')).toEqual([
      {
        step: 'apply_configuration', priority: 0, interface: 'raid', reboot_requested: false,
        argsinfo: {
          raid_config: { description: 'The RAID configuration to apply.', required: true },
          delete_existing: { description: "Setting this to 'True' indicates to delete existing RAID configuration prior to creating the new configuration. Default value is 'True'.", required: false },
        },
      },
    ]);
  });
});

describe('mdadm --examine output', () => {
  it('only md magic counts as a superblock, not a partition table', async () => {
    const { MD_MAGIC_LINE } = await import('../../src/system/raid/mdadm.ts');
    const member = '/dev/vda1:\n          Magic : a92b4efc\n        Version : 1.2\n    Feature Map : 0x0\n';
    const mbrDisk = '/dev/vda:\n   MBR Magic : aa55\nPartition[0] :       210944 sectors at         2048 (type fd)\n';
    expect(MD_MAGIC_LINE.test(member)).toBe(true);
    expect(MD_MAGIC_LINE.test(mbrDisk)).toBe(false);
  });
});
