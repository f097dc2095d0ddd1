import { describe, expect, it } from 'vitest';
import { eraseBlockDevice, type EraseMethods } from '../../src/system/erase/erase-block-device.ts';
import { eraseDevices, forEachLimited } from '../../src/system/erase/erase-devices.ts';
import { eraseDevicesExpress, type ExpressMethods } from '../../src/system/erase/erase-express.ts';
import { DiskEraseError } from '../../src/base/errors.ts';
import { eraseOptionsFromNode } from '../../src/system/erase/options.ts';
import { parseSecurityLines } from '../../src/system/erase/ata.ts';
import { secureEraseSetting } from '../../src/system/erase/nvme.ts';
import { pstoreMountPoint } from '../../src/system/erase/pstore.ts';
import { Guard, SafetyError } from '../../src/system/safety.ts';
import type { BlockDevice } from '../../src/hardware/types.ts';

// The erase decision list with the disk methods replaced by recorders: what
// IPA would try, in which order, for each setting. Real disks are in
// test/integration/erase-devices.test.ts.

const disk = (name: string): BlockDevice => ({
  name, model: '', size: 1 << 26, rotational: false, wwn: null, serial: null, vendor: null,
  wwn_with_extension: null, wwn_vendor_extension: null, hctl: null, by_path: null,
});

// Names no machine has, allowed explicitly: every method is a recorder anyway.
const allowAll = new Guard({ inRamdisk: false, allowedDevices: ['/dev/sdzz', '/dev/sdzy', '/dev/sdzb', '/dev/sdzc', '/dev/sdzq', '/dev/nvme99n1', '/dev/nvme98n1'], allowPowerActions: false });
const defaults = eraseOptionsFromNode({ driver_internal_info: {} });

function recorder(over: Partial<EraseMethods> = {}) {
  const calls: string[] = [];
  const methods: EraseMethods = {
    nvme: async (d) => { calls.push(`nvme ${d}`); return true; },
    ata: async (d) => { calls.push(`ata ${d}`); return false; },
    overwrite: async (d, _g, o) => { calls.push(`overwrite ${d} n=${o.iterations} zero=${o.zeroize}`); },
    isReadOnly: () => false,
    isRaidMember: async () => false,
    isVirtualMedia: () => false,
    ...over,
  };
  return { calls, methods };
}

describe('eraseOptionsFromNode', () => {
  it("uses IPA's defaults when Ironic sent nothing", () => {
    expect(defaults).toEqual({
      iterations: 1, zeroize: true, nvmeSecureErase: true, ataSecureErase: true,
      continueIfSecureEraseFailed: false, skipReadOnly: false, concurrency: 1,
    });
  });

  it('reads every Ironic 21.4 key, the deprecated ATA fallback key only when the new one is absent', () => {
    const o = eraseOptionsFromNode({
      driver_internal_info: {
        agent_erase_devices_iterations: 3, agent_erase_devices_zeroize: false, agent_enable_nvme_secure_erase: false,
        agent_enable_ata_secure_erase: false, agent_continue_if_ata_erase_failed: true, agent_erase_skip_read_only: true,
        disk_erasure_concurrency: 4,
      },
    });
    expect(o).toEqual({
      iterations: 3, zeroize: false, nvmeSecureErase: false, ataSecureErase: false,
      continueIfSecureEraseFailed: true, skipReadOnly: true, concurrency: 4,
    });
    expect(eraseOptionsFromNode({ driver_internal_info: {
      agent_continue_if_secure_erase_failed: false, agent_continue_if_ata_erase_failed: true,
    } }).continueIfSecureEraseFailed).toBe(false);
    expect(eraseOptionsFromNode({ driver_internal_info: { disk_erasure_concurrency: 0 } }).concurrency).toBe(1);
  });
});

