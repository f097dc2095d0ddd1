import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, mkdtempSync, openSync, readFileSync, readSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { listBlockDevices } from '../../src/hardware/block-devices.ts';
import type { BlockDevice } from '../../src/hardware/types.ts';
import { log } from '../../src/log.ts';
import { eraseBlockDevice } from '../../src/system/erase/erase-block-device.ts';
import { eraseOptionsFromNode } from '../../src/system/erase/options.ts';
import { Guard, SafetyError } from '../../src/system/safety.ts';
import { step as eraseDevicesStep } from '../../steps/erase-devices.ts';
import { step as expressStep } from '../../steps/erase-devices-express.ts';
import type { StepContext } from '../../steps/types.ts';

// erase_devices on real (loop) disks: two allowed 64 MiB disks full of random
// data, a third one the guard does not allow, and a read-only one. After the
// step, every byte of the backing files is checked: zeroes when zeroize is on,
// no block left as it was when it is off. Concurrency is counted from the
// progress messages the step sends.

const SIZE = 64 * 1024 * 1024;
const BLOCK = 4096;

let dir: string;
const files: string[] = [];
const loops: string[] = [];
const originals = new Map<string, Buffer>();

function attach(file: string, readOnly = false): string {
  const args = readOnly ? ['-r', '-f', '--show', file] : ['-f', '--show', file];
  const dev = execFileSync('losetup', args).toString().trim();
  loops.push(dev);
  return dev;
}

/** Fill a backing file (through its loop device, so the loop sees it) with fresh random bytes. */
function fillRandom(dev: string): Buffer {
  const data = randomBytes(SIZE);
  const fd = openSync(dev, 'r+');
  try {
    writeFileSync(fd, data);
  } finally {
    closeSync(fd);
  }
  execFileSync('blockdev', ['--flushbufs', dev]);
  originals.set(dev, data);
  return data;
}

/** The bytes as the backing file holds them: an independent view of what reached the "disk". */
function backingContent(dev: string): Buffer {
  execFileSync('blockdev', ['--flushbufs', dev]);
  const file = readFileSync(`/sys/block/${dev.slice(5)}/loop/backing_file`, 'utf8').trim();
  const fd = openSync(file, 'r');
  try {
    const buf = Buffer.alloc(SIZE);
    readSync(fd, buf, 0, SIZE, 0);
    return buf;
  } finally {
    closeSync(fd);
  }
}

function countUnchangedBlocks(before: Buffer, after: Buffer): number {
  let same = 0;
  for (let off = 0; off < SIZE; off += BLOCK) {
    if (before.subarray(off, off + BLOCK).equals(after.subarray(off, off + BLOCK))) same++;
  }
  return same;
}

const isAllZero = (b: Buffer) => b.every((x) => x === 0);

function context(allowed: string[], driverInternalInfo: Record<string, unknown>) {
  const guard = new Guard({ inRamdisk: false, allowedDevices: allowed, allowPowerActions: false });
  const progress: string[] = [];
  const ctx: StepContext = {
    log,
    guard,
    node: { uuid: 'erase-test-node', driver_internal_info: driverInternalInfo },
    ports: [],
    lookupConfig: {},
    disks: async () => guard.filterDisks(await listBlockDevices({ includeLoop: true })),
    rootDevice: async () => {
      throw new Error('not used');
    },
    progress: (m) => progress.push(m),
    signal: new AbortController().signal,
    deployState: { partitionUuids: {}, kernelParams: [] },
    options: { imageDownloadRetries: 0, imageDownloadRetryIntervalSec: 0, imageDownloadTimeoutSec: 0 },
  };
  return { ctx, progress };
}

/** Highest number of disks being erased at once, from "erase started/finished" progress. */
function maxConcurrent(progress: string[]): number {
  let running = 0;
  let max = 0;
  for (const m of progress) {
    if (m.startsWith('erase started:')) max = Math.max(max, ++running);
    if (m.startsWith('erase finished:') || m.startsWith('erase failed:')) running--;
  }
  return max;
}

let a: string;
let b: string;
let outsider: string;
let readOnly: string;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'erase-test-'));
  for (const name of ['a', 'b', 'outsider', 'ro']) {
    const f = join(dir, `${name}.img`);
    execFileSync('truncate', ['-s', String(SIZE), f]);
    files.push(f);
  }
  a = attach(files[0]!);
  b = attach(files[1]!);
  outsider = attach(files[2]!);
  readOnly = attach(files[3]!, true);
});

