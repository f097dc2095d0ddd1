import { mkdir, mkdtemp, readFile, rm, writeFile, truncate } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { output, run } from '../../src/system/exec.ts';

// Builds config drives the way Ironic does (an ISO9660 or vfat filesystem
// labelled config-2 holding openstack/latest/*.json, gzipped and base64
// encoded), plus small loop disks to write them to. Shared by the partition,
// config drive and deploy tests.

export interface ConfigDriveContent {
  metaData: Record<string, unknown>;
  userData?: string;
  networkData?: Record<string, unknown>;
  /** Extra files, path relative to the drive root -> content (e.g. to make a big drive). */
  extraFiles?: Record<string, string | Buffer>;
}

function filesOf(content: ConfigDriveContent): Record<string, string | Buffer> {
  const files: Record<string, string | Buffer> = {
    'openstack/latest/meta_data.json': JSON.stringify(content.metaData),
    ...content.extraFiles,
  };
  if (content.userData !== undefined) files['openstack/latest/user_data'] = content.userData;
  if (content.networkData) files['openstack/latest/network_data.json'] = JSON.stringify(content.networkData);
  return files;
}

/** The raw (uncompressed) config drive image as a Buffer. */
export async function buildConfigDriveImage(
  content: ConfigDriveContent,
  format: 'iso9660' | 'vfat' = 'iso9660',
): Promise<Buffer> {
  const work = await mkdtemp(join(tmpdir(), 'cd-build-'));
  try {
    const files = filesOf(content);
    const image = join(work, 'drive.img');
    if (format === 'iso9660') {
      const root = join(work, 'root');
      for (const [rel, data] of Object.entries(files)) {
        await mkdir(dirname(join(root, rel)), { recursive: true });
        await writeFile(join(root, rel), data);
      }
      // The same options Ironic/nova use for config drive ISOs.
      await run('genisoimage', ['-o', image, '-ldots', '-allow-lowercase', '-allow-multidot', '-l', '-quiet', '-J', '-r', '-V', 'config-2', root]);
    } else {
      const total = Object.values(files).reduce((n, d) => n + Buffer.byteLength(d), 0);
      const mib = Math.max(2, Math.ceil((total * 1.2) / 2 ** 20) + 1);
      await writeFile(image, '');
      await truncate(image, mib * 2 ** 20);
      await run('mkfs.vfat', ['-n', 'CONFIG-2', image]);
      const dirs = new Set<string>();
      for (const rel of Object.keys(files)) {
        const parts = rel.split('/').slice(0, -1);
        for (let i = 1; i <= parts.length; i++) dirs.add(parts.slice(0, i).join('/'));
      }
      for (const d of [...dirs].sort()) await run('mmd', ['-i', image, `::${d}`]);
      for (const [rel, data] of Object.entries(files)) {
        const src = join(work, 'f');
        await writeFile(src, data);
        await run('mcopy', ['-i', image, src, `::${rel}`]);
      }
    }
    return await readFile(image);
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

/** Ironic's wire form: base64(gzip(image)). */
export function encodeConfigDrive(image: Buffer): string {
  return gzipSync(image).toString('base64');
}

export async function buildEncodedConfigDrive(
  content: ConfigDriveContent,
  format: 'iso9660' | 'vfat' = 'iso9660',
): Promise<string> {
  return encodeConfigDrive(await buildConfigDriveImage(content, format));
}

/**
 * Reads one file from the config drive filesystem in a byte range of a disk,
 * without mounting (this kernel may lack iso9660/vfat): isoinfo for ISO9660,
 * mtools for vfat, through a read-only offset loop device.
 */
export async function readFileInRange(device: string, offset: number, size: number, path: string): Promise<string> {
  const loop = (await output('losetup', ['-f', '--show', '-r', '-o', String(offset), '--sizelimit', String(size), device])).trim();
  try {
    const type = (await output('blkid', ['-p', '-o', 'value', '-s', 'TYPE', loop])).trim();
    if (type === 'iso9660') return await output('isoinfo', ['-i', loop, '-R', '-x', '/' + path.replace(/^\//, '')]);
    if (type === 'vfat') {
      return await output('mtype', ['-i', loop, '::' + path.replace(/^\//, '')], { env: { MTOOLS_SKIP_CHECK: '1' } });
    }
    throw new Error(`unexpected filesystem '${type}' at offset ${offset} of ${device}`);
  } finally {
    await run('losetup', ['-d', loop]).catch(() => undefined);
  }
}
