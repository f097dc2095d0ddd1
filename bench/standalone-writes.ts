// What the benches that watch the executable write images share (footprint-deploy, footprint-repeat,
// write-ab): an incompressible test image, an agent started standalone on loop devices of its own,
// and write_image asked of it through its API as Ironic's direct deploy asks, then polled to its end.
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { closeSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { freePort } from '../test/helpers/ironic.ts';
import { agentEnv } from '../test/helpers/agent-env.ts';

export const MiB = 1024 * 1024;

/** Ends a bench's rig: the image server stopped, its loop devices detached, its scratch directory removed. */
export async function removeRig(server: { stop(): Promise<unknown> }, loops: Array<string | undefined>, work: string): Promise<void> {
  await server.stop();
  for (const loop of loops) if (loop) execFileSync('losetup', ['-d', loop]);
  rmSync(work, { recursive: true, force: true });
}

export interface BusyboxServer {
  /** http://127.0.0.1:PORT: the served directory's files under it. */
  url: string;
  stop(): Promise<void>;
}

/**
 * `busybox httpd` in the foreground, serving `dir` on 127.0.0.1. It sends files with sendfile, so
 * it takes little of the CPU it shares with the writer, as an image server on another machine
 * would; the test suite's Node server copies every byte through JavaScript streams, which on this
 * 2-core host held the agent's write at about 60% of what it reaches from busybox (docs/footprint.md).
 */
export async function startBusyboxServer(dir: string): Promise<BusyboxServer> {
  const port = await freePort();
  const child = spawn('busybox', ['httpd', '-f', '-p', `127.0.0.1:${port}`, '-h', dir], { stdio: 'inherit' });
  const url = `http://127.0.0.1:${port}`;
  const stop = () =>
    new Promise<void>((done) => {
      if (child.exitCode !== null || child.signalCode !== null) return done();
      child.once('exit', () => done());
      child.kill();
    });
  for (let i = 0; ; i++) {
    // Any answer (a 404 for /) means it listens.
    if (await fetch(`${url}/`, { method: 'HEAD' }).then(() => true, () => false)) return { url, stop };
    if (i > 50 || child.exitCode !== null) {
      await stop();
      throw new Error('busybox httpd did not answer');
    }
    await sleep(100);
  }
}

/** Incompressible data, fast to make: a random pool with every MiB stamped differently; returns its sha256. */
export function makeImage(path: string, size: number, poolBytes = 16 * MiB): string {
  const pool = randomBytes(poolBytes);
  const fd = openSync(path, 'w');
  const hash = createHash('sha256');
  const block = Buffer.allocUnsafe(MiB);
  try {
    for (let off = 0; off < size; off += MiB) {
      const n = Math.min(MiB, size - off);
      pool.copy(block, 0, off % poolBytes, (off % poolBytes) + n);
      block.writeDoubleLE(off, 0);
      block.writeDoubleLE(Math.random(), 8);
      hash.update(block.subarray(0, n));
      writeSync(fd, block, 0, n);
    }
  } finally {
    closeSync(fd);
  }
  return hash.digest('hex');
}

export const sha256File = (path: string): string => execFileSync('sha256sum', [path]).toString().split(' ')[0]!;

/** A loop device with direct I/O over a new sparse file of `mib` MiB (what is written goes to storage). */
export function directLoop(file: string, mib: number): string {
  execFileSync('truncate', ['-s', `${mib}M`, file]);
  return execFileSync('losetup', ['-f', '--show', '--direct-io=on', file]).toString().trim();
}

/** /proc/PID/status figures in KiB (threads: a count). */
export function procStatus(pid: number): { rss: number; anon: number; file: number; threads: number } {
  const s = readFileSync(`/proc/${pid}/status`, 'utf8');
  const f = (n: string) => Number(new RegExp(`${n}:\\s+(\\d+)`).exec(s)?.[1] ?? NaN);
  return { rss: f('VmRSS'), anon: f('RssAnon'), file: f('RssFile'), threads: f('Threads') };
}

export interface StandaloneAgent {
  child: ChildProcess;
  url: string;
  stop(): Promise<void>;
}

/**
 * Starts the agent standalone (no Ironic) on 127.0.0.1, allowed to write `loop` only, with the
 * ramdisk's environment (agentEnv) plus `env`, and waits for its API. `argv0` runs something else
 * in its place (the bundle under node, say): its arguments come before the agent's.
 */
export async function startStandaloneAgent(
  binary: string,
  loop: string,
  opts: { env?: Record<string, string>; argv0?: { command: string; args: string[] } } = {},
): Promise<StandaloneAgent> {
  const port = await freePort();
  const args = ['--standalone', '--no-enable-auto-tls', '--cmdline-file', '/dev/null', '--listen-host', '127.0.0.1', '--listen-port', String(port), '--allowed-devices', loop];
  const env = { ...process.env, ...agentEnv(), METAL_AGENT_LOG_LEVEL: 'warn', ...opts.env };
  const child = opts.argv0
    ? spawn(opts.argv0.command, [...opts.argv0.args, binary, ...args], { stdio: 'ignore', env })
    : spawn(binary, args, { stdio: 'ignore', env });
  const url = `http://127.0.0.1:${port}`;
  const stop = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGTERM');
    await new Promise((r) => child.once('exit', r));
  };
  try {
    for (;;) {
      if (child.exitCode !== null) throw new Error(`${binary} exited ${child.exitCode}`);
      if (await fetch(`${url}/v1/status`).then((r) => r.ok, () => false)) break;
      await sleep(50);
    }
  } catch (err) {
    await stop();
    throw err;
  }
  return { child, url, stop };
}

