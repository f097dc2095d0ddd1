// Does the agent's RSS climb from one write_image to the next (issue 19)? One
// agent (standalone, one loop device allowed) writes the same image N times
// through its API; after each write (and a settle) VmRSS and its anonymous part
// split by mapping kind from /proc/PID/smaps: [heap] (glibc's main arena, brk),
// thread arenas (64 MiB-aligned), big anonymous mappings (>= 4 MiB: the 8 MiB
// write buffers, mmapped by malloc) and the rest (V8's pages, stacks...).
// The agent runs with the ramdisk's environment (ramdisk-build/agent.env).
// --bundle runs the bundle under node with bench/footprint-probe.cjs; --probe
// then also prints V8's heap and ArrayBuffers after a full GC.
//
//   npx tsx bench/footprint-repeat.ts --binary build/metal-agent [--mib 256] [--writes 6] [--format raw|qcow2|both] [--settle 3]
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { ImageServer } from '../test/helpers/http-image-server.ts';
import { REPO_ROOT } from '../test/helpers/netns.ts';
import { MiB, directLoop, removeRig, makeImage, procStatus, sha256File, startStandaloneAgent, withPeaks, writeThroughApi, type TestImage } from './standalone-writes.ts';

const { values } = parseArgs({
  options: {
    binary: { type: 'string' },
    bundle: { type: 'string' },
    mib: { type: 'string', default: '256' },
    writes: { type: 'string', default: '6' },
    format: { type: 'string', default: 'raw' },
    settle: { type: 'string', default: '3' },
    probe: { type: 'boolean', default: false },
  },
});
/** Anonymous RSS by mapping kind: [heap] (main arena), 64 MiB-reserved arenas, big (>=4 MiB) other, small. */
function smaps(pid: number) {
  const text = readFileSync(`/proc/${pid}/smaps`, 'utf8');
  const out = { heap: 0, arena: 0, big: 0, small: 0, stack: 0, nmaps: 0 };
  let cur: { name: string; size: number; start: number; end: number } | undefined;
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const m = /^([0-9a-f]+)-([0-9a-f]+) \S+ \S+ \S+ (\d+)\s*(.*)$/.exec(lines[i]!);
    if (m) {
      cur = { start: parseInt(m[1]!, 16), end: parseInt(m[2]!, 16), name: m[4]!.trim(), size: 0 };
      cur.size = (cur.end - cur.start) / 1024;
      continue;
    }
    const r = /^Rss:\s+(\d+) kB/.exec(lines[i]!);
    if (r && cur) {
      const rss = Number(r[1]);
      if (cur.name === '[heap]') out.heap += rss;
      else if (cur.name.startsWith('[stack')) out.stack += rss;
      else if (cur.name === '') {
        out.nmaps++;
        // glibc thread arenas: 64 MiB aligned heaps (rw part + ---p rest)
        if (cur.start % (64 * MiB) === 0 && cur.size <= 65536) out.arena += rss;
        else if (cur.size >= 4096) out.big += rss;
        else out.small += rss;
      }
    }
  }
  return out;
}

const mib = Number(values.mib);
const work = mkdtempSync(join(tmpdir(), 'fp19-'));
const server = await new ImageServer().start();
let loop: string | undefined;
const fmtK = (k: number) => (k / 1024).toFixed(1);
try {
  const raw = join(work, 'img.raw');
  const sha = makeImage(raw, mib * MiB);
  const images: TestImage[] = [];
  if (values.format !== 'qcow2') images.push({ label: 'raw', url: server.serve('/img.raw', { path: raw }), format: 'raw', sha });
  if (values.format !== 'raw') {
    const qcow = join(work, 'img.qcow2');
    execFileSync('qemu-img', ['convert', '-f', 'raw', '-O', 'qcow2', raw, qcow]);
    images.push({ label: 'qcow2', url: server.serve('/img.qcow2', { path: qcow }), format: 'qcow2', sha: sha256File(qcow) });
  }
  loop = directLoop(join(work, 'disk.img'), Math.max(6144, 2 * mib + 1024));
  const out = join(work, 'probe.json');
  const agent = values.bundle
    ? await startStandaloneAgent(resolve(values.bundle), loop, {
        env: { FP_OUT: out },
        argv0: { command: process.execPath, args: ['--expose-gc', '-r', join(REPO_ROOT, 'bench', 'footprint-probe.cjs')] },
      })
    : await startStandaloneAgent(resolve(values.binary!), loop);
  const child = agent.child;
  const probe = async () => {
    if (!values.bundle || !values.probe) return '';
    rmSync(out, { force: true });
    child.kill('SIGUSR2');
    for (let i = 0; i < 100; i++) {
      try {
        const t = readFileSync(out, 'utf8'); if (t.endsWith('}')) { const p = JSON.parse(t) as { heap: { used_heap_size: number; total_physical_size: number; malloced_memory: number }; mem: NodeJS.MemoryUsage }; return ` | afterGC heap ${fmtK(p.heap.used_heap_size / 1024)}/${fmtK(p.heap.total_physical_size / 1024)} ext ${fmtK(p.mem.external / 1024)} ab ${fmtK(p.mem.arrayBuffers / 1024)} malloced ${fmtK(p.heap.malloced_memory / 1024)}`; }
      } catch {
        // not written yet
      }
      await sleep(50);
    }
    return ' | probe timeout';
  };
  const line = (label: string) => {
    const s = procStatus(child.pid!);
    const m = smaps(child.pid!);
    return `${label}: RSS ${fmtK(s.rss)} anon ${fmtK(s.anon)} file ${fmtK(s.file)} thr ${s.threads} | [heap] ${fmtK(m.heap)} arenas ${fmtK(m.arena)} big ${fmtK(m.big)} small ${fmtK(m.small)} nmaps ${m.nmaps}`;
  };
  try {
    await sleep(5000);
    console.log(line('idle     ') + (await probe()));
    const n = Number(values.writes);
    for (let i = 0; i < n; i++) {
      for (const img of images) {
        const { result, peakRss: peak } = await withPeaks(child.pid!, () => writeThroughApi(agent.url, img));
        const ms = result.ms;
        await sleep(Number(values.settle) * 1000);
        console.log(line(`${img.label} #${i + 1} `) + ` | peak ${fmtK(peak)} ${(ms / 1000).toFixed(1)} s` + (await probe()));
      }
    }
  } finally {
    await agent.stop();
  }
} finally {
  await removeRig(server, [loop], work);
}
