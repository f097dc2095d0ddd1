import { describe, expect, it } from 'vitest';
import {
  findDevicesByHints,
  guessRootDisk,
  matchRootDeviceHints,
  parseRootDeviceHints,
  RootDeviceHintError,
  RootDeviceNotFoundError,
  rootDeviceHintsOf,
  selectRootDevice,
} from '../../src/hardware/root-device-hints.ts';
import { matchSpec, parseSpec, pyFloat, pyQuote } from '../../src/hardware/hint-grammar.ts';
import type { BlockDevice } from '../../src/hardware/types.ts';

// Expected values were worked out from ironic-lib 2023.1 / oslo.utils
// specs_matcher and cross-checked against the Python implementation.

const GiB = 1024 ** 3;

// Sample device records only: hints are parsed and matched in memory and no
// function under test here opens a device, so these names are never touched.
function disk(p: Partial<BlockDevice> & { name: string }): BlockDevice {
  return {
    model: '', size: 0, rotational: false, wwn: null, serial: null, vendor: null,
    wwn_with_extension: null, wwn_vendor_extension: null, hctl: null, by_path: null, ...p,
  };
}

const sda = disk({
  name: '/dev/sda', model: 'Samsung SSD 860', size: 500 * GiB, rotational: false, wwn: '0x5002538e40a1b2c3',
  serial: 'S3Z9NB0K123456A', vendor: 'ATA', wwn_with_extension: '0x5002538e40a1b2c3ffff',
  wwn_vendor_extension: '0xffff', hctl: '0:0:0:0', by_path: '/dev/disk/by-path/pci-0000:00:1f.2-ata-1',
});
const sdb = disk({
  name: '/dev/sdb', model: 'ST4000NM0035', size: 4000787030016, rotational: true, wwn: '0x5000c500a1b2c3d4',
  serial: 'ZC1ABCDE', vendor: 'SEAGATE', wwn_with_extension: '0x5000c500a1b2c3d4', hctl: '1:0:0:0',
  by_path: '/dev/disk/by-path/pci-0000:00:1f.2-ata-2',
});
const nvme = disk({
  name: '/dev/nvme0n1', model: 'INTEL SSDPE2KX010T8', size: 10 * GiB + 512, rotational: false, wwn: 'eui.0123',
  serial: 'PHLJ0001', by_path: '/dev/disk/by-path/pci-0000:5e:00.0-nvme-1',
});
const vda = disk({ name: '/dev/vda', model: '', size: 10 * GiB, rotational: true, serial: '', vendor: '0x1af4' });
const all = [sda, sdb, nvme, vda];

const names = (hints: unknown) => findDevicesByHints(all, hints).map((d) => d.name);