afterAll(() => {
  for (const dev of loops) {
    try {
      execFileSync('losetup', ['-d', dev]);
    } catch {
      // already gone
    }
  }
  rmSync(dir, { recursive: true, force: true });
});

describe('erase_devices on loop disks', () => {
  it('offers only the allowed disks to the step', async () => {
    const { ctx } = context([a, b], {});
    expect((await ctx.disks()).map((d) => d.name).sort()).toEqual([a, b].sort());
  });

  it('shred pass + zeroes, one disk at a time: both read back as zeroes', async () => {
    fillRandom(a);
    fillRandom(b);
    const { ctx, progress } = context([a, b], {
      agent_erase_devices_iterations: 1, agent_erase_devices_zeroize: true, disk_erasure_concurrency: 1,
    });
    const result = await eraseDevicesStep.run(ctx, {});
    expect(result).toEqual({ [a]: 'overwrite', [b]: 'overwrite' });
    expect(isAllZero(backingContent(a))).toBe(true);
    expect(isAllZero(backingContent(b))).toBe(true);
    expect(maxConcurrent(progress)).toBe(1);
  });

  it('zeroes only, two disks at a time', async () => {
    fillRandom(a);
    fillRandom(b);
    const { ctx, progress } = context([a, b], {
      agent_erase_devices_iterations: 0, agent_erase_devices_zeroize: true, disk_erasure_concurrency: 2,
    });
    await eraseDevicesStep.run(ctx, {});
    expect(isAllZero(backingContent(a))).toBe(true);
    expect(isAllZero(backingContent(b))).toBe(true);
    expect(maxConcurrent(progress)).toBe(2);
    expect(progress.filter((m) => m.startsWith('erase finished:'))).toHaveLength(2);
  });

  it('random passes without zeroize overwrite every block', async () => {
    const before = fillRandom(a);
    const { ctx } = context([a], {
      agent_erase_devices_iterations: 2, agent_erase_devices_zeroize: false, disk_erasure_concurrency: 4,
    });
    await eraseDevicesStep.run(ctx, {});
    const after = backingContent(a);
    expect(countUnchangedBlocks(before, after)).toBe(0);
    expect(isAllZero(after)).toBe(false);
  });

  it('never touches a disk the guard does not allow', async () => {
    const before = fillRandom(outsider);
    const dev = (await listBlockDevices({ includeLoop: true })).find((d) => d.name === outsider) as BlockDevice;
    expect(dev).toBeDefined();
    const guard = new Guard({ inRamdisk: false, allowedDevices: [a, b], allowPowerActions: false });
    await expect(eraseBlockDevice(dev, eraseOptionsFromNode({}), guard)).rejects.toBeInstanceOf(SafetyError);
    expect(backingContent(outsider).equals(before)).toBe(true);
  });

  it('read-only disks fail the step, or are skipped when agent_erase_skip_read_only is set', async () => {
    const before = backingContent(readOnly);
    const refused = context([readOnly], { agent_erase_skip_read_only: false });
    await expect(eraseDevicesStep.run(refused.ctx, {})).rejects.toThrow(/read-only/);
    const skipped = context([readOnly], { agent_erase_skip_read_only: true });
    expect(await eraseDevicesStep.run(skipped.ctx, {})).toEqual({ [readOnly]: 'skipped' });
    expect(backingContent(readOnly).equals(before)).toBe(true);
  });
});

describe('erase_devices_express on loop disks', () => {
  it('removes metadata at both ends and leaves the middle (loops promise nothing about discard)', async () => {
    const before = fillRandom(b);
    const { ctx } = context([b], {});
    expect(await expressStep.run(ctx, {})).toEqual({ [b]: 'metadata' });
    const after = backingContent(b);
    const MiB = 1024 * 1024;
    expect(isAllZero(after.subarray(0, MiB))).toBe(true);
    expect(isAllZero(after.subarray(SIZE - MiB))).toBe(true);
    expect(after.subarray(MiB, SIZE - MiB).equals(before.subarray(MiB, SIZE - MiB))).toBe(true);
  });
});
