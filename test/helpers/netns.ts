import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa, type ResultPromise } from 'execa';

// Network namespaces for tests: everything a test does to a network happens
// in namespaces it creates here (named mai-*), joined by veth pairs created
// directly inside them, so the host's own interfaces are never touched.
// Processes started in a namespace are remembered and stopped by destroy().

export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const TSX = join(REPO_ROOT, 'node_modules', '.bin', 'tsx');

export interface ExecResult {
  stdout: string;
  stderr: string;
  exitCode: number;
}

export class Netns {
  private readonly children: ResultPromise[] = [];
  /** Temp dirs (configs of processes run here) removed by destroyNetns. */
  readonly tempDirs: string[] = [];

  constructor(readonly name: string) {}

  /** Runs a command inside the namespace; never throws on a non-zero exit. */
  async exec(cmd: string, args: readonly string[], opts: { env?: Record<string, string>; timeoutMs?: number } = {}): Promise<ExecResult> {
    const r = await execa('ip', ['netns', 'exec', this.name, cmd, ...args], {
      reject: false,
      timeout: opts.timeoutMs ?? 120_000,
      env: opts.env,
    });
    return { stdout: String(r.stdout), stderr: String(r.stderr), exitCode: r.exitCode ?? -1 };
  }

  /** Like exec but throws with stderr on failure. */
  async must(cmd: string, args: readonly string[], opts: { env?: Record<string, string>; timeoutMs?: number } = {}): Promise<string> {
    const r = await this.exec(cmd, args, opts);
    if (r.exitCode !== 0) throw new Error(`[${this.name}] ${cmd} ${args.join(' ')} failed (${r.exitCode}): ${r.stderr || r.stdout}`);
    return r.stdout;
  }

  /** `ip -n NS ...` */
  async ip(args: readonly string[]): Promise<string> {
    const r = await execa('ip', ['-n', this.name, ...args], { reject: false });
    if (r.exitCode !== 0) throw new Error(`ip -n ${this.name} ${args.join(' ')}: ${String(r.stderr)}`);
    return String(r.stdout);
  }

  /** Writes a sysctl of this namespace (net.* sysctls are per namespace). */
  async sysctl(path: string, value: string): Promise<void> {
    await this.must('sh', ['-c', 'echo "$1" > "$2"', 'sh', value, `/proc/sys/${path}`]);
  }

  /** Starts a long-running process inside the namespace; destroy() stops it. */
  spawn(cmd: string, args: readonly string[], opts: { env?: Record<string, string> } = {}): ResultPromise {
    const child = execa('ip', ['netns', 'exec', this.name, cmd, ...args], {
      reject: false,
      env: opts.env,
      buffer: true,
      stdin: 'ignore',
    });
    this.children.push(child);
    return child;
  }

