import { closeSync, openSync, readSync, statSync } from 'node:fs';
import { connect } from 'node:tls';
import { execa } from 'execa';
import { expect } from 'vitest';
import { readFileInRange } from './configdrive.ts';

// Checks a deploy test makes on the disk it deployed to, and on the agent
// Ironic talked to. Shared by the 21.4 and 29.0 suites.

export function readRange(path: string, offset: number, length: number): Buffer {
  const fd = openSync(path, 'r');
  try {
    const buf = Buffer.alloc(length);
    readSync(fd, buf, 0, length, offset);
    return buf;
  } finally {
    closeSync(fd);
  }
}

/** The disk matches the image everywhere except the MBR's partition table, where the config drive was added. */
export function expectDiskHoldsImage(disk: string, image: string): void {
  const size = statSync(image).size;
  const onDisk = readRange(disk, 0, size);
  const want = readRange(image, 0, size);
  expect(onDisk.subarray(0, 446).equals(want.subarray(0, 446))).toBe(true);
  expect(onDisk.subarray(512).equals(want.subarray(512))).toBe(true);
}

/**
 * The hostname in the config drive, read without mounting from the partition
 * labelled config-2: the last one after a whole disk image, the one before
 * root in a partition-image layout (as ironic-lib orders them).
 */
export async function configDriveHostname(disk: string): Promise<string> {
  const { stdout } = await execa('sfdisk', ['-J', disk]);
  const parts: Array<{ start: number; size: number }> = JSON.parse(stdout).partitiontable.partitions;
  for (const p of parts) {
    const label = await execa('blkid', ['-p', '-O', String(p.start * 512), '-o', 'value', '-s', 'LABEL', disk], { reject: false });
    if (label.stdout.trim() !== 'config-2') continue;
    const meta = await readFileInRange(disk, p.start * 512, p.size * 512, 'openstack/latest/meta_data.json');
    return JSON.parse(meta).hostname;
  }
  throw new Error(`no partition labelled config-2 on ${disk}`);
}

/** The certificate (DER, base64) the agent serves on this port. */
export function servedCertificate(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const sock = connect({ host: '127.0.0.1', port, rejectUnauthorized: false }, () => {
      const der = sock.getPeerCertificate().raw;
      sock.end();
      resolve(der.toString('base64'));
    });
    sock.once('error', reject);
  });
}

/** A PEM's base64 body, comparable with servedCertificate(). */
export const pemBody = (pem: string): string => pem.replace(/-----[A-Z ]+-----/g, '').replace(/\s+/g, '');
