// Does the agent's RSS climb from one write_image to the next (issue 19)? One
// agent (standalone, one loop device allowed) writes the same image N times
// through its API; after each write (and a settle) VmRSS and its anonymous part
// split by mapping kind from /proc/PID/smaps: [heap] (glibc's main arena, brk),
// thread arenas (64 MiB-aligned), big anonymous mappings (>= 4 MiB: the 8 MiB
// write buffers, mmapped by malloc) and the rest (V8's pages, stacks...).
// --bundle runs the bundle under node with bench/footprint-probe.cjs; --probe
// then also prints V8's heap and ArrayBuffers after a full GC.
//
//   npx tsx bench/footprint-repeat.ts --binary build/metal-agent [--mib 256] [--writes 6] [--format raw|qcow2|both] [--settle 3]
import { spawn, execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { freePort } from '../test/helpers/ironic.ts';
import { ImageServer } from '../test/helpers/http-image-server.ts';
import { REPO_ROOT } from '../test/helpers/netns.ts';

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
const MiB = 1024 * 1024;

function makeImage(path: string, size: number): string {
  const pool = randomBytes(16 * MiB);
  const fd = openSync(path, 'w');
  const hash = createHash('sha256');
  const block = Buffer.allocUnsafe(MiB);
  for (let off = 0; off < size; off += MiB) {
    pool.copy(block, 0, off % (16 * MiB), (off % (16 * MiB)) + MiB);
    block.writeDoubleLE(off, 0);
    block.writeDoubleLE(Math.random(), 8);
    hash.update(block);
    writeSync(fd, block);
  }
  closeSync(fd);
  return hash.digest('hex');
}

function status(pid: number) {
  const s = readFileSync(`/proc/${pid}/status`, 'utf8');
  const f = (n: string) => Number(new RegExp(`${n}:\\s+(\\d+)`).exec(s)?.[1] ?? NaN);
  return { rss: f('VmRSS'), anon: f('RssAnon'), file: f('RssFile'), threads: f('Threads') };
}

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

async function command(url: string, body: object): Promise<Record<string, unknown>> {
  const r = await fetch(`${url}/v1/commands/?wait=true`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  const result = (await r.json()) as Record<string, unknown>;
  if (!r.ok) throw new Error(`POST /v1/commands: ${r.status} ${JSON.stringify(result)}`);
  return result;
}
async function finished(url: string, id: string): Promise<Record<string, unknown>> {
  for (;;) {
    const r = (await (await fetch(`${url}/v1/commands/${id}`)).json()) as Record<string, unknown>;
    if (r.command_status !== 'RUNNING') return r;
    await sleep(100);
  }
}

const mib = Number(values.mib);
const work = mkdtempSync(join(tmpdir(), 'fp19-'));
const server = await new ImageServer().start();
let loop: string | undefined;
const fmtK = (k: number) => (k / 1024).toFixed(1);
try {
  const raw = join(work, 'img.raw');
  const sha = makeImage(raw, mib * MiB);
  const images: Array<{ label: string; url: string; format: string; sha: string }> = [];
  if (values.format !== 'qcow2') images.push({ label: 'raw', url: server.serve('/img.raw', { path: raw }), format: 'raw', sha });
  if (values.format !== 'raw') {
    const qcow = join(work, 'img.qcow2');
    execFileSync('qemu-img', ['convert', '-f', 'raw', '-O', 'qcow2', raw, qcow]);
    images.push({ label: 'qcow2', url: server.serve('/img.qcow2', { path: qcow }), format: 'qcow2', sha: execFileSync('sha256sum', [qcow]).toString().split(' ')[0]! });
  }
  const diskFile = join(work, 'disk.img');
  execFileSync('truncate', ['-s', `${Math.max(6144, 2 * mib + 1024)}M`, diskFile]);
  loop = execFileSync('losetup', ['-f', '--show', '--direct-io=on', diskFile]).toString().trim();
  const port = await freePort();
  const args = ['--standalone', '--no-enable-auto-tls', '--cmdline-file', '/dev/null', '--listen-host', '127.0.0.1', '--listen-port', String(port), '--allowed-devices', loop];
  const out = join(work, 'probe.json');
  const child = values.bundle
    ? spawn(process.execPath, ['--expose-gc', '-r', join(REPO_ROOT, 'bench', 'footprint-probe.cjs'), resolve(values.bundle), ...args], { stdio: 'ignore', env: { ...process.env, METAL_AGENT_LOG_LEVEL: 'warn', FP_OUT: out } })
    : spawn(resolve(values.binary!), args, { stdio: 'ignore', env: { ...process.env, METAL_AGENT_LOG_LEVEL: 'warn' } });
  const url = `http://127.0.0.1:${port}`;
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
    const s = status(child.pid!);
    const m = smaps(child.pid!);
    return `${label}: RSS ${fmtK(s.rss)} anon ${fmtK(s.anon)} file ${fmtK(s.file)} thr ${s.threads} | [heap] ${fmtK(m.heap)} arenas ${fmtK(m.arena)} big ${fmtK(m.big)} small ${fmtK(m.small)} nmaps ${m.nmaps}`;
  };
  try {
    for (;;) {
      if (child.exitCode !== null) throw new Error(`exited ${child.exitCode}`);
      if (await fetch(`${url}/v1/status`).then((r) => r.ok, () => false)) break;
      await sleep(50);
    }
    await sleep(5000);
    console.log(line('idle     ') + (await probe()));
    const n = Number(values.writes);
    for (let i = 0; i < n; i++) {
      for (const img of images) {
        let peak = 0;
        const sampler = setInterval(() => (peak = Math.max(peak, status(child.pid!).rss)), 20);
        const t0 = performance.now();
        const started = await command(url, {
          name: 'deploy.execute_deploy_step',
          params: {
            step: { interface: 'deploy', step: 'write_image', args: { image_info: { urls: [img.url], disk_format: img.format, os_hash_algo: 'sha256', os_hash_value: img.sha, image_type: 'whole-disk' } } },
            node: { uuid: 'fp', properties: {}, instance_info: {}, driver_internal_info: {} }, ports: [],
          },
        });
        const done = await finished(url, started.id as string);
        const ms = performance.now() - t0;
        clearInterval(sampler);
        if (done.command_status !== 'SUCCEEDED') throw new Error(JSON.stringify(done.command_error));
        await sleep(Number(values.settle) * 1000);
        console.log(line(`${img.label} #${i + 1} `) + ` | peak ${fmtK(peak)} ${(ms / 1000).toFixed(1)} s` + (await probe()));
      }
    }
  } finally {
    child.kill('SIGTERM');
    if (child.exitCode === null) await new Promise((r) => child.once('exit', r));
  }
} finally {
  await server.stop();
  if (loop) execFileSync('losetup', ['-d', loop]);
  rmSync(work, { recursive: true, force: true });
}
