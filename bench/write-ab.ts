/* eslint-disable @typescript-eslint/no-explicit-any */
// A/B of raw writes through the executable's API (issue 19): two agents
// (two --binary, or one --binary with two --env NAME=VALUE), each standalone on
// a loop device of its own, write the same image from the same server in turn
// (the order swapped every round), so both see the same machine load. Prints
// each write's time and peak VmRSS, and medians. On a machine shared with other
// work, compare only figures of one run.
//
//   npx tsx bench/write-ab.ts --binary A --binary B [--mib 2048] [--rounds 6]
//   npx tsx bench/write-ab.ts --binary A --env X=1 --env X=2
import { spawn, execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { closeSync, mkdtempSync, openSync, rmSync, writeSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { freePort } from '../test/helpers/ironic.ts';
import { ImageServer } from '../test/helpers/http-image-server.ts';
const { values } = parseArgs({ options: { binary: { type: 'string', multiple: true }, mib: { type: 'string', default: '2048' }, rounds: { type: 'string', default: '4' }, env: { type: 'string', multiple: true, default: [] } } });
const MiB = 1024 * 1024;
const mib = Number(values.mib);
const work = mkdtempSync(join(tmpdir(), 'fp19alt-'));
const raw = join(work, 'img.raw');
let sha = '';
{ const pool = randomBytes(16 * MiB); const fd = openSync(raw, 'w'); const h = createHash('sha256'); const b = Buffer.allocUnsafe(MiB);
  for (let off = 0; off < mib * MiB; off += MiB) { pool.copy(b, 0, off % (16 * MiB), (off % (16 * MiB)) + MiB); b.writeDoubleLE(off, 0); b.writeDoubleLE(Math.random(), 8); h.update(b); writeSync(fd, b); }
  closeSync(fd); sha = h.digest('hex'); }
const server = await new ImageServer().start();
const url = server.serve('/img.raw', { path: raw });
const variants = (values.binary!.length > 1 ? values.binary! : values.env!.map(() => values.binary![0]!)).map((bin, i) => ({ bin, env: values.env![i] }));
const loops: string[] = []; const kids: any[] = [];
try {
  for (const [i, v] of variants.entries()) {
    const disk = join(work, `disk${i}`); execFileSync('truncate', ['-s', `${Math.max(6144, mib + 1024)}M`, disk]);
    const loop = execFileSync('losetup', ['-f', '--show', '--direct-io=on', disk]).toString().trim(); loops.push(loop);
    const port = await freePort();
    const env: Record<string, string> = { ...process.env as any, METAL_AGENT_LOG_LEVEL: 'warn' };
    if (v.env) { const [k, val] = v.env.split('='); env[k!] = val!; }
    const child = spawn(resolve(v.bin), ['--standalone', '--no-enable-auto-tls', '--cmdline-file', '/dev/null', '--listen-host', '127.0.0.1', '--listen-port', String(port), '--allowed-devices', loop], { stdio: 'ignore', env });
    kids.push({ child, url: `http://127.0.0.1:${port}`, loop, label: `${v.bin} ${v.env ?? ''}`, times: [] as number[], peaks: [] as number[] });
  }
  for (const k of kids) for (;;) { if (await fetch(`${k.url}/v1/status`).then((r) => r.ok, () => false)) break; await sleep(50); }
  const rss = (pid: number) => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) / 1024;
  for (let r = 0; r < Number(values.rounds); r++) {
    for (const k of (r % 2 ? [...kids].reverse() : kids)) {
      let peak = 0; const s = setInterval(() => (peak = Math.max(peak, rss(k.child.pid))), 20);
      const t0 = performance.now();
      const st = await (await fetch(`${k.url}/v1/commands/?wait=true`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ name: 'deploy.execute_deploy_step', params: { step: { interface: 'deploy', step: 'write_image', args: { image_info: { urls: [url], disk_format: 'raw', os_hash_algo: 'sha256', os_hash_value: sha, image_type: 'whole-disk' } } }, node: { uuid: 'x', properties: {}, instance_info: {}, driver_internal_info: {} }, ports: [] } }) })).json() as any;
      let d: any; for (;;) { d = await (await fetch(`${k.url}/v1/commands/${st.id}`)).json(); if (d.command_status !== 'RUNNING') break; await sleep(50); }
      const ms = performance.now() - t0; clearInterval(s);
      if (d.command_status !== 'SUCCEEDED') throw new Error(JSON.stringify(d.command_error));
      k.times.push(ms); k.peaks.push(peak);
      console.log(`round ${r + 1} ${k.label}: ${ms.toFixed(0)} ms, peak RSS ${peak.toFixed(1)} MiB, after ${rss(k.child.pid).toFixed(1)}`);
    }
  }
  const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  for (const k of kids) console.log(`${k.label}: median ${med(k.times).toFixed(0)} ms (${(mib / (med(k.times) / 1000)).toFixed(0)} MiB/s) over ${k.times.length}, times ${k.times.map((t: number) => t.toFixed(0)).join(' ')}`);
} finally {
  for (const k of kids) { k.child.kill('SIGTERM'); if (k.child.exitCode === null) await new Promise((r) => k.child.once('exit', r)); }
  await server.stop(); for (const l of loops) execFileSync('losetup', ['-d', l]); rmSync(work, { recursive: true, force: true });
}
