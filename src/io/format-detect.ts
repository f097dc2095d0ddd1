import { ImageFormatError } from './errors.ts';

// Deep inspection of an image's first bytes, done before anything is written
// (the lesson of CVE-2024-44082: never let qemu-img or the disk be the first to
// look at an untrusted header). We look at magic numbers, and for qcow2 at the
// header fields that make qemu open other files (backing file, external data
// file) or that we do not understand (unknown incompatible feature bits).

export type ImageFormat =
  | 'raw'
  | 'iso'
  | 'qcow2'
  | 'qcow'
  | 'qed'
  | 'vmdk'
  | 'vhd'
  | 'vhdx'
  | 'vdi'
  | 'luks'
  | 'gzip'
  | 'zstd'
  | 'xz'
  | 'bzip2';

export type Compression = 'gzip' | 'zstd' | 'xz';

/** Enough for every signature we check (ISO's is at 32 KiB + 1). */
export const INSPECT_BYTES = 64 * 1024;

export interface Inspection {
  format: ImageFormat;
  /** Disk size the image expands to, when the header says (qcow2, vhd, vdi, vmdk). */
  virtualSize?: number;
  /** Set when the image must not be written/converted, with the reason. */
  unsafe?: string;
}

const startsWith = (b: Buffer, sig: string | number[], at = 0) => {
  const s = typeof sig === 'string' ? Buffer.from(sig, 'latin1') : Buffer.from(sig);
  return b.length >= at + s.length && b.subarray(at, at + s.length).equals(s);
};

// qcow2 incompatible feature bits (docs/interop/qcow2.txt).
const QCOW2_DIRTY = 1n << 0n;
const QCOW2_CORRUPT = 1n << 1n;
const QCOW2_EXTERNAL_DATA = 1n << 2n;
const QCOW2_COMPRESSION_TYPE = 1n << 3n;
const QCOW2_EXTENDED_L2 = 1n << 4n;
const QCOW2_KNOWN_INCOMPAT = QCOW2_DIRTY | QCOW2_CORRUPT | QCOW2_EXTERNAL_DATA | QCOW2_COMPRESSION_TYPE | QCOW2_EXTENDED_L2;

function inspectQcow(head: Buffer): Inspection {
  if (head.length < 72) return { format: 'qcow2', unsafe: 'qcow2 header is truncated' };
  const version = head.readUInt32BE(4);
  if (version === 1) return { format: 'qcow', unsafe: 'qcow version 1 images are not supported' };
  const virtualSize = Number(head.readBigUInt64BE(24));
  const out: Inspection = { format: 'qcow2', virtualSize };
  if (version !== 2 && version !== 3) return { ...out, unsafe: `unknown qcow2 version ${version}` };
  const backingOffset = head.readBigUInt64BE(8);
  if (backingOffset !== 0n) return { ...out, unsafe: 'qcow2 image has a backing file' };
  const clusterBits = head.readUInt32BE(20);
  if (clusterBits < 9 || clusterBits > 21) return { ...out, unsafe: `qcow2 cluster_bits ${clusterBits} out of range` };
  if (version === 3) {
    if (head.length < 80) return { ...out, unsafe: 'qcow2 v3 header is truncated' };
    const incompat = head.readBigUInt64BE(72);
    if (incompat & ~QCOW2_KNOWN_INCOMPAT) {
      return { ...out, unsafe: `qcow2 has unknown incompatible features 0x${incompat.toString(16)}` };
    }
    if (incompat & QCOW2_EXTERNAL_DATA) return { ...out, unsafe: 'qcow2 image has an external data file' };
    if (incompat & QCOW2_CORRUPT) return { ...out, unsafe: 'qcow2 image is marked corrupt' };
  }
  return out;
}

function inspectVmdk(head: Buffer): Inspection {
  // Sparse extent header: capacity in 512-byte sectors at offset 12 (LE).
  const virtualSize = head.length >= 20 ? Number(head.readBigUInt64LE(12)) * 512 : undefined;
  const descriptor = head.subarray(0, Math.min(head.length, INSPECT_BYTES)).toString('latin1');
  const createType = /createType\s*=\s*"([^"]+)"/.exec(descriptor)?.[1];
  const out: Inspection = { format: 'vmdk', virtualSize };
  if (createType && !['monolithicSparse', 'streamOptimized'].includes(createType)) {
    return { ...out, unsafe: `vmdk createType '${createType}' refers to other files` };
  }
  return out;
}