  /**
   * Runs TypeScript source (an ES module; import repo files by absolute path,
   * e.g. `${REPO_ROOT}/src/conductor/mdns.ts`) inside the namespace with tsx.
   * By convention the script prints its result as one line `RESULT <json>`.
   */
  async runScript(source: string, opts: { env?: Record<string, string>; timeoutMs?: number } = {}): Promise<ExecResult & { result?: unknown }> {
    const dir = await mkdtemp(join(tmpdir(), 'mai-script-'));
    const file = join(dir, 'script.mts'); // .mts: an ES module even outside the package
    try {
      await writeFile(file, source);
      const r = await this.exec(TSX, [file], { env: { METAL_AGENT_LOG_LEVEL: 'debug', ...opts.env }, timeoutMs: opts.timeoutMs });
      const line = r.stdout.split('\n').find((l) => l.startsWith('RESULT '));
      return { ...r, result: line ? (JSON.parse(line.slice(7)) as unknown) : undefined };
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }

  /**
   * Starts TypeScript source as a long-running process in the namespace (a
   * fake responder, a server). stop() ends it and gives back what it printed.
   */
  async spawnScript(source: string, opts: { env?: Record<string, string> } = {}): Promise<{ stop(): Promise<string>; output(): string }> {
    const dir = await mkdtemp(join(tmpdir(), 'mai-script-'));
    this.tempDirs.push(dir);
    const file = join(dir, 'script.mts');
    await writeFile(file, source);
    return this.spawnTsx(file, [], opts);
  }

  /** Starts a TypeScript file with arguments as a long-running process in the namespace, as spawnScript. */
  spawnTsx(file: string, args: readonly string[], opts: { env?: Record<string, string> } = {}): { stop(): Promise<string>; output(): string } {
    const child = this.spawn(TSX, [file, ...args], { env: opts.env });
    let out = '';
    child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
    return {
      output: () => out,
      stop: async () => {
        if (child.exitCode === null) child.kill('SIGTERM');
        await child;
        return out;
      },
    };
  }

  async stopChildren(): Promise<void> {
    for (const child of this.children.splice(0)) {
      if (child.exitCode === null && child.pid !== undefined) child.kill('SIGTERM');
      await child; // reject: false, so this only waits
    }
  }
}

/** Creates `mai-<tag>-<pid>` with lo up. */
export async function createNetns(tag: string): Promise<Netns> {
  const name = `mai-${tag}-${process.pid}`;
  await execa('ip', ['netns', 'del', name], { reject: false }); // leftover of a crashed run with our pid
  await execa('ip', ['netns', 'add', name]);
  const ns = new Netns(name);
  await ns.ip(['link', 'set', 'lo', 'up']);
  return ns;
}

/** A veth pair made inside `a` with its peer moved straight into `b` (never in the host namespace). */
export async function linkVeth(a: Netns, aIf: string, b: Netns, bIf: string, opts: { up?: boolean } = {}): Promise<void> {
  await a.ip(['link', 'add', aIf, 'type', 'veth', 'peer', 'name', bIf, 'netns', b.name]);
  if (opts.up !== false) {
    await a.ip(['link', 'set', aIf, 'up']);
    await b.ip(['link', 'set', bIf, 'up']);
  }
}

export async function destroyNetns(...all: Array<Netns | undefined>): Promise<void> {
  for (const ns of all) {
    if (!ns) continue;
    await ns.stopChildren();
    await execa('ip', ['netns', 'del', ns.name], { reject: false });
    for (const d of ns.tempDirs.splice(0)) await rm(d, { recursive: true, force: true });
  }
}

/** MAC address of an interface inside a namespace. */
export async function macOf(ns: Netns, ifname: string): Promise<string> {
  const [link] = JSON.parse(await ns.ip(['-j', 'link', 'show', 'dev', ifname])) as Array<{ address: string }>;
  return link!.address;
}

/** Polls until fn returns a value other than undefined (no timing assertion: the deadline only bounds a hang). */
export async function waitUntil<T>(fn: () => Promise<T | undefined>, what: string, deadlineMs = 60_000, everyMs = 250): Promise<T> {
  const end = Date.now() + deadlineMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`gave up waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** Starts radvd inside `ns` advertising `prefix` on `ifname` (forwarding on, as radvd requires). */
export async function startRadvd(ns: Netns, ifname: string, prefix: string): Promise<{ confDir: string }> {
  await ns.sysctl('net/ipv6/conf/all/forwarding', '1');
  const confDir = await mkdtemp(join(tmpdir(), 'mai-radvd-'));
  ns.tempDirs.push(confDir);
  const conf = join(confDir, 'radvd.conf');
  await writeFile(
    conf,
    `interface ${ifname} {\n  AdvSendAdvert on;\n  MinRtrAdvInterval 3;\n  MaxRtrAdvInterval 10;\n` +
      `  prefix ${prefix} {\n    AdvOnLink on;\n    AdvAutonomous on;\n  };\n};\n`,
  );
  ns.spawn('radvd', ['--nodaemon', '--config', conf, '--pidfile', join(confDir, 'radvd.pid'), '--logmethod', 'stderr']);
  return { confDir };
}

