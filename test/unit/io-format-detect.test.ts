import { describe, expect, it } from 'vitest';
import { decideFormat, inspectHead, INSPECT_BYTES } from '../../src/io/format-detect.ts';
import { ImageFormatError } from '../../src/io/errors.ts';

function qcow2Header(opts: { version?: number; backing?: bigint; incompat?: bigint; size?: bigint } = {}): Buffer {
  const b = Buffer.alloc(INSPECT_BYTES);
  b.write('QFI\xfb', 0, 'latin1');
  b.writeUInt32BE(opts.version ?? 3, 4);
  b.writeBigUInt64BE(opts.backing ?? 0n, 8);
  b.writeUInt32BE(16, 20); // 64 KiB clusters
  b.writeBigUInt64BE(opts.size ?? 1n << 30n, 24);
  b.writeBigUInt64BE(opts.incompat ?? 0n, 72);
  return b;
}

const policy = { permitted: ['raw', 'qcow2', 'iso'], deepInspection: true };

describe('inspectHead', () => {
  it('reads a clean qcow2 header and its virtual size', () => {
    expect(inspectHead(qcow2Header())).toEqual({ format: 'qcow2', virtualSize: 1 << 30 });
  });

  it('flags backing files, external data files, corrupt and unknown feature bits', () => {
    expect(inspectHead(qcow2Header({ backing: 512n })).unsafe).toMatch(/backing file/);
    expect(inspectHead(qcow2Header({ incompat: 1n << 2n })).unsafe).toMatch(/external data file/);
    expect(inspectHead(qcow2Header({ incompat: 1n << 1n })).unsafe).toMatch(/corrupt/);
    expect(inspectHead(qcow2Header({ incompat: 1n << 9n })).unsafe).toMatch(/unknown incompatible/);
    // dirty, compression type and extended L2 are understood by qemu-img: fine.
    expect(inspectHead(qcow2Header({ incompat: 0b11001n })).unsafe).toBeUndefined();
    expect(inspectHead(qcow2Header({ version: 1 })).format).toBe('qcow');
    expect(inspectHead(qcow2Header({ version: 7 })).unsafe).toMatch(/version 7/);
  });

  it('recognises the other formats by magic', () => {
    const at = (sig: number[] | string, off = 0) => {
      const b = Buffer.alloc(INSPECT_BYTES);
      (typeof sig === 'string' ? Buffer.from(sig, 'latin1') : Buffer.from(sig)).copy(b, off);
      return inspectHead(b).format;
    };
    expect(at('KDMV')).toBe('vmdk');
    expect(at('conectix')).toBe('vhd');
    expect(at('vhdxfile')).toBe('vhdx');
    expect(at([0x7f, 0x10, 0xda, 0xbe], 0x40)).toBe('vdi');
    expect(at('QED\x00')).toBe('qed');
    expect(at('LUKS\xba\xbe')).toBe('luks');
    expect(at([0x1f, 0x8b, 8])).toBe('gzip');
    expect(at([0x28, 0xb5, 0x2f, 0xfd])).toBe('zstd');
    expect(at([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00])).toBe('xz');
    expect(at('BZh9')).toBe('bzip2');
    expect(at('CD001', 0x8001)).toBe('iso');
    expect(at([0x55, 0xaa], 510)).toBe('raw');
    expect(inspectHead(Buffer.from('short')).format).toBe('raw');
  });

  it('treats a vmdk descriptor (external extents) as unsafe', () => {
    expect(inspectHead(Buffer.from('# Disk DescriptorFile\ncreateType="monolithicFlat"\n')).unsafe).toMatch(/other files/);
  });
});

describe('decideFormat', () => {
  it('accepts matching, permitted formats', () => {
    expect(decideFormat({ format: 'raw' }, { ...policy, declared: 'raw' })).toBe('raw');
    expect(decideFormat({ format: 'qcow2', virtualSize: 1 }, { ...policy, declared: 'qcow2' })).toBe('qcow2');
    expect(decideFormat({ format: 'iso' }, { ...policy, declared: 'raw' })).toBe('iso');
    expect(decideFormat({ format: 'raw' }, policy)).toBe('raw');
  });

  it('refuses a mismatch between declaration and content', () => {
    expect(() => decideFormat({ format: 'qcow2' }, { ...policy, declared: 'raw' })).toThrow(ImageFormatError);
    expect(() => decideFormat({ format: 'raw' }, { ...policy, declared: 'qcow2' })).toThrow(/declared as 'qcow2'/);
  });

  it('refuses formats outside permitted_image_formats and unsafe images', () => {
    expect(() => decideFormat({ format: 'vmdk' }, policy)).toThrow(/not permitted/);
    expect(() => decideFormat({ format: 'vmdk' }, { ...policy, permitted: ['vmdk'] })).toThrow(/cannot be converted/);
    expect(() => decideFormat({ format: 'qcow2', unsafe: 'has a backing file' }, policy)).toThrow(/backing file/);
  });

  it('trusts the declaration when deep inspection is off', () => {
    const off = { ...policy, deepInspection: false };
    expect(decideFormat({ format: 'qcow2', unsafe: 'x' }, { ...off, declared: 'raw' })).toBe('raw');
    expect(decideFormat({ format: 'raw' }, { ...off, declared: 'qcow2' })).toBe('qcow2');
    expect(() => decideFormat({ format: 'raw' }, { ...off, declared: 'vhdx' })).toThrow(ImageFormatError);
    // Nothing declared: inspection decides even when switched off.
    expect(() => decideFormat({ format: 'qcow2', unsafe: 'bad' }, off)).toThrow(/bad/);
  });
});
