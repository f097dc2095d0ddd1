import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { execa } from 'execa';
import { onTeardown, runSync } from './teardown.ts';

// A real Ironic (lab/ironic/start.sh) for integration tests, plus the
// `baremetal` CLI against it. Each instance has its own state dir, port and
// sqlite database, so tests never share a conductor.

const LAB = resolve(import.meta.dirname, '../../lab/ironic');

export async function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((res, rej) => {
    const srv = createServer();
    srv.once('error', rej);
    srv.listen(0, host, () => {
      const port = (srv.address() as { port: number }).port;
      srv.close(() => res(port));
    });
  });
}

export interface IronicOptions {
  fastTrack?: boolean;
  heartbeatTimeoutSec?: number;
  bootMode?: 'bios' | 'uefi';
  /** Folders besides /tmp, /work, ... that file:// deploy kernels and images may come from. */
  fileUrlPaths?: string[];
  hostIp?: string;
  extraConf?: string;
  /** Root of a Debian 13 tree with Ironic 29.0 (lab/ironic/install-2025.sh). */
  chroot?: string;
  /** Run start.sh (and every CLI call) inside this network namespace. */
  netns?: string;
  port?: number;
  mdns?: boolean;
  /** [deploy]http_url: where nodes fetch the state dir's http/ (iPXE boot; IRONIC_HTTP_URL). */
  httpUrl?: string;
}

export interface Ironic {
  url: string;
  stateDir: string;
  baremetal(args: string[]): Promise<string>;
  baremetalJson<T = any>(args: string[]): Promise<T>;
  node(uuid: string): Promise<Record<string, any>>;
  /**
   * Polls the node until it reaches one of `states`. `onNode` sees every poll,
   * for fields Ironic keeps only briefly (agent_url, the certificate, tokens).
   */
  waitForState(
    uuid: string,
    states: string[],
    timeoutSec: number,
    opts?: { everyMs?: number; onNode?: (node: Record<string, any>) => void | Promise<void> },
  ): Promise<Record<string, any>>;
  /** Enrolls a node with a port; unless provide is false, starts automated cleaning. */
  enroll(
    mac: string,
    opts?: {
      name?: string;
      rootDevice?: Record<string, unknown>;
      driverInfo?: Record<string, string>;
      provide?: boolean;
      /** Hardware type and deploy interface (enroll.sh's NODE_DRIVER, NODE_DEPLOY); default manual-management, direct. */
      driver?: string;
      deployInterface?: string;
    },
  ): Promise<string>;
  log(): string;
  stop(): Promise<void>;
}

