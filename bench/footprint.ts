// Where the agent's memory goes at idle (issue 19): the executable after lookup,
// heartbeating against a stand-in conductor on loopback, beside the same runtime
// running an empty script. docs/footprint.md has the figures and their reading.
//
//   npx tsx bench/footprint.ts [--binary build/metal-agent] [--bundle build/metal-agent.cjs]
//                              [--settle 15] [--runs 3] [--node-flags="--max-semi-space-size=16"]
//                              [--deploy-mib 2048]
//
// --binary runs the SEA executable; --bundle runs the bundle under this machine's
// node with a probe preloaded (bench/footprint-probe.cjs) that reports V8's heap
// after a full GC. Both print VmRSS split into anonymous memory (heap, stacks,
// malloc) and file pages (the executable's mapped text).
//
// --deploy-mib N (root: a loop device) also has each --binary write a raw and a
// qcow2 image of N MiB and of N/8 MiB through its API (standalone,
// deploy.execute_deploy_step write_image, sha256 checked), sampling VmRSS every
// 20 ms: idle before the command and the peak during it.
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { startFakeIronic, until } from '../test/helpers/fake-ironic.ts';
import { freePort } from '../test/helpers/ironic.ts';
import { REPO_ROOT } from '../test/helpers/netns.ts';
import { agentEnv } from '../test/helpers/agent-env.ts';

const { values } = parseArgs({
  options: {
    binary: { type: 'string', multiple: true, default: [] },
    bundle: { type: 'string', multiple: true, default: [] },
    settle: { type: 'string', default: '15' },
    runs: { type: 'string', default: '3' },
    'node-flags': { type: 'string', default: '' },
    'no-tls': { type: 'boolean', default: false },
    'deploy-mib': { type: 'string' },
  },
});
const PROBE = join(REPO_ROOT, 'bench', 'footprint-probe.cjs');
const settleMs = Number(values.settle) * 1000;
const nodeFlags = values['node-flags'].split(/\s+/).filter(Boolean);
/**
 * The SEA reads node flags from NODE_OPTIONS only, and the ramdisk's environment (agent.env) sets
 * it: --node-flags replaces that value (--node-flags=--max-semi-space-size=16 measures without
 * the ramdisk's cap).
 */
const flagsEnv = (): Record<string, string> => (nodeFlags.length ? { NODE_OPTIONS: nodeFlags.join(' ') } : {});

interface Sample {
  rssKiB: number;
  anonKiB: number;
  fileKiB: number;
  hwmKiB: number;
  threads: number;
  probe?: ProbeReport;
}

interface ProbeReport {
  mem: NodeJS.MemoryUsage;
  spaces: Array<[string, number, number]>;
  heap: { total_physical_size: number; used_heap_size: number; malloced_memory: number; external_memory: number };
}

function readStatus(pid: number): Omit<Sample, 'probe'> {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const field = (name: string) => Number(new RegExp(`${name}:\\s+(\\d+)`).exec(status)?.[1] ?? NaN);
  return {
    rssKiB: field('VmRSS'),
    anonKiB: field('RssAnon'),
    fileKiB: field('RssFile') + field('RssShmem'),
    hwmKiB: field('VmHWM'),
    threads: field('Threads'),
  };
}

/** Runs `cmd` until the conductor saw a lookup and two heartbeats, waits `settleMs`, samples. */
async function agentIdle(cmd: string, pre: string[], probe: boolean): Promise<Sample> {
  let token = '';
  const ironic = await startFakeIronic({
    lookupToken: () => (token = token || 'f'.repeat(40)),
    nodeToken: () => token,
    heartbeatTimeoutSec: 10, // heartbeats every 3-6 s
  });
  const port = await freePort();
  const work = mkdtempSync(join(tmpdir(), 'metal-agent-footprint-'));
  const out = join(work, 'probe.json');
  const child = spawn(cmd, [
    ...pre,
    '--api-url', ironic.url, '--cmdline-file', '/dev/null',
    '--listen-host', '127.0.0.1', '--listen-port', String(port), '--advertise-port', String(port),
    ...(values['no-tls'] ? ['--no-enable-auto-tls'] : []),
  ], { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, ...agentEnv(), ...flagsEnv(), FP_OUT: out } });
  let err = '';
  child.stderr!.on('data', (d: Buffer) => (err = (err + d.toString()).slice(-4000)));
  try {
    await until('lookup and two accepted heartbeats', () => {
      if (child.exitCode !== null) throw new Error(`agent exited ${child.exitCode}: ${err}`);
      return ironic.heartbeats().filter((h) => h.status === 202).length >= 2;
    }, 60_000);
    await sleep(settleMs);
    const sample: Sample = readStatus(child.pid!);
    if (probe) {
      child.kill('SIGUSR2');
      await until('probe report', () => {
        try {
          return readFileSync(out, 'utf8').endsWith('}');
        } catch {
          return false;
        }
      }, 10_000);
      sample.probe = JSON.parse(readFileSync(out, 'utf8')) as ProbeReport;
    }
    return sample;
  } finally {
    child.kill('SIGTERM');
    if (child.exitCode === null) await new Promise((r) => child.once('exit', r));
    await ironic.close();
    rmSync(work, { recursive: true, force: true });
  }
}