describe('grammar (specs_matcher)', () => {
  it('tokenises every operator', () => {
    for (const op of ['==', '=', '!=', '<in>', '>=', '<=', '>', '<', 's==', 's!=', 's<=', 's<', 's>=', 's>']) {
      expect(parseSpec(`${op} x`)).toEqual([op, 'x']);
    }
    expect(parseSpec('<or> a <or> b <or> c')).toEqual(['<or>', 'a', 'b', 'c']);
    expect(parseSpec('<all-in> a b')).toEqual(['<all-in>', 'a', 'b']);
    expect(parseSpec('plain')).toEqual(['plain']);
  });

  it('reproduces pyparsing quirks', () => {
    expect(parseSpec('s==foo')).toEqual(['s==', 'foo']); // no space needed
    expect(parseSpec('<or>')).toEqual(['<', 'or>']); // '<' wins when <or> has no operand
    expect(parseSpec('s== a s== b')).toEqual(['s==', 'a']); // stops after the first unary
    expect(parseSpec('<or> a <or>')).toEqual(['<or>', 'a']);
    expect(() => parseSpec('==')).toThrow();
    expect(() => parseSpec('<in>')).toThrow();
  });

  it('matches like specs_matcher.match', () => {
    expect(matchSpec('abc', 's== abc')).toBe(true);
    expect(matchSpec('abc', 's!= abc')).toBe(false);
    expect(matchSpec('abd', 's> abc')).toBe(true);
    expect(matchSpec('abc', 's>= abc')).toBe(true);
    expect(matchSpec('abb', 's< abc')).toBe(true);
    expect(matchSpec('abc', 's<= abb')).toBe(false);
    expect(matchSpec('foobar', '<in> oba')).toBe(true);
    expect(matchSpec('b', '<or> a <or> b')).toBe(true);
    expect(matchSpec('c', '<or> a <or> b')).toBe(false);
    expect(matchSpec(10, '= 5')).toBe(true); // legacy '=' is '>='
    expect(matchSpec(10, '== 10')).toBe(true);
    expect(matchSpec(10, '!= 10')).toBe(false);
    expect(matchSpec(10, '> 9.5')).toBe(true);
    expect(matchSpec(10, '< 10')).toBe(false);
    expect(matchSpec(10, '<= 10')).toBe(true);
    expect(matchSpec(10, '>= 11')).toBe(false);
    expect(matchSpec('x', 'x')).toBe(true); // no operator: plain equality
    expect(matchSpec(10, 's== 10')).toBe(false); // number vs string is never equal in Python
    expect(() => matchSpec(10, '<in> 1')).toThrow();
    expect(() => matchSpec('abc', '>= 1')).toThrow(); // float('abc')
    expect(() => matchSpec('x', '<all-in> x')).toThrow();
  });

  it('implements Python float() and quote()', () => {
    expect(pyFloat(' 1_000.5 ')).toBe(1000.5);
    expect(pyFloat('1e3')).toBe(1000);
    expect(pyFloat('-inf')).toBe(-Infinity);
    expect(() => pyFloat('')).toThrow();
    expect(() => pyFloat('1__0')).toThrow();
    expect(pyQuote('a b/c~d-e_f.g')).toBe('a%20b/c~d-e_f.g');
    expect(pyQuote('x:y<z>é')).toBe('x%3Ay%3Cz%3E%C3%A9');
  });
});

describe('parseRootDeviceHints', () => {
  it('returns null without hints', () => {
    expect(parseRootDeviceHints(undefined)).toBeNull();
    expect(parseRootDeviceHints(null)).toBeNull();
    expect(parseRootDeviceHints({})).toBeNull();
  });

  it('normalises string hints: lower case, url-quoted, s== added', () => {
    expect(parseRootDeviceHints({ model: 'Foo Bar' })).toEqual({ model: 's== foo%20bar' });
    expect(parseRootDeviceHints({ serial: '  ABC  ' })).toEqual({ serial: 's== abc' });
    expect(parseRootDeviceHints({ vendor: 's!= ATA' })).toEqual({ vendor: 's!= ata' });
    expect(parseRootDeviceHints({ model: '<or> A b <or> C' })).toEqual({ model: '<or> a%20b <or> c' });
    expect(parseRootDeviceHints({ hctl: '<in> 0:0' })).toEqual({ hctl: '<in> 0%3A0' });
    expect(parseRootDeviceHints({ name: '/dev/sda' })).toEqual({ name: 's== /dev/sda' });
    expect(parseRootDeviceHints({ serial: 's==foo s== bar' })).toEqual({ serial: 's== foo s== bar' });
    expect(parseRootDeviceHints({ model: '<or>' })).toEqual({ model: '< or%3E' });
  });

  it('keeps int hints as given, adding == to bare numbers', () => {
    expect(parseRootDeviceHints({ size: 10 })).toEqual({ size: '== 10' });
    expect(parseRootDeviceHints({ size: '10' })).toEqual({ size: '== 10' });
    expect(parseRootDeviceHints({ size: '>= 100' })).toEqual({ size: '>= 100' });
    expect(parseRootDeviceHints({ size: '<or> 10 <or> 20' })).toEqual({ size: '<or> 10 <or> 20' });
    expect(parseRootDeviceHints({ size: '1_0' })).toEqual({ size: '== 1_0' });
  });

  it('turns rotational into a boolean', () => {
    for (const v of [true, 'true', 'True', 'yes', 'y', 'on', '1', 1, 't']) {
      expect(parseRootDeviceHints({ rotational: v })).toEqual({ rotational: true });
    }
    for (const v of [false, 'false', 'no', 'n', 'off', '0', 0, 'f']) {
      expect(parseRootDeviceHints({ rotational: v })).toEqual({ rotational: false });
    }
  });

  it('rejects invalid hints with clear errors', () => {
    expect(() => parseRootDeviceHints({ colour: 'red' })).toThrow(/The hints "colour" are invalid/);
    expect(() => parseRootDeviceHints({ model: 5 })).toThrow(/"model" is not a string value/);
    expect(() => parseRootDeviceHints({ model: '   ' })).toThrow(/"model" expression is empty/);
    expect(() => parseRootDeviceHints({ model: '==' })).toThrow(RootDeviceHintError);
    expect(() => parseRootDeviceHints({ size: 'big' })).toThrow(/"size" is not an integer value/);
    expect(() => parseRootDeviceHints({ size: 10.5 })).toThrow(/not an integer/);
    expect(() => parseRootDeviceHints({ size: '>= 0' })).toThrow(/"size" should be a positive integer/);
    expect(() => parseRootDeviceHints({ size: -1 })).toThrow(/positive integer/);
    expect(() => parseRootDeviceHints({ rotational: 'maybe' })).toThrow(/"rotational" is not a Boolean value/);
    expect(() => parseRootDeviceHints({ rotational: 2 })).toThrow(/not a Boolean/);
    expect(() => parseRootDeviceHints(['sda'])).toThrow(RootDeviceHintError);
  });
});