describe('eraseBlockDevice decision list', () => {
  it('NVMe: secure erase and nothing else', async () => {
    const { calls, methods } = recorder();
    expect(await eraseBlockDevice(disk('/dev/nvme99n1'), defaults, allowAll, { methods })).toEqual({ method: 'nvme-secure-erase' });
    expect(calls).toEqual(['nvme /dev/nvme99n1']);
  });

  it('NVMe with secure erase disabled: overwrite', async () => {
    const { calls, methods } = recorder();
    await eraseBlockDevice(disk('/dev/nvme99n1'), { ...defaults, nvmeSecureErase: false }, allowAll, { methods });
    expect(calls).toEqual(['overwrite /dev/nvme99n1 n=1 zero=true']);
  });

  it('ATA unsupported: overwrite with the configured passes', async () => {
    const { calls, methods } = recorder();
    const r = await eraseBlockDevice(disk('/dev/sdzz'), { ...defaults, iterations: 2, zeroize: false }, allowAll, { methods });
    expect(r.method).toBe('overwrite');
    expect(calls).toEqual(['ata /dev/sdzz', 'overwrite /dev/sdzz n=2 zero=false']);
  });

  it('ATA supported: secure erase only', async () => {
    const { calls, methods } = recorder({ ata: async (d) => { calls.push(`ata ${d}`); return true; } });
    expect((await eraseBlockDevice(disk('/dev/sdzz'), defaults, allowAll, { methods })).method).toBe('ata-secure-erase');
    expect(calls).toEqual(['ata /dev/sdzz']);
  });

  it('failed secure erase fails the disk unless fallback is allowed', async () => {
    const failing = async () => { throw new DiskEraseError('frozen'); };
    const a = recorder({ ata: failing });
    await expect(eraseBlockDevice(disk('/dev/sdzz'), defaults, allowAll, { methods: a.methods }))
      .rejects.toThrow(/fallback to shred is not enabled: frozen/);
    expect(a.calls).toEqual([]);
    const b = recorder({ nvme: failing });
    const r = await eraseBlockDevice(disk('/dev/nvme98n1'), { ...defaults, continueIfSecureEraseFailed: true }, allowAll, { methods: b.methods });
    expect(r.method).toBe('overwrite');
    expect(b.calls).toEqual(['overwrite /dev/nvme98n1 n=1 zero=true']);
  });

  it('skips virtual media and RAID members; read-only per agent_erase_skip_read_only', async () => {
    const vm = recorder({ isVirtualMedia: () => true });
    expect((await eraseBlockDevice(disk('/dev/sdzb'), defaults, allowAll, { methods: vm.methods })).reason).toBe('virtual media');
    const raid = recorder({ isRaidMember: async () => true });
    expect((await eraseBlockDevice(disk('/dev/sdzb'), defaults, allowAll, { methods: raid.methods })).reason).toBe('RAID member');
    const ro = recorder({ isReadOnly: () => true });
    await expect(eraseBlockDevice(disk('/dev/sdzb'), defaults, allowAll, { methods: ro.methods })).rejects.toThrow(/read-only/);
    expect((await eraseBlockDevice(disk('/dev/sdzb'), { ...defaults, skipReadOnly: true }, allowAll, { methods: ro.methods })).method)
      .toBe('skipped');
    expect([...vm.calls, ...raid.calls, ...ro.calls]).toEqual([]);
  });

  it('refuses a disk the guard does not allow before any method runs', async () => {
    const guard = new Guard({ inRamdisk: false, allowedDevices: ['/dev/loop-none'], allowPowerActions: false });
    const { calls, methods } = recorder();
    await expect(eraseBlockDevice(disk('/dev/sdzq'), defaults, guard, { methods })).rejects.toBeInstanceOf(SafetyError);
    expect(calls).toEqual([]);
  });
});

describe('eraseDevices concurrency', () => {
  it('forEachLimited never runs more than the limit and runs every item', async () => {
    for (const limit of [1, 2, 3, 10]) {
      let running = 0;
      let max = 0;
      const seen: number[] = [];
      await forEachLimited([1, 2, 3, 4, 5, 6, 7], limit, async (i) => {
        running++;
        max = Math.max(max, running);
        await new Promise((r) => setImmediate(r));
        seen.push(i);
        running--;
      });
      expect(max).toBe(Math.min(limit, 7));
      expect(seen.sort()).toEqual([1, 2, 3, 4, 5, 6, 7]);
    }
  });

  it('attempts every disk and names each failure', async () => {
    const { methods } = recorder({ overwrite: async (d) => { if (d === '/dev/sdzb' || d === '/dev/sdzc') throw new Error('io error'); } });
    await expect(eraseDevices([disk('/dev/sdzz'), disk('/dev/sdzb'), disk('/dev/sdzc')], { ...defaults, concurrency: 2 }, allowAll, { methods }))
      .rejects.toThrow(/Failed to erase 2 of 3 device\(s\): \/dev\/sdzb: .*io error.*; \/dev\/sdzc/);
  });
});

