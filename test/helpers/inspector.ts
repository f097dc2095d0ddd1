import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { execa } from 'execa';
import { freePort } from './ironic.ts';
import { onTeardown, runSync } from './teardown.ts';

// A real ironic-inspector 11.1 (lab/ironic/inspector-start.sh) for the
// integration tests of Ironic 21.4's in-band inspection. Its own state dir,
// port and sqlite database.

const LAB = resolve(import.meta.dirname, '../../lab/ironic');

export interface Inspector {
  /** http://HOST:PORT: Ironic's [inspector]endpoint_override. */
  url: string;
  stateDir: string;
  /** GET url + path, JSON. */
  get(path: string): Promise<any>;
  /** Files the ramdisk_logs_dir holds (the agent's `logs` collector, stored by inspector). */
  ramdiskLogs(): string[];
  log(): string;
  stop(): Promise<void>;
}

/** A free port on `hostIp`, to give Ironic before the inspector itself starts (it needs Ironic's URL). */
export async function inspectorPort(hostIp: string): Promise<number> {
  return freePort(hostIp);
}

/**
 * With `netns`, inspector runs inside that network namespace (listening on hostIp there, beside an
 * Ironic in the same namespace), and `get` reaches it from inside it.
 */
export async function startInspector(opts: { ironicUrl: string; hostIp: string; port: number; extraConf?: string; netns?: string }): Promise<Inspector> {
  const stateDir = mkdtempSync(join(tmpdir(), 'metal-agent-inspector-'));
  const env: Record<string, string> = { INSPECTOR_HOST_IP: opts.hostIp };
  if (opts.extraConf) {
    const f = join(stateDir, 'extra.conf');
    writeFileSync(f, opts.extraConf);
    env.INSPECTOR_EXTRA_CONF = f;
  }
  const unregister = onTeardown(`ironic-inspector ${stateDir}`, () => {
    runSync(join(LAB, 'inspector-stop.sh'), [stateDir]);
    rmSync(stateDir, { recursive: true, force: true });
  });
  const start = [join(LAB, 'inspector-start.sh'), stateDir, String(opts.port), opts.ironicUrl];
  if (opts.netns) await execa('ip', ['netns', 'exec', opts.netns, ...start], { env, stdio: 'pipe' });
  else await execa(start[0]!, start.slice(1), { env, stdio: 'pipe' });
  const host = opts.hostIp.includes(':') ? `[${opts.hostIp}]` : opts.hostIp;
  const url = `http://${host}:${opts.port}`;
  return {
    url,
    stateDir,
    async get(path) {
      const header = 'X-OpenStack-Ironic-Inspector-API-Version: 1.18';
      if (opts.netns) {
        const { stdout } = await execa('ip', ['netns', 'exec', opts.netns, 'curl', '-fsS', '-H', header, `${url}${path}`]);
        return JSON.parse(stdout);
      }
      const res = await fetch(`${url}${path}`, { headers: { 'X-OpenStack-Ironic-Inspector-API-Version': '1.18' } });
      const text = await res.text();
      if (!res.ok) throw new Error(`inspector GET ${path}: ${res.status} ${text}`);
      return JSON.parse(text);
    },
    ramdiskLogs: () => readdirSync(join(stateDir, 'ramdisk-logs')),
    log: () => {
      try {
        return readFileSync(join(stateDir, 'inspector.log'), 'utf8');
      } catch {
        return '';
      }
    },
    async stop() {
      await execa(join(LAB, 'inspector-stop.sh'), [stateDir], { reject: false });
      rmSync(stateDir, { recursive: true, force: true });
      unregister();
    },
  };
}