describe('matching every field', () => {
  it('size (GiB) with every numeric operator', () => {
    expect(names({ size: 500 })).toEqual(['/dev/sda']);
    expect(names({ size: '== 10' })).toEqual(['/dev/vda']); // nvme is 10 GiB + 512 B
    expect(names({ size: '>= 10' })).toEqual(['/dev/sda', '/dev/sdb', '/dev/nvme0n1', '/dev/vda']);
    expect(names({ size: '> 10' })).toEqual(['/dev/sda', '/dev/sdb', '/dev/nvme0n1']);
    expect(names({ size: '< 500' })).toEqual(['/dev/nvme0n1', '/dev/vda']);
    expect(names({ size: '<= 500' })).toEqual(['/dev/sda', '/dev/nvme0n1', '/dev/vda']);
    expect(names({ size: '!= 500' })).toEqual(['/dev/sdb', '/dev/nvme0n1', '/dev/vda']);
    expect(names({ size: '= 3000' })).toEqual(['/dev/sdb']);
    expect(names({ size: 11 })).toEqual([]);
    // Python compares a float with strings: s== and <or> never match, s!= always does.
    expect(names({ size: 's== 10' })).toEqual([]);
    expect(names({ size: '<or> 10 <or> 500' })).toEqual([]);
    expect(names({ size: 's!= 10' })).toHaveLength(4);
    expect(() => names({ size: '<in> 10' })).toThrow(RootDeviceHintError);
  });

  it('model, vendor, serial: case-insensitive equality, <in>, <or>, s!=, ordering', () => {
    expect(names({ model: 'samsung SSD 860' })).toEqual(['/dev/sda']);
    expect(names({ model: 's== ST4000NM0035' })).toEqual(['/dev/sdb']);
    expect(names({ model: '<in> intel' })).toEqual(['/dev/nvme0n1']);
    expect(names({ model: '<or> samsung ssd 860 <or> st4000nm0035' })).toEqual(['/dev/sda', '/dev/sdb']);
    // vda's empty model is skipped by every string hint, s!= included
    expect(names({ model: 's!= st4000nm0035' })).toEqual(['/dev/sda', '/dev/nvme0n1']);
    expect(names({ model: 's> m' })).toEqual(['/dev/sda', '/dev/sdb']);
    expect(names({ model: 's< m' })).toEqual(['/dev/nvme0n1']);
    expect(names({ vendor: 'ata' })).toEqual(['/dev/sda']);
    expect(names({ vendor: '0x1AF4' })).toEqual(['/dev/vda']);
    // a missing (null) field reads as Python's "None"
    expect(names({ vendor: 'none' })).toEqual(['/dev/nvme0n1']);
    expect(names({ serial: 'zc1abcde' })).toEqual(['/dev/sdb']);
    expect(names({ serial: '<in> phlj' })).toEqual(['/dev/nvme0n1']);
    expect(names({ serial: 's>= s' })).toEqual(['/dev/sda', '/dev/sdb']);
    expect(names({ serial: 's<= phlj0001' })).toEqual(['/dev/nvme0n1']);
  });

  it('wwn, wwn_with_extension, wwn_vendor_extension, hctl', () => {
    expect(names({ wwn: '0x5002538E40A1B2C3' })).toEqual(['/dev/sda']);
    expect(names({ wwn: '<in> 0x5' })).toEqual(['/dev/sda', '/dev/sdb']);
    expect(names({ wwn_with_extension: '0x5002538e40a1b2c3ffff' })).toEqual(['/dev/sda']);
    expect(names({ wwn_vendor_extension: '0xffff' })).toEqual(['/dev/sda']);
    expect(names({ wwn_vendor_extension: 's!= 0xffff' })).toEqual(['/dev/sdb', '/dev/nvme0n1', '/dev/vda']);
    expect(names({ hctl: '1:0:0:0' })).toEqual(['/dev/sdb']);
    expect(names({ hctl: '<or> 0:0:0:0 <or> 1:0:0:0' })).toEqual(['/dev/sda', '/dev/sdb']);
  });

  it('rotational', () => {
    expect(names({ rotational: true })).toEqual(['/dev/sdb', '/dev/vda']);
    expect(names({ rotational: 'false' })).toEqual(['/dev/sda', '/dev/nvme0n1']);
  });

  it('by_path', () => {
    expect(names({ by_path: '/dev/disk/by-path/pci-0000:00:1f.2-ata-2' })).toEqual(['/dev/sdb']);
    expect(names({ by_path: '<in> nvme' })).toEqual(['/dev/nvme0n1']);
  });

  it('name, with or without /dev/, or as a by-path link', () => {
    expect(names({ name: '/dev/sdb' })).toEqual(['/dev/sdb']);
    expect(names({ name: 'sdb' })).toEqual(['/dev/sdb']);
    expect(names({ name: 's== nvme0n1' })).toEqual(['/dev/nvme0n1']);
    expect(names({ name: '<or> sda <or> /dev/vda' })).toEqual(['/dev/sda', '/dev/vda']);
    expect(names({ name: '/dev/disk/by-path/pci-0000:5e:00.0-nvme-1' })).toEqual(['/dev/nvme0n1']);
    expect(names({ name: '<in> /dev/sd' })).toEqual(['/dev/sda', '/dev/sdb']);
    expect(names({ name: 's!= /dev/sda' })).toEqual(['/dev/sdb', '/dev/nvme0n1', '/dev/vda']);
    expect(names({ name: '/dev/sdz' })).toEqual([]);
  });

  it('all hints must match together', () => {
    expect(names({ size: '>= 10', rotational: false, model: '<in> intel' })).toEqual(['/dev/nvme0n1']);
    expect(names({ vendor: 'ata', rotational: true })).toEqual([]);
  });
});