export async function startIronic(opts: IronicOptions = {}): Promise<Ironic> {
  const stateDir = mkdtempSync(join(tmpdir(), 'metal-agent-ironic-'));
  const host = opts.hostIp ?? '127.0.0.1';
  const port = opts.port ?? (await freePort(host.includes(':') ? '::1' : '127.0.0.1'));
  const env: Record<string, string> = {
    IRONIC_HOST_IP: host,
    IRONIC_FAST_TRACK: String(opts.fastTrack ?? false),
    IRONIC_HEARTBEAT_TIMEOUT: String(opts.heartbeatTimeoutSec ?? 10),
    IRONIC_BOOT_MODE: opts.bootMode ?? 'bios',
    IRONIC_MDNS: String(opts.mdns ?? false),
  };
  if (opts.chroot) env.IRONIC_CHROOT = opts.chroot;
  if (opts.httpUrl) env.IRONIC_HTTP_URL = opts.httpUrl;
  if (opts.fileUrlPaths?.length) env.IRONIC_FILE_URL_PATHS = opts.fileUrlPaths.join(',');
  if (opts.extraConf) {
    const f = join(stateDir, 'extra.conf');
    writeFileSync(f, opts.extraConf);
    env.IRONIC_EXTRA_CONF = f;
  }
  const start = opts.netns ? ['ip', ['netns', 'exec', opts.netns, join(LAB, 'start.sh'), stateDir, String(port)]] : [join(LAB, 'start.sh'), [stateDir, String(port)]];
  // Registered before start.sh runs: a Ctrl-C or crash during the start stops it too (teardown.ts).
  const unregister = onTeardown(`Ironic ${stateDir}`, () => {
    runSync(join(LAB, 'stop.sh'), [stateDir]);
    rmSync(stateDir, { recursive: true, force: true });
  });
  await execa(start[0] as string, start[1] as string[], { env, stdio: 'pipe' });
  const urlHost = host.includes(':') ? `[${host}]` : host;
  const url = `http://${urlHost}:${port}`;
  const cliEnv = { OS_ENDPOINT: url, OS_AUTH_TYPE: 'none', OS_BAREMETAL_API_VERSION: '1.78' };

  // Inside a namespace the API is only reachable from there.
  const inNs = (cmd: string, args: string[]): [string, string[]] => (opts.netns ? ['ip', ['netns', 'exec', opts.netns, cmd, ...args]] : [cmd, args]);
  const baremetal = async (args: string[]) => {
    const r = await execa(...inNs('baremetal', args), { env: cliEnv, reject: false });
    if (r.exitCode !== 0) throw new Error(`baremetal ${args.join(' ')} failed: ${r.stderr || r.stdout}`);
    return r.stdout;
  };
  const baremetalJson = async (args: string[]) => JSON.parse(await baremetal([...args, '-f', 'json']));
  // The REST API directly: the CLI takes a second per call, too slow to watch
  // short-lived fields such as agent_url during a fast cleaning.
  const node = async (uuid: string) => {
    if (opts.netns) {
      const r = await execa(...inNs('curl', ['-fsS', '-H', 'X-OpenStack-Ironic-API-Version: 1.78', `${url}/v1/nodes/${uuid}`]));
      return JSON.parse(r.stdout) as Record<string, any>;
    }
    const res = await fetch(`${url}/v1/nodes/${uuid}`, { headers: { 'X-OpenStack-Ironic-API-Version': '1.78' } });
    if (!res.ok) throw new Error(`GET node ${uuid}: ${res.status} ${await res.text()}`);
    return (await res.json()) as Record<string, any>;
  };

  return {
    url,
    stateDir,
    baremetal,
    baremetalJson,
    node,
    async waitForState(uuid, states, timeoutSec, opts = {}) {
      const deadline = Date.now() + timeoutSec * 1000;
      let last: Record<string, any> = {};
      while (Date.now() < deadline) {
        last = await node(uuid);
        await opts.onNode?.(last);
        // Settled only once the conductor has let go of the node too: a failure is saved in steps
        // (21.4's set_failed_state stores 'deploy failed', then a failed power-off's own last_error,
        // then the deploy's), and a read inside that window sees the wrong error.
        if (states.includes(last.provision_state) && !last.reservation) return last;
        await sleep(opts.everyMs ?? 500);
      }
      throw new Error(
        `node ${uuid} did not reach ${states.join('/')} (unlocked) in ${timeoutSec}s: state ${last.provision_state}, lock ${last.reservation ?? '-'}, last_error ${last.last_error}`,
      );
    },
    async enroll(mac, o = {}) {
      const r = await execa(...inNs(join(LAB, 'enroll.sh'), [url, mac, o.name ?? `node-${mac.replace(/:/g, '')}`]), {
        env: {
          ...cliEnv,
          ROOT_DEVICE: o.rootDevice ? JSON.stringify(o.rootDevice) : '',
          PROVIDE: 'false',
          ...(o.driver ? { NODE_DRIVER: o.driver } : {}),
          ...(o.deployInterface ? { NODE_DEPLOY: o.deployInterface } : {}),
        },
      });
      const uuid = r.stdout.trim().split('\n').pop()!;
      for (const [k, v] of Object.entries(o.driverInfo ?? {})) await baremetal(['node', 'set', uuid, '--driver-info', `${k}=${v}`]);
      if (o.provide !== false) await baremetal(['node', 'provide', uuid]);
      return uuid;
    },
    log: () => {
      try {
        return readFileSync(join(stateDir, 'ironic.log'), 'utf8');
      } catch {
        return '';
      }
    },
    async stop() {
      await execa(join(LAB, 'stop.sh'), [stateDir], { reject: false });
      rmSync(stateDir, { recursive: true, force: true });
      unregister();
    },
  };
}