export interface TestImage {
  label: string;
  url: string;
  format: string;
  sha: string;
}

/** deploy.execute_deploy_step write_image of a whole-disk image, polled until it is no longer RUNNING; throws unless it SUCCEEDED. */
export async function writeThroughApi(url: string, img: TestImage): Promise<{ ms: number }> {
  const t0 = performance.now();
  const r = await fetch(`${url}/v1/commands/?wait=true`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({
      name: 'deploy.execute_deploy_step',
      params: {
        step: {
          interface: 'deploy', step: 'write_image',
          args: { image_info: { urls: [img.url], disk_format: img.format, os_hash_algo: 'sha256', os_hash_value: img.sha, image_type: 'whole-disk' } },
        },
        node: { uuid: 'bench', properties: {}, instance_info: {}, driver_internal_info: {} },
        ports: [],
      },
    }),
  });
  const started = (await r.json()) as Record<string, unknown>;
  if (!r.ok) throw new Error(`POST /v1/commands: ${r.status} ${JSON.stringify(started)}`);
  let done = started;
  while (done.command_status === 'RUNNING') {
    await sleep(50);
    done = (await (await fetch(`${url}/v1/commands/${started.id as string}`)).json()) as Record<string, unknown>;
  }
  if (done.command_status !== 'SUCCEEDED') throw new Error(`${img.label}: ${JSON.stringify(done.command_error)}`);
  return { ms: performance.now() - t0 };
}

/** Runs fn while sampling pid's VmRSS and RssAnon every 20 ms; returns fn's result and the peaks (KiB). */
export async function withPeaks<T>(pid: number, fn: () => Promise<T>): Promise<{ result: T; peakRss: number; peakAnon: number }> {
  let peakRss = 0;
  let peakAnon = 0;
  const sample = () => {
    const s = procStatus(pid);
    peakRss = Math.max(peakRss, s.rss);
    peakAnon = Math.max(peakAnon, s.anon);
  };
  sample();
  const timer = setInterval(sample, 20);
  try {
    const result = await fn();
    return { result, peakRss, peakAnon };
  } finally {
    clearInterval(timer);
  }
}