describe('root device choice', () => {
  it('matchRootDeviceHints returns the first match or null', () => {
    expect(matchRootDeviceHints(all, { rotational: true })?.name).toBe('/dev/sdb');
    expect(matchRootDeviceHints(all, { serial: 'nope' })).toBeNull();
  });

  it('guessRootDisk picks the smallest disk of at least 4 GiB', () => {
    const small = disk({ name: '/dev/loop0', size: 64 * 1024 ** 2 });
    expect(guessRootDisk([sda, small, nvme, vda]).name).toBe('/dev/vda');
    expect(guessRootDisk([sdb, sda]).name).toBe('/dev/sda');
    expect(() => guessRootDisk([small])).toThrow(RootDeviceNotFoundError);
    expect(() => guessRootDisk([])).toThrow(/No devices found/);
  });

  it('selectRootDevice uses hints when given, else the default', () => {
    expect(selectRootDevice(all, undefined).name).toBe('/dev/vda');
    expect(selectRootDevice(all, {}).name).toBe('/dev/vda');
    expect(selectRootDevice(all, { name: 'sdb' }).name).toBe('/dev/sdb');
    expect(() => selectRootDevice(all, { serial: 'nope' })).toThrow(RootDeviceNotFoundError);
    expect(() => selectRootDevice(all, { colour: 'red' })).toThrow(/failed to validate/);
  });

  it('reads hints from instance_info before properties', () => {
    expect(rootDeviceHintsOf({ instance_info: { root_device: { name: 'a' } }, properties: { root_device: { name: 'b' } } }))
      .toEqual({ name: 'a' });
    expect(rootDeviceHintsOf({ instance_info: {}, properties: { root_device: { name: 'b' } } })).toEqual({ name: 'b' });
    expect(rootDeviceHintsOf({ instance_info: {}, properties: {} })).toBeUndefined();
  });
});