describe('eraseDevicesExpress', () => {
  function express(over: Partial<ExpressMethods> = {}) {
    const calls: string[] = [];
    const methods: ExpressMethods = {
      nvme: async (d) => { calls.push(`nvme ${d}`); return true; },
      discardReadsZeroes: async () => false,
      discard: async (d) => { calls.push(`discard ${d}`); },
      metadata: async (d) => { calls.push(`metadata ${d}`); },
      isReadOnly: () => false,
      isRaidMember: async () => false,
      isVirtualMedia: () => false,
      ...over,
    };
    return { calls, methods };
  }

  it('NVMe secure erase, metadata for the rest, skips read-only', async () => {
    const { calls, methods } = express({ isReadOnly: (d) => d === '/dev/sdzc' });
    const r = await eraseDevicesExpress([disk('/dev/nvme99n1'), disk('/dev/sdzb'), disk('/dev/sdzc')], defaults, allowAll, { methods });
    expect(r).toEqual({ '/dev/nvme99n1': 'nvme-secure-erase', '/dev/sdzb': 'metadata', '/dev/sdzc': 'skipped' });
    expect(calls).toEqual(['nvme /dev/nvme99n1', 'metadata /dev/sdzb']);
  });

  it('a failed NVMe erase still removes metadata, then fails the step', async () => {
    const { calls, methods } = express({ nvme: async () => { throw new DiskEraseError('format failed'); } });
    await expect(eraseDevicesExpress([disk('/dev/nvme99n1')], defaults, allowAll, { methods })).rejects.toThrow(/format failed/);
    expect(calls).toEqual(['metadata /dev/nvme99n1']);
  });
});

describe('ATA and NVMe parsing', () => {
  const hdparm = [
    '/dev/sdzz:', '', 'ATA device, with non-removable media', 'Security: ',
    '\tMaster password revision code = 65534', '\t\tsupported', '\tnot\tenabled', '\tnot\tlocked', '\t\tfrozen',
    '\tnot\texpired: security count', '\t\tsupported: enhanced erase', '\t2min for SECURITY ERASE UNIT. 2min for ENHANCED SECURITY ERASE UNIT.',
    'Logical Unit WWN Device Identifier: 5002538e40a1b2c3', '',
  ].join('\n');

  it('reads the Security section of hdparm -I as IPA does', () => {
    expect(parseSecurityLines(hdparm)).toEqual([
      'Master password revision code = 65534', 'supported', 'not enabled', 'not locked', 'frozen',
      'not expired: security count', 'supported: enhanced erase',
      '2min for SECURITY ERASE UNIT. 2min for ENHANCED SECURITY ERASE UNIT.',
    ]);
    expect(parseSecurityLines('/dev/loop0:\n')).toEqual([]);
  });

  it('chooses crypto erase when FNA says so, user-data erase otherwise, refuses without format support', () => {
    expect(secureEraseSetting({ oacs: 0x17, fna: 0x4 })).toBe(2);
    expect(secureEraseSetting({ oacs: 0x2, fna: 0 })).toBe(1);
    expect(() => secureEraseSetting({ oacs: 0x1, fna: 4 })).toThrow(/supported format modes/);
    expect(() => secureEraseSetting(null)).toThrow(/did not return any information/);
  });
});

describe('pstore', () => {
  it('finds the pstore mount point in /proc/mounts', () => {
    expect(pstoreMountPoint('sysfs /sys sysfs rw 0 0\npstore /sys/fs/pstore pstore rw,nosuid 0 0\n')).toBe('/sys/fs/pstore');
    expect(pstoreMountPoint('sysfs /sys sysfs rw 0 0\n')).toBeNull();
  });
});