/** What the first bytes of an image are. `head` should be INSPECT_BYTES long unless the image is shorter. */
export function inspectHead(head: Buffer): Inspection {
  if (startsWith(head, 'QFI\xfb')) return inspectQcow(head);
  if (startsWith(head, 'QED\x00')) return { format: 'qed', unsafe: 'qed images are not supported' };
  if (startsWith(head, 'KDMV')) return inspectVmdk(head);
  if (startsWith(head, '# Disk DescriptorFile')) {
    return { format: 'vmdk', unsafe: 'vmdk descriptor file refers to other files' };
  }
  if (startsWith(head, 'conectix')) {
    return { format: 'vhd', virtualSize: head.length >= 56 ? Number(head.readBigUInt64BE(48)) : undefined };
  }
  if (startsWith(head, 'vhdxfile')) return { format: 'vhdx' };
  if (startsWith(head, [0x7f, 0x10, 0xda, 0xbe], 0x40)) {
    return { format: 'vdi', virtualSize: head.length >= 0x178 ? Number(head.readBigUInt64LE(0x170)) : undefined };
  }
  if (startsWith(head, 'LUKS\xba\xbe')) return { format: 'luks' };
  if (startsWith(head, [0x1f, 0x8b])) return { format: 'gzip' };
  if (startsWith(head, [0x28, 0xb5, 0x2f, 0xfd])) return { format: 'zstd' };
  if (startsWith(head, [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00])) return { format: 'xz' };
  if (startsWith(head, 'BZh') && head.length > 3 && head[3]! >= 0x31 && head[3]! <= 0x39) return { format: 'bzip2' };
  if (startsWith(head, 'CD001', 0x8001)) return { format: 'iso' };
  return { format: 'raw' };
}

export function isCompression(f: ImageFormat): f is Compression {
  return f === 'gzip' || f === 'zstd' || f === 'xz';
}

/** Formats written byte for byte (an ISO is a raw sector image to qemu and firmware). */
export function isRawLike(f: ImageFormat): boolean {
  return f === 'raw' || f === 'iso';
}

/** Formats that qemu-img converts onto the disk. */
export const CONVERTIBLE: ReadonlySet<ImageFormat> = new Set(['qcow2']);

export interface FormatPolicy {
  /** Format the image was declared as (Glance disk_format), if any. */
  declared?: string;
  /** [conductor]permitted_image_formats. */
  permitted: readonly string[];
  /** False when [conductor]disable_deep_image_inspection is set: trust `declared`. */
  deepInspection: boolean;
}

/**
 * Decide how to treat an image whose (decompressed) head inspected as `found`.
 * Returns the format to process it as, or throws ImageFormatError.
 */
export function decideFormat(found: Inspection, policy: FormatPolicy): ImageFormat {
  const declared = policy.declared?.toLowerCase();
  if (!policy.deepInspection && declared) {
    // The operator switched inspection off: the declaration is the truth.
    if (declared === 'raw' || declared === 'iso') return declared;
    if (CONVERTIBLE.has(declared as ImageFormat)) return declared as ImageFormat;
    throw new ImageFormatError(`disk_format '${declared}' cannot be written by this agent`);
  }
  if (found.unsafe) throw new ImageFormatError(`refusing ${found.format} image: ${found.unsafe}`);
  if (!policy.permitted.map((p) => p.toLowerCase()).includes(found.format)) {
    throw new ImageFormatError(
      `image format '${found.format}' is not permitted (permitted_image_formats: ${policy.permitted.join(', ')})`,
    );
  }
  if (declared && declared !== found.format && !(declared === 'raw' && found.format === 'iso')) {
    throw new ImageFormatError(`image declared as '${declared}' but its content is '${found.format}'`);
  }
  if (!isRawLike(found.format) && !CONVERTIBLE.has(found.format)) {
    throw new ImageFormatError(`image format '${found.format}' cannot be converted by this agent`);
  }
  return found.format;
}
