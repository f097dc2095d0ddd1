import { mkdtempSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { RAMDISK_MARKER, runningInRamdisk } from '../../src/system/safety.ts';

// Issue 21: a tmpfs root alone (a diskless host, a live system) must not make
// the agent treat every disk as its own. The ramdisk is recognised by the
// marker its build puts in the initramfs AND an in-memory root.

const dir = mkdtempSync(join(tmpdir(), 'mai-safety-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const TMPFS_ROOT = 'rootfs / rootfs rw 0 0\nnone / tmpfs rw,size=4096k 0 0\nproc /proc proc rw 0 0\n';
const RAMFS_ROOT = 'rootfs / rootfs rw 0 0\nproc /proc proc rw 0 0\n';
const EXT4_ROOT = 'rootfs / rootfs rw 0 0\n/dev/sda1 / ext4 rw,relatime 0 0\nproc /proc proc rw 0 0\n';

function mounts(name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}

const marker = join(dir, 'metal-agent-ramdisk');
writeFileSync(marker, 'metal-agent ramdisk\n');
const noMarker = join(dir, 'absent');
const markerDir = join(dir, 'a-directory');
mkdirSync(markerDir);

describe('ramdisk detection', () => {
  it('tmpfs root without the marker: not a ramdisk (a diskless host)', () => {
    expect(runningInRamdisk({ mountsPath: mounts('tmpfs', TMPFS_ROOT), markerPath: noMarker })).toBe(false);
    expect(runningInRamdisk({ mountsPath: mounts('rootfs', RAMFS_ROOT), markerPath: noMarker })).toBe(false);
  });

  it('tmpfs (or the kernel rootfs) root with the marker: the ramdisk', () => {
    expect(runningInRamdisk({ mountsPath: mounts('tmpfs', TMPFS_ROOT), markerPath: marker })).toBe(true);
    expect(runningInRamdisk({ mountsPath: mounts('rootfs', RAMFS_ROOT), markerPath: marker })).toBe(true);
  });

  it('ext4 root with the marker: not a ramdisk (a marker copied onto a disk-rooted host)', () => {
    expect(runningInRamdisk({ mountsPath: mounts('ext4', EXT4_ROOT), markerPath: marker })).toBe(false);
  });

  it('a directory where the marker should be, or an unreadable mount table: not a ramdisk', () => {
    expect(runningInRamdisk({ mountsPath: mounts('tmpfs', TMPFS_ROOT), markerPath: markerDir })).toBe(false);
    expect(runningInRamdisk({ mountsPath: join(dir, 'no-mounts'), markerPath: marker })).toBe(false);
  });

  it('this test machine is not a ramdisk', () => {
    expect(runningInRamdisk()).toBe(false);
  });

  it('the ramdisk build writes the marker the agent looks for into the initramfs', () => {
    const script = readFileSync(new URL('../../ramdisk-build/ramdisk.sh', import.meta.url), 'utf8');
    expect(script).toContain(`>"$root${RAMDISK_MARKER}"`);
  });
});