/** The runtime alone: `node` running an empty script, sampled after the same settle. */
async function emptyRuntime(probe: boolean): Promise<Sample> {
  const work = mkdtempSync(join(tmpdir(), 'metal-agent-footprint-'));
  const script = join(work, 'empty.cjs');
  const out = join(work, 'probe.json');
  writeFileSync(script, 'setInterval(() => {}, 1 << 30);\n');
  const child = spawn(process.execPath, [...nodeFlags, ...(probe ? ['--expose-gc', '-r', PROBE] : []), script], {
    stdio: 'ignore', env: { ...process.env, FP_OUT: out },
  });
  try {
    await sleep(Math.min(settleMs, 5000));
    const sample: Sample = readStatus(child.pid!);
    if (probe) {
      child.kill('SIGUSR2');
      await until('probe report', () => {
        try {
          return readFileSync(out, 'utf8').endsWith('}');
        } catch {
          return false;
        }
      }, 10_000);
      sample.probe = JSON.parse(readFileSync(out, 'utf8')) as ProbeReport;
    }
    return sample;
  } finally {
    child.kill('SIGTERM');
    if (child.exitCode === null) await new Promise((r) => child.once('exit', r));
    rmSync(work, { recursive: true, force: true });
  }
}

const MiB = (kib: number) => (kib / 1024).toFixed(1);
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

function print(label: string, samples: Sample[]): void {
  const m = (k: keyof Omit<Sample, 'probe'>) => median(samples.map((s) => s[k]));
  console.log(`${label}: RSS ${MiB(m('rssKiB'))} MiB = anonymous ${MiB(m('anonKiB'))} + file ${MiB(m('fileKiB'))}; peak ${MiB(m('hwmKiB'))} MiB; ${m('threads')} threads (median of ${samples.length})`);
  const p = samples.at(-1)?.probe;
  if (p) {
    const spaces = p.spaces.filter(([, , phys]) => phys > 0).map(([n, used, phys]) => `${n} ${MiB(used)}/${MiB(phys)}`).join(', ');
    console.log(`  after full GC: V8 heap used ${MiB(p.heap.used_heap_size / 1024)} MiB of ${MiB(p.heap.total_physical_size / 1024)} MiB resident; V8 malloc ${MiB(p.heap.malloced_memory / 1024)} MiB; external (Buffers) ${MiB(p.mem.external / 1024)} MiB, of which ArrayBuffers ${MiB(p.mem.arrayBuffers / 1024)} MiB`);
    console.log(`  heap spaces used/resident MiB: ${spaces}`);
  }
}

const runs = Number(values.runs);
console.log(`runtime ${process.execPath} ${process.version}; flags: ${nodeFlags.join(' ') || '(none)'}; TLS ${values['no-tls'] ? 'off' : 'auto'}; settle ${values.settle} s`);
const base: Sample[] = [];
for (let i = 0; i < runs; i++) base.push(await emptyRuntime(values.bundle.length > 0));
print('node, empty script', base);
for (const bundle of values.bundle) {
  const s: Sample[] = [];
  for (let i = 0; i < runs; i++) s.push(await agentIdle(process.execPath, [...nodeFlags, '--expose-gc', '-r', PROBE, resolve(bundle)], true));
  print(`node ${bundle}, idle after lookup`, s);
}
for (const binary of values.binary) {
  const s: Sample[] = [];
  for (let i = 0; i < runs; i++) s.push(await agentIdle(resolve(binary), [], false));
  print(`SEA ${binary}, idle after lookup`, s);
}

if (values['deploy-mib']) {
  const { deployPeaks } = await import('./footprint-deploy.ts');
  for (const binary of values.binary) await deployPeaks(resolve(binary), Number(values['deploy-mib']), flagsEnv());
}
