// Sizes and timings of the executable and the ramdisk (goals: ramdisk <= 60 MB
// compressed, agent idle RSS <= 60 MB, a 512 MiB node boots it).
//
//   npx tsx bench/ramdisk.ts [--runs 10] [--binary build/metal-agent ...] [--initrd F] [--no-vm]
//
// Needs `make binary kernel ramdisk`. Host start-up runs the executable with
// --standalone on 127.0.0.1 (no Ironic, no kernel command line, no devices).
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { createServer } from 'node:net';
import { dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { REPO_ROOT } from '../test/helpers/netns.ts';
import { DEFAULT_INITRD, startVm } from '../test/e2e/qemu.ts';
import { agentEnv } from '../test/helpers/agent-env.ts';

const { values } = parseArgs({
  options: {
    runs: { type: 'string', default: '10' },
    binary: { type: 'string', multiple: true, default: [join(REPO_ROOT, 'build', 'metal-agent')] },
    'no-vm': { type: 'boolean', default: false },
    initrd: { type: 'string', default: DEFAULT_INITRD },
  },
});
const runs = Number(values.runs);

const mb = (bytes: number) => `${(bytes / 1e6).toFixed(1)} MB`;
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function freePort(): Promise<number> {
  return await new Promise((resolve) => {
    const srv = createServer().listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}

/** VmRSS, and its anonymous part (heap, stacks) apart from mapped file pages (the executable). */
function rssKiB(pid: number): { total: number; anon: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const field = (name: string) => Number(new RegExp(`${name}:\\s+(\\d+)`).exec(status)?.[1] ?? NaN);
  return { total: field('VmRSS'), anon: field('RssAnon') };
}

/** One start of the executable: ms until GET /v1/status answers, and RSS 2 s later. */
async function hostStart(binary: string): Promise<{ ms: number; rssMiB: number; anonMiB: number }> {
  const port = await freePort();
  const t0 = performance.now();
  const child = spawn(binary, [
    '--standalone', '--no-enable-auto-tls', '--cmdline-file', '/dev/null',
    '--listen-host', '127.0.0.1', '--listen-port', String(port),
  ], { stdio: 'ignore', env: { ...process.env, ...agentEnv() } });
  try {
    for (;;) {
      if (child.exitCode !== null) throw new Error(`${binary} exited with ${child.exitCode}`);
      try {
        const r = await fetch(`http://127.0.0.1:${port}/v1/status`);
        await r.text();
        if (r.ok) break;
      } catch {
        // not listening yet
      }
      await sleep(2);
    }
    const ms = performance.now() - t0;
    await sleep(2000);
    const rss = rssKiB(child.pid!);
    return { ms, rssMiB: rss.total / 1024, anonMiB: rss.anon / 1024 };
  } finally {
    child.kill('SIGTERM');
    if (child.exitCode === null) await new Promise((r) => child.once('exit', r));
  }
}

async function vmBoot(): Promise<void> {
  const vm = await startVm({
    initrd: values.initrd,
    memoryMiB: 512,
    disks: [{ sizeMiB: 1024 }],
    kernelArgs: ['ipa-standalone=1', 'ipa-enable-auto-tls=0', 'metal.shell'],
  });
  try {
    await vm.waitForSerial(/"msg":"API listening"/, 600_000);
    const listening = vm.elapsedMs();
    const kernelDone = await vm.waitForSerial(/\[\s*([\d.]+)\] Run \/init as init process/, 1000).catch(() => undefined);
    for (;;) {
      const ok = await vm.httpGet('/v1/status', { timeoutSec: 2 }).then((r) => r.status === 200, () => false);
      if (ok) break;
      await sleep(200);
    }
    const answering = vm.elapsedMs();
    await sleep(10_000); // let start-up garbage settle before reading RSS
    const from = (await vm.serialText()).length;
    await vm.sendSerial('s=/proc/$(pidof metal-agent)/status; echo "RSS-""KB $(awk \'/VmRSS/ {print $2}\' $s) $(awk \'/RssAnon/ {print $2}\' $s) AVAIL-""KB $(awk \'/MemAvailable/ {print $2}\' /proc/meminfo)"\n');
    const m = await vm.waitForSerial(/RSS-KB (\d+) (\d+) AVAIL-KB (\d+)/, 30_000, from);
    console.log(`VM (TCG, 512 MiB): kernel handed over to /init at ${kernelDone ? `${kernelDone[1]} s (guest clock)` : '?'}`);
    console.log(`VM (TCG, 512 MiB): qemu start -> agent "API listening" on console: ${(listening / 1000).toFixed(1)} s`);
    console.log(`VM (TCG, 512 MiB): qemu start -> GET /v1/status answered from the network: ${(answering / 1000).toFixed(1)} s`);
    console.log(`VM (TCG, 512 MiB): agent idle RSS ${(Number(m[1]) / 1024).toFixed(1)} MiB, of which anonymous ${(Number(m[2]) / 1024).toFixed(1)} MiB; node MemAvailable ${(Number(m[3]) / 1024).toFixed(0)} MiB`);
  } finally {
    await vm.stop();
  }
}

const initrd = statSync(values.initrd).size;
console.log(`ramdisk ${values.initrd}: ${mb(initrd)} compressed (goal <= 60 MB)`);
const files = readFileSync(`${values.initrd}.files`, 'utf8').trim().split('\n');
const unpacked = files.reduce((sum, l) => sum + Number(l.split(' ')[0]), 0);
console.log(`ramdisk content: ${mb(unpacked)} in ${files.length} files (/usr lives in a squashfs, read on demand)`);
// The deploy ISO (make iso) carries kernel + ramdisk; BMCs cap virtual media size.
const iso = join(dirname(values.initrd), 'metal-agent.iso');
console.log(existsSync(iso) ? `deploy ISO ${iso}: ${mb(statSync(iso).size)} (goal <= 60 MB)` : `deploy ISO ${iso}: not built (make iso)`);
for (const binary of values.binary) {
  console.log(`executable ${binary}: ${mb(statSync(binary).size)}`);
  const results = [];
  for (let i = 0; i < runs; i++) results.push(await hostStart(binary));
  const ms = results.map((r) => r.ms);
  console.log(`  host start-up to GET /v1/status: median ${median(ms).toFixed(0)} ms (min ${Math.min(...ms).toFixed(0)}, max ${Math.max(...ms).toFixed(0)}, ${runs} runs)`);
  console.log(`  host idle RSS: median ${median(results.map((r) => r.rssMiB)).toFixed(1)} MiB, of which anonymous ${median(results.map((r) => r.anonMiB)).toFixed(1)} MiB (goal <= 60 MB)`);
}
if (!values['no-vm']) await vmBoot();
