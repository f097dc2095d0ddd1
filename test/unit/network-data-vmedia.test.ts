import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  CONFIG_LABELS,
  PARAMETERS_LABELS,
  bootedFromVirtualMedia,
  devicesWithLabel,
  looksLikeVirtualMedia,
  parseLsblkPairs,
  readNetworkDataFromDir,
  readVirtualMediaConfig,
} from '../../src/system/network/virtual-media.ts';

// Finding the virtual media config device from lsblk output, the way IPA 9.4
// does, and reading network_data.json from a mounted config directory.

describe('virtual media device lookup', () => {
  const listing = [
    'KNAME="/dev/sda" LABEL=""',
    'KNAME="/dev/sda1" LABEL="EFI"',
    'KNAME="/dev/sda4" LABEL="config-2"',
    'KNAME="/dev/sdb" LABEL="IR-VFD-DEV"',
    'KNAME="/dev/sr0" LABEL="CONFIG-2"',
    'KNAME="/dev/sr1" LABEL="vmedia_boot_iso"',
    'KNAME="/dev/sdc" LABEL="my\\x20disk"',
  ].join('\n');

  it('parses lsblk -P rows, undoing \\x escapes', () => {
    expect(parseLsblkPairs(listing).at(-1)).toEqual({ KNAME: '/dev/sdc', LABEL: 'my disk' });
  });

  it('matches labels case-insensitively', () => {
    expect(devicesWithLabel(listing, PARAMETERS_LABELS)).toEqual(['/dev/sdb']);
    expect(devicesWithLabel(listing, CONFIG_LABELS)).toEqual(['/dev/sda4', '/dev/sr0', '/dev/sr1']);
    expect(devicesWithLabel(listing, ['nothing'])).toEqual([]);
  });

  it('accepts CD-ROMs and small USB disks, never partitions or local disks', () => {
    expect(looksLikeVirtualMedia('KNAME="sr0" TRAN="sata" TYPE="rom" SIZE="1048576"')).toBe(true);
    expect(looksLikeVirtualMedia('KNAME="sdb" TRAN="usb" TYPE="disk" SIZE="1474560"')).toBe(true);
    expect(looksLikeVirtualMedia('KNAME="sdb" TRAN="usb" TYPE="disk" SIZE="64023257088"')).toBe(false);
    expect(looksLikeVirtualMedia('KNAME="sdb" TRAN="usb" TYPE="disk" SIZE=""')).toBe(false);
    // A config-2 partition on a local disk (a previous tenant's config drive): first row is the partition.
    expect(looksLikeVirtualMedia('KNAME="sda4" TRAN="" TYPE="part" SIZE="67108864"\nKNAME="sda" TRAN="sata" TYPE="disk" SIZE="500107862016"')).toBe(false);
    expect(looksLikeVirtualMedia('KNAME="sdc" TRAN="sata" TYPE="disk" SIZE="1474560"')).toBe(false);
    expect(looksLikeVirtualMedia('KNAME="loop0" TRAN="" TYPE="loop" SIZE="1474560"')).toBe(false);
    expect(looksLikeVirtualMedia('')).toBe(false);
  });
});

describe('parameters', () => {
  it('only a vmedia boot reads virtual media', async () => {
    expect(bootedFromVirtualMedia('BOOT_IMAGE=/vmlinuz boot_method=vmedia ro')).toBe(true);
    expect(bootedFromVirtualMedia('BOOT_IMAGE=/vmlinuz boot_method=pxe')).toBe(false);
    expect(bootedFromVirtualMedia('xboot_method=vmedia')).toBe(false);
    // Not a vmedia boot: nothing is looked up at all (no lsblk, no mount).
    expect(await readVirtualMediaConfig({ cmdline: 'ipa-api-url=mdns' })).toEqual({ params: {} });
  });
});

describe('network_data.json from a config directory', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'mai-unit-vmedia-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('is undefined when the directory has none', async () => {
    expect(await readNetworkDataFromDir(dir)).toBeUndefined();
  });

  it('is read from openstack/latest/network_data.json', async () => {
    await mkdir(join(dir, 'openstack', 'latest'), { recursive: true });
    await writeFile(join(dir, 'openstack', 'latest', 'network_data.json'), '{"links": []}');
    expect(await readNetworkDataFromDir(dir)).toEqual({ links: [] });
  });

  it('says so when it is not JSON', async () => {
    await writeFile(join(dir, 'openstack', 'latest', 'network_data.json'), '{"links": [');
    await expect(readNetworkDataFromDir(dir)).rejects.toThrow(/network_data\.json on virtual media is not JSON/);
  });
});
