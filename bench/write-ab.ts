// A/B of raw writes through the executable's API (issue 19): two agents
// (two --binary, or one --binary with two --env NAME=VALUE), each standalone on
// a loop device of its own, write the same image from the same server in turn
// (the order swapped every round), so both see the same machine load. Prints
// each write's time and peak VmRSS, and medians. On a machine shared with other
// work, compare only figures of one run. Each agent gets the ramdisk's
// environment (ramdisk-build/agent.env) first: `--env MALLOC_ARENA_MAX=` undoes one of it.
// --busybox serves the image with `busybox httpd` (sendfile) instead of the bench's own Node
// server, so that the server takes little of the CPU the agents share it with, as a remote one would.
//
//   npx tsx bench/write-ab.ts --binary A --binary B [--mib 2048] [--rounds 4]
//   npx tsx bench/write-ab.ts --binary A --env X=1 --env X=2
//   npx tsx bench/write-ab.ts --binary A --binary B --busybox
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { ImageServer } from '../test/helpers/http-image-server.ts';
import {
  MiB, directLoop, removeRig, makeImage, procStatus, startBusyboxServer, startStandaloneAgent, withPeaks, writeThroughApi,
  type BusyboxServer, type StandaloneAgent,
} from './standalone-writes.ts';

const { values } = parseArgs({
  options: {
    binary: { type: 'string', multiple: true },
    mib: { type: 'string', default: '2048' },
    rounds: { type: 'string', default: '4' },
    env: { type: 'string', multiple: true, default: [] },
    busybox: { type: 'boolean', default: false },
  },
});
const binaries = values.binary ?? [];
const envs = values.env ?? [];
if (!(binaries.length === 2 || (binaries.length === 1 && envs.length === 2))) {
  throw new Error('two --binary, or one --binary and two --env NAME=VALUE');
}
const variants = binaries.length === 2 ? binaries.map((bin, i) => ({ bin, env: envs[i] })) : envs.map((env) => ({ bin: binaries[0]!, env }));
const mib = Number(values.mib);
const work = mkdtempSync(join(tmpdir(), 'metal-agent-write-ab-'));
const server = await new ImageServer().start();
let busybox: BusyboxServer | undefined;
const loops: string[] = [];
const kids: Array<{ agent: StandaloneAgent; label: string; times: number[]; peaks: number[] }> = [];
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
try {
  const raw = join(work, 'img.raw');
  const img = { label: `${mib} MiB raw`, url: server.serve('/img.raw', { path: raw }), format: 'raw', sha: makeImage(raw, mib * MiB) };
  if (values.busybox) {
    busybox = await startBusyboxServer(work);
    img.url = `${busybox.url}/img.raw`;
  }
  for (const [i, v] of variants.entries()) {
    const loop = directLoop(join(work, `disk${i}`), Math.max(6144, mib + 1024));
    loops.push(loop);
    const env: Record<string, string> = {};
    if (v.env) {
      const eq = v.env.indexOf('=');
      if (eq <= 0) throw new Error(`--env ${v.env}: not NAME=VALUE`);
      env[v.env.slice(0, eq)] = v.env.slice(eq + 1);
    }
    kids.push({ agent: await startStandaloneAgent(resolve(v.bin), loop, { env }), label: `${v.bin} ${v.env ?? ''}`, times: [], peaks: [] });
  }
  const MiBof = (kib: number) => (kib / 1024).toFixed(1);
  for (let r = 0; r < Number(values.rounds); r++) {
    for (const k of r % 2 ? [...kids].reverse() : kids) {
      const pid = k.agent.child.pid!;
      const { result, peakRss } = await withPeaks(pid, () => writeThroughApi(k.agent.url, img));
      k.times.push(result.ms);
      k.peaks.push(peakRss);
      console.log(`round ${r + 1} ${k.label}: ${result.ms.toFixed(0)} ms, peak RSS ${MiBof(peakRss)} MiB, after ${MiBof(procStatus(pid).rss)}`);
    }
  }
  for (const k of kids) {
    const t = median(k.times);
    console.log(`${k.label}: median ${t.toFixed(0)} ms (${(mib / (t / 1000)).toFixed(0)} MiB/s) over ${k.times.length}, peak RSS median ${MiBof(median(k.peaks))} MiB; times ${k.times.map((x) => x.toFixed(0)).join(' ')}`);
  }
} finally {
  for (const k of kids) await k.agent.stop();
  await busybox?.stop();
  await removeRig(server, loops, work);
}
