import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { startAgent, type AgentProcess } from './agent-process.ts';
import { startImageServer, type ImageServer } from './http-image-server.ts';
import { startIronicRelease, type AgentSeen, type IronicRelease, type ReleaseIronic } from './ironic-release.ts';
import type { IronicOptions } from './ironic.ts';
import { createLoopDisk, giveDiskAPartition, type LoopDisk } from './loop-disk.ts';

// What the release suite and the 29.0-only tests both stand on: loop disks
// with a partition table, an image server, one Ironic of the given release
// with one node (root device hint: the first disk), our agent on those disks,
// and a watch that keeps what Ironic holds only briefly.

export interface ReleaseLab {
  ironic: ReleaseIronic;
  agent: AgentProcess;
  server: ImageServer;
  disks: LoopDisk[];
  uuid: string;
  /** A temp dir for the test's files, removed by stop(). */
  dir: string;
  seen: AgentSeen;
  /** Polls the node every 100 ms until one of `states`, recording into `seen`. */
  watch(states: string[], timeoutSec: number): Promise<Record<string, any>>;
  /** The certificate Ironic holds for the agent, as a file for curl. */
  caFile(): string;
  /** GET of the agent's command list over HTTPS, trusting only that certificate; curl failing to connect throws (with curlExit). */
  getCommands(token?: string): Promise<{ status: number; body: string }>;
  stop(): Promise<void>;
}

export interface ReleaseLabOptions {
  mac: string;
  diskMiB: number[];
  /** Fill the disks with random data first (cleaning then has something to erase). */
  randomFill?: boolean;
  ironic?: Omit<IronicOptions, 'chroot'>;
  /** The agent's ipa-api-url, given the lab Ironic's URL (default: that URL alone). */
  agentApiUrl?: (ironicUrl: string) => string;
  /** Runs once the disks and Ironic are ready, before the agent starts (and so before cleaning can). */
  beforeAgent?: (dir: string, disks: LoopDisk[]) => Promise<void>;
}

export async function startReleaseLab(release: IronicRelease, opts: ReleaseLabOptions): Promise<ReleaseLab> {
  const dir = mkdtempSync(join(tmpdir(), `metal-agent-ironic-${release}-`));
  const disks: LoopDisk[] = [];
  let server: ImageServer | undefined;
  let ironic: ReleaseIronic | undefined;
  let agent: AgentProcess | undefined;
  const stop = async () => {
    await agent?.stop();
    await ironic?.stop();
    await server?.stop();
    for (const d of disks) await d.destroy();
    rmSync(dir, { recursive: true, force: true });
  };
  let uuid: string;
  try {
    for (const [i, mib] of opts.diskMiB.entries()) {
      const d = await createLoopDisk(mib, `r${release}-${i}`);
      disks.push(d);
      if (opts.randomFill) writeFileSync(d.device, randomBytes(mib * 2 ** 20));
      await giveDiskAPartition(d.device);
    }
    server = await startImageServer();
    ironic = await startIronicRelease(release, opts.ironic);
    uuid = await ironic.enroll(opts.mac, { rootDevice: { name: disks[0]!.device }, driverInfo: { deploy_forces_oob_reboot: 'true' } });
    await opts.beforeAgent?.(dir, disks);
    agent = await startAgent({ apiUrl: opts.agentApiUrl?.(ironic.url) ?? ironic.url, mac: opts.mac, allowedDevices: disks.map((d) => d.device) });
  } catch (err) {
    await stop(); // nothing half set up is left behind (loop devices, a running Ironic)
    throw err;
  }
  const [ir, ag] = [ironic, agent];
  const seen: AgentSeen = { tokens: [] };
  const caFile = () => {
    const f = join(dir, 'agent-ca.pem');
    writeFileSync(f, seen.verifyCa!);
    return f;
  };
  return {
    ironic: ir,
    agent: ag,
    server: server!,
    disks,
    uuid,
    dir,
    seen,
    watch: (states, timeoutSec) => ir.watch(uuid, states, timeoutSec, seen, () => ag.output()),
    caFile,
    async getCommands(token) {
      const url = `https://127.0.0.1:${ag.port}/v1/commands/${token === undefined ? '' : `?agent_token=${encodeURIComponent(token)}`}`;
      const out = join(dir, 'curl.out');
      const r = await execa('curl', ['-sS', '--cacert', caFile(), '-o', out, '-w', '%{http_code}', url], { reject: false });
      if (r.exitCode !== 0) throw Object.assign(new Error(`curl ${url}: exit ${r.exitCode} ${r.stderr}`), { curlExit: r.exitCode });
      return { status: Number(r.stdout), body: readFileSync(out, 'utf8') };
    },
    stop,
  };
}
