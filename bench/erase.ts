// Erase throughput on a loop disk: our zeroing path (zeroDevice, i.e.
// BLKZEROOUT via `blkdiscard --zeroout`, the pass erase_devices ends with)
// against `dd if=/dev/zero of=DEV bs=4M oflag=direct` on the same device, in
// one run, alternating which goes first, medians of each. Also shows shred's
// random pass (the part no offload can speed up) for scale.
//
//   npx tsx bench/erase.ts [sizeMiB=512] [rounds=5]
//
// Creates its own sparse file and loop device and removes both at the end.

import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { overwriteDevice, zeroDevice } from '../src/system/erase/overwrite.ts';
import { Guard } from '../src/system/safety.ts';

const sizeMiB = Number(process.argv[2] ?? 512);
const rounds = Number(process.argv[3] ?? 5);

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

async function timed(fn: () => Promise<void> | void): Promise<number> {
  const t0 = process.hrtime.bigint();
  await fn();
  return Number(process.hrtime.bigint() - t0) / 1e9;
}

const dir = mkdtempSync(join(tmpdir(), 'erase-bench-'));
const file = join(dir, 'disk.img');
let loop = '';

function cleanup() {
  if (loop) spawnSync('losetup', ['-d', loop]);
  rmSync(dir, { recursive: true, force: true });
}
process.on('SIGINT', () => {
  cleanup();
  process.exit(130);
});

try {
  execFileSync('truncate', ['-s', `${sizeMiB}M`, file]);
  loop = execFileSync('losetup', ['-f', '--show', file]).toString().trim();
  const guard = new Guard({ inRamdisk: false, allowedDevices: [loop], allowPowerActions: false });
  const wz = readFileSync(`/sys/block/${loop.slice(5)}/queue/write_zeroes_max_bytes`, 'utf8').trim();
  console.log(`device ${loop}, ${sizeMiB} MiB, write_zeroes_max_bytes=${wz}, ${rounds} rounds`);

  const ours: number[] = [];
  const dd: number[] = [];
  const runOurs = async () => ours.push(await timed(() => zeroDevice(loop, guard)));
  const runDd = async () =>
    dd.push(await timed(() => {
      // count= stops at the end of the device (dd would otherwise fail with ENOSPC there).
      execFileSync('dd', ['if=/dev/zero', `of=${loop}`, 'bs=4M', `count=${Math.ceil(sizeMiB / 4)}`, 'oflag=direct', 'status=none'], {
        stdio: 'ignore',
      });
    }));
  for (let i = 0; i < rounds; i++) {
    // Alternate the order so neither side always inherits the other's state.
    if (i % 2 === 0) {
      await runOurs();
      await runDd();
    } else {
      await runDd();
      await runOurs();
    }
  }
  const shred = await timed(() => overwriteDevice(loop, guard, { iterations: 1, zeroize: false }));

  const mbps = (s: number) => (sizeMiB / s).toFixed(0);
  const mo = median(ours);
  const md = median(dd);
  console.log(`ours (blkdiscard --zeroout): median ${mo.toFixed(3)} s = ${mbps(mo)} MiB/s   [${ours.map((x) => x.toFixed(3)).join(', ')}]`);
  console.log(`dd bs=4M oflag=direct:       median ${md.toFixed(3)} s = ${mbps(md)} MiB/s   [${dd.map((x) => x.toFixed(3)).join(', ')}]`);
  console.log(`ratio (dd time / ours time): ${(md / mo).toFixed(2)}x`);
  console.log(`for scale, one shred random pass: ${shred.toFixed(3)} s = ${mbps(shred)} MiB/s`);
} finally {
  cleanup();
}
