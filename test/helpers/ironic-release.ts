import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { execa } from 'execa';
import { startIronic, type Ironic, type IronicOptions } from './ironic.ts';

// The Ironic releases the integration suite runs against, and what tells
// them apart from a test's point of view. The agent itself has no such table:
// it adapts to what the conductor sends (see docs/ironic-releases.md).

const LAB = resolve(import.meta.dirname, '../../lab/ironic');

export type IronicRelease = '21.4' | '29.0' | '39.0';

export interface ReleaseTraits {
  openstack: string;
  /** dpkg version of python3-ironic, on the host (21.4) or in the Debian 13 (29.0) or sid (39.0) root. */
  packageVersion: RegExp;
  /** Lowest API microversion the release must answer with (21.4 speaks up to 1.82, 29.0 up to 1.96, 39.0 up to 1.115). */
  minApiVersion: number;
  /** Whether the conductor sends agent_token on GETs of /v1/commands (29.0 does, 21.4 does not). */
  tokenOnGets: boolean;
}

export const RELEASES: Record<IronicRelease, ReleaseTraits> = {
  '21.4': { openstack: '2023.1', packageVersion: /^1:21\.4\./, minApiVersion: 82, tokenOnGets: false },
  '29.0': { openstack: '2025.1', packageVersion: /^1:29\.0\./, minApiVersion: 95, tokenOnGets: true },
  '39.0': { openstack: '2026.2', packageVersion: /^1:39\.0\./, minApiVersion: 115, tokenOnGets: true },
};

/** The root each chroot release runs from: its ensure script, and the variable that may name a finished build. */
const ROOTS: Partial<Record<IronicRelease, { name: string }>> = { '29.0': { name: '2025' }, '39.0': { name: '2026' } };

/** Where `release` runs from: undefined for the host's 21.4, else its Debian root (built on first use). */
export async function ironicRoot(release: IronicRelease): Promise<string | undefined> {
  const root = ROOTS[release];
  if (!root) return undefined;
  const given = process.env[`METAL_AGENT_IRONIC_${root.name}_ROOT`];
  if (given && existsSync(join(given, `.metal-agent-ironic-${root.name}`))) return given;
  const { stdout } = await execa(join(LAB, `ensure-${root.name}.sh`), [], { stderr: 'inherit' });
  return stdout.trim().split('\n').pop()!;
}

/** What Ironic holds only briefly (agent_url and the certificate until cleaning or deploy ends, tokens), as seen while watching. */
export interface AgentSeen {
  agentUrl?: string;
  version?: string;
  /** The PEM Ironic stored as agent_verify_ca. */
  verifyCa?: string;
  /** Every agent_secret_token the node had, oldest first. */
  tokens: string[];
}

export interface ReleaseIronic extends Ironic {
  /** The Debian root 29.0 or 39.0 runs from; undefined for 21.4 (the host's package). */
  root?: string;
  /** A path as the conductor wrote it (e.g. agent_verify_ca), as the host sees it. */
  hostPath(path: string): string;
  /** python3-ironic's dpkg version where this conductor runs from. */
  packageVersion(): Promise<string>;
  /** The node's agent_secret_token as Ironic keeps it (the API masks it; the sqlite database does not). */
  secretToken(uuid: string): Promise<string>;
  /** waitForState (polling every 100 ms) that records into `seen`; a timeout's error ends with `context()` (the agent's log). */
  watch(uuid: string, states: string[], timeoutSec: number, seen: AgentSeen, context: () => string): Promise<Record<string, any>>;
}

/** Starts the given release with the same options: the suite's config differs in nothing else. */
export async function startIronicRelease(release: IronicRelease, opts: Omit<IronicOptions, 'chroot'> = {}): Promise<ReleaseIronic> {
  const root = await ironicRoot(release);
  const ironic = await startIronic({ ...opts, chroot: root });
  const chrootArgs = (cmd: string[]) => (root ? ['chroot', [root, ...cmd]] : [cmd[0]!, cmd.slice(1)]) as [string, string[]];
  const secretToken = async (uuid: string) => {
    const py = 'import json,sqlite3,sys\nc=sqlite3.connect(sys.argv[1],timeout=10)\nr=c.execute("select driver_internal_info from nodes where uuid=?",(sys.argv[2],)).fetchone()\nprint(json.loads((r and r[0]) or "{}").get("agent_secret_token") or "")';
    const { stdout } = await execa('/usr/bin/python3', ['-c', py, join(ironic.stateDir, 'ironic.sqlite'), uuid]);
    return stdout.trim();
  };
  const hostPath = (path: string) => (root ? join(root, path) : path);
  return {
    ...ironic,
    root,
    hostPath,
    async packageVersion() {
      const { stdout } = await execa(...chrootArgs(['dpkg-query', '-W', '-f=${Version}', 'python3-ironic']));
      return stdout.trim();
    },
    secretToken,
    async watch(uuid, states, timeoutSec, seen, context) {
      const onNode = async (node: Record<string, any>) => {
        const dii = node.driver_internal_info ?? {};
        if (dii.agent_url && !seen.agentUrl) {
          seen.agentUrl = dii.agent_url;
          seen.version = dii.agent_version;
          seen.verifyCa = readFileSync(hostPath(dii.agent_verify_ca), 'utf8');
        }
        const token = await secretToken(uuid);
        if (token && !seen.tokens.includes(token)) seen.tokens.push(token);
      };
      try {
        return await ironic.waitForState(uuid, states, timeoutSec, { everyMs: 100, onNode });
      } catch (err) {
        throw new Error(`${(err as Error).message}\n${context().slice(-3000)}`);
      }
    },
  };
}
