import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.ts';
import { HardwareView } from '../../src/hardware-view.ts';
import type { BlockDevice } from '../../src/hardware/types.ts';
import { Guard } from '../../src/system/safety.ts';

// ipa-disk-wait-attempts / ipa-disk-wait-delay do what IPA does with them: at
// start, in a ramdisk, the agent looks for the root disk (a disk of 4 GiB or
// more without hints) up to `attempts` times, and goes on without it after the
// last look. Outside a ramdisk it does not wait. The disks are a fake listing
// that grows, as disks behind a slow driver do; nothing on this machine is read.

const GiB = 1024 ** 3;
const disk = (name: string, size: number): BlockDevice => ({
  name, model: 'fake', size, rotational: false, wwn: null, serial: null, vendor: null,
  wwn_with_extension: null, wwn_vendor_extension: null, hctl: null, by_path: null,
});

/** A listing that shows `late` only from the `appearsAt`-th look on, and counts the looks. */
function slowDisks(appearsAt: number) {
  const looks = { count: 0 };
  const list = async () => {
    looks.count++;
    return looks.count >= appearsAt ? [disk('/dev/vdz', 8 * GiB), disk('/dev/vda', 1 * GiB)] : [disk('/dev/vda', 1 * GiB)];
  };
  return { looks, list };
}

const config = (...argv: string[]) => loadConfig({ argv: ['--standalone', '--disk-wait-delay', '0', ...argv], env: {}, cmdlineText: '' });
const guard = (inRamdisk: boolean) => new Guard({ inRamdisk, allowedDevices: [], allowPowerActions: false });

describe('waiting for the root disk at start', () => {
  it('in a ramdisk, looks again until the root disk appears', async () => {
    const { looks, list } = slowDisks(3);
    const found = await new HardwareView(guard(true), config('--disk-wait-attempts', '5'), { listDisks: list }).waitForRootDisk();
    expect(found?.name).toBe('/dev/vdz');
    expect(looks.count).toBe(3);
  });

  it('gives up after ipa-disk-wait-attempts looks, and 0 means no look at all', async () => {
    const late = slowDisks(10);
    expect(await new HardwareView(guard(true), config('--disk-wait-attempts', '4'), { listDisks: late.list }).waitForRootDisk()).toBeNull();
    expect(late.looks.count).toBe(4);
    const off = slowDisks(1);
    expect(await new HardwareView(guard(true), config('--disk-wait-attempts', '0'), { listDisks: off.list }).waitForRootDisk()).toBeNull();
    expect(off.looks.count).toBe(0);
  });

  it('reads the settings from the kernel command line (10 looks by default)', async () => {
    const cfg = loadConfig({ argv: ['--standalone'], env: {}, cmdlineText: 'ipa-disk-wait-attempts=2 ipa-disk-wait-delay=0' });
    const late = slowDisks(10);
    expect(await new HardwareView(guard(true), cfg, { listDisks: late.list }).waitForRootDisk()).toBeNull();
    expect(late.looks.count).toBe(2);
    expect(loadConfig({ argv: ['--standalone'], env: {}, cmdlineText: '' }).diskWaitAttempts).toBe(10);
  });

  it('outside a ramdisk, does not wait', async () => {
    const { looks, list } = slowDisks(1);
    expect(await new HardwareView(guard(false), config('--disk-wait-attempts', '5'), { listDisks: list }).waitForRootDisk()).toBeNull();
    expect(looks.count).toBe(0);
  });
});
