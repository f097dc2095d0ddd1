import { output, spawnStreaming } from '../system/exec.ts';
import { log } from '../log.ts';
import { ImageFormatError, ImageWriteError } from './errors.ts';

// Converting a qcow2 onto the disk with qemu-img, from a staged copy.
//
// Why staging and not qemu-img reading HTTP itself (curl driver): qemu's reads
// would be a second, independent download that we cannot hash, so a server
// could hand qemu other bytes than the ones we verified, and qemu would be the
// first to parse them. Staging lets us hash, verify and inspect the exact bytes
// qemu then reads, before the deploy area of the disk is touched.
//
// Where to stage without RAM (a ramdisk's /tmp is RAM): on the target disk
// itself, past the image's virtual size, when the disk has room for both (the
// usual case: disks are much larger than images). qemu-img then reads the
// staging range [offset, offset+len) and writes [0, virtualSize): disjoint, so
// conversion cannot overwrite its own input. If the disk is too small, stage to
// a file in stagingDir instead, only when that filesystem has room for it
// (write-image.ts checks its free space first and caps the file at it).

export interface StagedImage {
  /** Device or file holding the staged image. */
  path: string;
  offset: number;
  /** Staged length in bytes. */
  length: number;
  format: 'qcow2';
}

/**
 * A json: pseudo-filename that opens exactly the staged byte range, with the
 * format forced (no probing) and backing files disabled whatever the header says.
 */
export function stagedSpec(s: StagedImage, hostDevice: boolean): string {
  // qemu's raw driver wants a 512-multiple size; bytes past the image are
  // ignored by qcow2 (everything is reached through its own offsets).
  const size = Math.ceil(s.length / 512) * 512;
  // locking off: when staged on the target disk, qemu-img would otherwise
  // refuse to open the same device as source and (disjoint) destination.
  const file = { driver: hostDevice ? 'host_device' : 'file', filename: s.path, locking: 'off' };
  const spec = { driver: s.format, backing: null, file: { driver: 'raw', offset: s.offset, size, file } };
  return `json:${JSON.stringify(spec)}`;
}

interface QemuInfo {
  format?: string;
  'virtual-size'?: number;
  'backing-filename'?: string;
  'format-specific'?: { data?: { 'data-file'?: string; corrupt?: boolean } };
}

/** Second opinion from qemu's own parser on the staged bytes (it does not open backing files for info). */
export async function checkStaged(spec: string, deviceSize: number): Promise<number> {
  let info: QemuInfo;
  try {
    info = JSON.parse(await output('qemu-img', ['info', '--output=json', spec], { timeoutMs: 120_000 })) as QemuInfo;
  } catch (err) {
    throw new ImageFormatError(`qemu-img cannot read the staged image: ${(err as Error).message}`, { cause: err });
  }
  if (info.format !== 'qcow2') throw new ImageFormatError(`qemu-img sees format '${info.format}', expected qcow2`);
  if (info['backing-filename']) throw new ImageFormatError('qcow2 image has a backing file');
  if (info['format-specific']?.data?.['data-file']) throw new ImageFormatError('qcow2 image has an external data file');
  const vsize = info['virtual-size'] ?? 0;
  if (vsize > deviceSize) throw new ImageFormatError(`qcow2 virtual size ${vsize} exceeds the device (${deviceSize})`);
  return vsize;
}

/** qemu-img convert onto `device` (existing, not truncated: -n), reporting percent done. */
export async function convertOnto(
  spec: string,
  device: string,
  onPercent?: (pct: number) => void,
  signal?: AbortSignal,
): Promise<void> {
  // -t none: O_DIRECT writes bypass the page cache (we fdatasync anyway);
  // -W: out-of-order writes let qemu-img keep several requests in flight.
  const args = ['convert', '-p', '-n', '-t', 'none', '-W', '-O', 'raw', spec, device];
  const { child, done } = spawnStreaming('qemu-img', args, { timeoutMs: 0, stdin: 'ignore' });
  const onAbort = () => child.kill();
  signal?.addEventListener('abort', onAbort, { once: true });
  child.stdout?.on('data', (buf: Buffer) => {
    const m = /\((\d+(?:\.\d+)?)\/100%\)[^(]*$/.exec(buf.toString());
    if (m && onPercent) onPercent(Number(m[1]));
  });
  try {
    await done;
  } catch (err) {
    log.error({ err: (err as Error).message }, 'qemu-img convert failed');
    throw new ImageWriteError(`converting image onto ${device} failed: ${(err as Error).message}`, { cause: err });
  } finally {
    signal?.removeEventListener('abort', onAbort);
  }
}
