import { resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { execa, type ResultPromise } from 'execa';
import { freePort } from './ironic.ts';
import { agentEnv } from './agent-env.ts';

// Runs the agent from source (tsx) as a separate process, the way a ramdisk
// would, with the safety flags every test must give: the loop devices it may
// write, and no kernel command line from the host.

const ROOT = resolve(import.meta.dirname, '../..');

export interface AgentProcess {
  /** The launcher's pid: tsx, which runs the agent in a node child process (or the executable itself). */
  pid: number;
  port: number;
  url: string;
  output(): string;
  waitForLog(re: RegExp, timeoutSec: number): Promise<void>;
  stop(): Promise<void>;
}

export interface AgentProcessOptions {
  apiUrl?: string;
  mac?: string;
  allowedDevices: string[];
  tls?: boolean;
  extraArgs?: string[];
  env?: Record<string, string>;
  /** Wrap the command (e.g. ['ip', 'netns', 'exec', NS]). */
  prefix?: string[];
  listenHost?: string;
  /** Kernel parameters as the agent would read them from /proc/cmdline (default: none, /dev/null). */
  cmdlineFile?: string;
  /** --standalone; default: when no apiUrl is given (false when the cmdline file names the API). */
  standalone?: boolean;
  /** Run this built executable (build/metal-agent, the ramdisk's SEA) instead of the source under tsx. */
  binary?: string;
}

export async function startAgent(opts: AgentProcessOptions): Promise<AgentProcess> {
  const port = await freePort();
  const args = [
    ...(opts.binary ? [resolve(opts.binary)] : [resolve(ROOT, 'node_modules/.bin/tsx'), resolve(ROOT, 'src/main.ts')]),
    '--cmdline-file', opts.cmdlineFile ?? '/dev/null',
    '--listen-host', opts.listenHost ?? '127.0.0.1',
    '--listen-port', String(port),
    '--advertise-port', String(port),
    '--allowed-devices', opts.allowedDevices.join(','),
    '--lookup-interval', '1',
    '--image-download-connection-retry-interval', '1',
    ...(opts.apiUrl ? ['--api-url', opts.apiUrl] : []),
    ...((opts.standalone ?? !opts.apiUrl) ? ['--standalone'] : []),
    ...(opts.mac ? ['--bootif', `01-${opts.mac.replace(/:/g, '-')}`] : []),
    ...(opts.tls === false ? ['--no-enable-auto-tls'] : []),
    ...(opts.extraArgs ?? []),
  ];
  const [cmd, ...rest] = [...(opts.prefix ?? []), ...args];
  let out = '';
  const child: ResultPromise = execa(cmd!, rest, {
    reject: false,
    all: true,
    buffer: false,
    env: { ...agentEnv(), METAL_AGENT_LOG_LEVEL: 'debug', ...(opts.env ?? {}) },
  });
  child.all?.on('data', (d: Buffer) => {
    out += d.toString();
  });
  const proc: AgentProcess = {
    pid: child.pid!,
    port,
    url: `${opts.tls === false ? 'http' : 'https'}://127.0.0.1:${port}`,
    output: () => out,
    async waitForLog(re, timeoutSec) {
      const deadline = Date.now() + timeoutSec * 1000;
      while (!re.test(out)) {
        if (Date.now() > deadline) throw new Error(`agent log never matched ${re}; last output:\n${out.slice(-3000)}`);
        if (child.exitCode !== null && child.exitCode !== undefined) throw new Error(`agent exited (${child.exitCode}):\n${out.slice(-3000)}`);
        await sleep(200);
      }
    },
    async stop() {
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
      await child;
      clearTimeout(timer);
    },
  };
  await proc.waitForLog(/API listening/, 60);
  return proc;
}
