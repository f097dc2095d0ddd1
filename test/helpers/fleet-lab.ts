import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { execa, type ResultPromise } from 'execa';
import { startAgent, type AgentProcess } from './agent-process.ts';
import type { RequestRecord } from './http-image-server.ts';
import { createLoopDisk, type LoopDisk } from './loop-disk.ts';
import { createNetns, destroyNetns, linkVeth, type Netns } from './netns.ts';
import { killNamespaceProcesses, onTeardown, runSync } from './teardown.ts';

// A fleet against Ironic in its distributed shape (issue 20): lab/fleet/start.sh (MariaDB, ironic-api,
// two ironic-conductors with JSON-RPC) runs in a hub namespace of its own with a bridge; each agent
// runs in its own namespace, joined to the bridge by a veth whose MAC is its node's, on a small loop
// disk of its own (the only device it may write). The image server is in the hub too. Nothing here
// touches the host's network: the test reaches the lab through `ip netns exec` (curl, baremetal).

const FLEET = resolve(import.meta.dirname, '../../lab/fleet');
const DELAY = resolve(import.meta.dirname, '../../lab/fleet/delay.py');
const IMAGE_SERVER = resolve(import.meta.dirname, 'image-server-main.ts');
const ENROLL = resolve(import.meta.dirname, '../../lab/ironic/enroll.sh');
/** The lab network: RFC 2544's benchmarking range, unused elsewhere. The hub is .1. */
const HUB_IP = '198.18.0.1';
const API_PORT = 6385;
const IMAGE_PORT = 8080;
const API_VERSION = '1.78';

export interface FleetNode {
  index: number;
  name: string;
  uuid: string;
  mac: string;
  ip: string;
  ns: Netns;
  disk: LoopDisk;
  agent: AgentProcess;
  /** What the node's earlier agents printed (restartAgent), oldest first. */
  earlierOutput: string[];
}

export interface FleetOptions {
  agents: number;
  diskMiB: number;
  /** The built agent executable; the source under tsx when not given. */
  binary?: string;
  /** [conductor]heartbeat_timeout: how long until a silent conductor counts as dead. */
  conductorTimeoutSec?: number;
  /** [api]ramdisk_heartbeat_timeout (the agents heartbeat at 0.3-0.6 of it). */
  agentTimeoutSec?: number;
  apiWorkers?: number;
  /** Tag in namespace and temp dir names (unique per test file). */
  tag: string;
  /** The image server sends each response no faster than this (downloads stay in flight for a restart). */
  imagePaceBytesPerSec?: number;
}

export interface FleetLab {
  hub: Netns;
  stateDir: string;
  apiUrl: string;
  /** Conductor host names, by number (1-based): the names Ironic shows in `conductor` and `reservation`. */
  conductorHosts: Record<number, string>;
  nodes: FleetNode[];
  /** A REST call to the API from inside the hub. */
  api<T = any>(method: string, path: string, body?: unknown): Promise<T>;
  baremetal(args: string[]): Promise<string>;
  /** Every node's current record (one GET for all). */
  listNodes(): Promise<Array<Record<string, any>>>;
  conductorPid(n: number): number;
  /** SIGKILL conductor n by the pid in its pid file; returns the pid. */
  killConductor(n: number): Promise<number>;
  /** Starts conductor n again (same host name) and waits until the API lists it alive. */
  startConductor(n: number): Promise<void>;
  /** Serves a file from the hub's image server; returns its URL as the agents see it. */
  serveImage(path: string): string;
  /** Every request the image server answered, across restarts, in order. */
  imageRequests(): RequestRecord[];
  /** Kills the image server (its connections cut mid-body), waits `downMs`, starts it again. */
  restartImageServer(downMs: number): Promise<void>;
  /**
   * Drops `percent` of the packets each agent sends and receives, at random (nftables in every agent's
   * namespace; netem would also delay, but this kernel has no sch_netem). 0 removes the rule.
   */
  dropPackets(percent: number): Promise<void>;
  /**
   * Holds every packet each agent and the hub receive from the lab network for `ms` (both ways, so
   * a round trip gains 2 x ms): netem's delay, done by lab/fleet/delay.py on NFQUEUE. Once per lab.
   */
  delayPackets(ms: number): Promise<void>;
  /** Stops ironic-api alone (lab/fleet/stop.sh STATE api); startApi() brings it back. */
  stopApi(): Promise<void>;
  startApi(): Promise<void>;
  conductorLog(n: number): string;
  /**
   * Stops node `uuid`'s agent and starts a new one, as a power cycle would (fake power does not:
   * the agent outlives Ironic's reboots here, which a real node's ramdisk does not).
   */
  restartAgent(uuid: string): Promise<void>;
  /** Copies what explains a failure (API and conductor logs, every agent's output, `why`) into `dir`. */
  keepLogs(dir: string, why: string): void;
  stop(): Promise<void>;
}

/** Maps items through fn with at most `width` calls in flight; results in the items' order. */
async function inBatches<T, R>(items: T[], width: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]!);
    }
  };
  await Promise.all(Array.from({ length: Math.min(width, items.length) }, worker));
  return out;
}

function checkedPid(text: string): number {
  const pid = Number(text.trim());
  if (!Number.isInteger(pid) || pid <= 1) throw new Error(`not a pid: '${text.trim()}'`);
  return pid;
}

export async function startFleetLab(o: FleetOptions): Promise<FleetLab> {
  const stateDir = mkdtempSync(join(tmpdir(), `metal-agent-fleet-${o.tag}-`));
  const imageDir = join(stateDir, 'images');
  const nodes: FleetNode[] = [];
  const agentNs: Netns[] = [];
  const disks: LoopDisk[] = [];
  let hub: Netns | undefined;
  /** lab/fleet/delay.py while packets are delayed (delayPackets). */
  let delayer: ResultPromise | undefined;
  // Synchronous teardown for a crash or Ctrl-C (teardown.ts); stop() is the orderly path.
  const unregister = onTeardown(`fleet lab ${stateDir}`, () => {
    if (delayer?.pid && delayer.pid > 1) runSync('kill', [String(delayer.pid)]);
    runSync(join(FLEET, 'stop.sh'), [stateDir]);
    for (const ns of [...agentNs, hub]) {
      if (!ns) continue;
      killNamespaceProcesses(ns.name);
      runSync('ip', ['netns', 'del', ns.name]);
    }
    for (const d of disks) runSync('losetup', ['-d', d.device]);
    rmSync(stateDir, { recursive: true, force: true });
  });
  const stop = async () => {
    delayer?.kill();
    await delayer?.catch(() => undefined);
    await Promise.all(nodes.map((n) => n.agent.stop().catch(() => undefined)));
    await execa(join(FLEET, 'stop.sh'), [stateDir], { reject: false });
    await destroyNetns(...agentNs, hub);
    for (const d of disks) await d.destroy();
    rmSync(stateDir, { recursive: true, force: true });
    unregister();
  };
  try {
    hub = await createNetns(`fh${o.tag}`);
    await hub.ip(['link', 'add', 'br0', 'type', 'bridge']);
    await hub.ip(['addr', 'add', `${HUB_IP}/16`, 'dev', 'br0']);
    await hub.ip(['link', 'set', 'br0', 'up']);
    const hubNs = hub;
    const env = {
      FLEET_HOST_IP: HUB_IP,
      FLEET_CONDUCTOR_TIMEOUT: String(o.conductorTimeoutSec ?? 10),
      FLEET_AGENT_TIMEOUT: String(o.agentTimeoutSec ?? 10),
      FLEET_API_WORKERS: String(o.apiWorkers ?? 1),
    };
    await hubNs.must(join(FLEET, 'start.sh'), [stateDir, String(API_PORT)], { env: { ...process.env, ...env } as Record<string, string>, timeoutMs: 300_000 });
    const apiUrl = `http://${HUB_IP}:${API_PORT}`;
    const cliEnv = { ...process.env, OS_ENDPOINT: apiUrl, OS_AUTH_TYPE: 'none', OS_BAREMETAL_API_VERSION: API_VERSION } as Record<string, string>;

    // The image server, in the hub on the bridge address: ours (test/helpers/image-server-main.ts), for
    // Range and ETag (the agents resume after its restart) and optional pacing.
    await hubNs.must('mkdir', ['-p', imageDir]);
    const imageServerRuns: Array<{ stop(): Promise<string>; output(): string }> = [];
    const startImageServer = async () => {
      const args = [HUB_IP, String(IMAGE_PORT), imageDir, ...(o.imagePaceBytesPerSec ? [String(o.imagePaceBytesPerSec)] : [])];
      const run = hubNs.spawnTsx(IMAGE_SERVER, args);
      imageServerRuns.push(run);
      for (let i = 0; !run.output().includes('"listening"'); i++) {
        if (i > 300) throw new Error(`the image server did not start: ${run.output()}`);
        await sleep(100);
      }
    };
    await startImageServer();

    const api = async <T = any>(method: string, path: string, body?: unknown): Promise<T> => {
      const args = ['-sS', '-X', method, '-H', `X-OpenStack-Ironic-API-Version: ${API_VERSION}`, '-w', '\n%{http_code}'];
      if (body !== undefined) args.push('-H', 'Content-Type: application/json', '--data', JSON.stringify(body));
      const out = await hubNs.must('curl', [...args, `${apiUrl}${path}`]);
      const cut = out.lastIndexOf('\n');
      const status = Number(out.slice(cut + 1));
      const text = out.slice(0, cut);
      if (status >= 400) throw new Error(`${method} ${path}: ${status} ${text}`);
      return (text ? JSON.parse(text) : undefined) as T;
    };
    const baremetal = (args: string[]) => hubNs.must('baremetal', args, { env: cliEnv });

    // The agents' namespaces, MACs, addresses and disks (made one after another: cheap), then the
    // nodes enrolled and the agents started all at once.
    const specs: Array<Omit<FleetNode, 'uuid' | 'agent' | 'earlierOutput'>> = [];
    for (let i = 0; i < o.agents; i++) {
      const ns = await createNetns(`fa${o.tag}${i}`);
      agentNs.push(ns);
      const mac = `52:54:00:f1:${(i >> 8).toString(16).padStart(2, '0')}:${(i & 0xff).toString(16).padStart(2, '0')}`;
      const ip = `198.18.${1 + (i >> 8)}.${(i & 0xff) + 1}`;
      await linkVeth(ns, 'eth0', hubNs, `fv${i}`, { up: false });
      await ns.ip(['link', 'set', 'eth0', 'address', mac]);
      await ns.ip(['addr', 'add', `${ip}/16`, 'dev', 'eth0']);
      await ns.ip(['link', 'set', 'eth0', 'up']);
      await hubNs.ip(['link', 'set', `fv${i}`, 'master', 'br0']);
      await hubNs.ip(['link', 'set', `fv${i}`, 'up']);
      const disk = await createLoopDisk(o.diskMiB, `fleet${o.tag}${i}`);
      disks.push(disk);
      specs.push({ index: i, name: `fleet-${o.tag}-${i}`, mac, ip, ns, disk });
    }
    // Enrolment is not what is measured: four at a time (each runs the `baremetal` CLI four times,
    // a Python start each; 40 at once on two cores ran past two minutes).
    const uuids = await inBatches(
      specs,
      4,
      async (s) => {
        const out = await hubNs.must(ENROLL, [apiUrl, s.mac, s.name], {
          env: { ...cliEnv, ROOT_DEVICE: JSON.stringify({ name: s.disk.device }), PROVIDE: 'false' },
          timeoutMs: 300_000,
        });
        const uuid = out.trim().split('\n').pop()!;
        // The agent's own power_off stays out of it (fake power powers the node off at the end).
        await api('PATCH', `/v1/nodes/${uuid}`, [{ op: 'add', path: '/driver_info/deploy_forces_oob_reboot', value: true }]);
        return uuid;
      },
    );
    const agentFor = (s: { mac: string; disk: LoopDisk; ns: Netns; ip: string }) =>
      startAgent({
        apiUrl,
        mac: s.mac,
        allowedDevices: [s.disk.device],
        prefix: ['ip', 'netns', 'exec', s.ns.name],
        listenHost: s.ip,
        binary: o.binary,
        env: { METAL_AGENT_LOG_LEVEL: 'info' },
      });
    const agents = await Promise.all(specs.map(agentFor));
    specs.forEach((s, i) => nodes.push({ ...s, uuid: uuids[i]!, agent: agents[i]!, earlierOutput: [] }));
    const hosts: Record<number, string> = {};
    for (const n of [1, 2]) hosts[n] = readFileSync(join(stateDir, `conductor-${n}.conf`), 'utf8').match(/^host = (.+)$/m)![1]!;
    const conductorPid = (n: number) => checkedPid(readFileSync(join(stateDir, `conductor-${n}.pid`), 'utf8'));

    return {
      hub: hubNs,
      stateDir,
      apiUrl,
      conductorHosts: hosts,
      nodes,
      api,
      baremetal,
      async listNodes() {
        // detail: 21.4 computes `conductor` (the hash ring's pick) only there, not as a ?fields= field.
        const r = await api<{ nodes: Array<Record<string, any>> }>('GET', '/v1/nodes/detail');
        return r.nodes;
      },
      conductorPid,
      async killConductor(n) {
        const pid = conductorPid(n);
        process.kill(pid, 'SIGKILL');
        for (let i = 0; i < 50; i++) {
          try {
            process.kill(pid, 0);
          } catch {
            return pid;
          }
          await sleep(100);
        }
        throw new Error(`conductor ${n} (pid ${pid}) still there after SIGKILL`);
      },
      async startConductor(n) {
        await hubNs.must(join(FLEET, 'conductor.sh'), [stateDir, String(n)], { timeoutMs: 120_000 });
      },
      serveImage(path) {
        const name = path.split('/').pop()!;
        runSync('cp', ['--reflink=auto', path, join(imageDir, name)]);
        return `http://${HUB_IP}:${IMAGE_PORT}/${name}`;
      },
      imageRequests() {
        return imageServerRuns.flatMap((r) =>
          r.output().split('\n').filter((l) => l.startsWith('{"method"')).map((l) => JSON.parse(l) as RequestRecord),
        );
      },
      async restartImageServer(downMs) {
        await imageServerRuns.at(-1)!.stop();
        await sleep(downMs);
        await startImageServer();
      },
      async dropPackets(percent) {
        const rules =
          percent > 0
            ? `table inet fleetloss {\n chain in { type filter hook input priority 0; numgen random mod 100 < ${percent} drop; }\n` +
              ` chain out { type filter hook output priority 0; numgen random mod 100 < ${percent} drop; }\n}\n`
            : '';
        await inBatches(nodes, 8, async (n) => {
          await n.ns.exec('nft', ['delete', 'table', 'inet', 'fleetloss']);
          if (rules) await execa('ip', ['netns', 'exec', n.ns.name, 'nft', '-f', '-'], { input: rules });
        });
      },
      async delayPackets(ms) {
        if (delayer) throw new Error('packets are already delayed');
        // --queue-bypass: should delay.py die, packets pass undelayed rather than being dropped.
        const rule = (dev: string) => ['-A', 'INPUT', '-i', dev, '-j', 'NFQUEUE', '--queue-num', '0', '--queue-bypass'];
        await hubNs.must('iptables', rule('br0'));
        await inBatches(nodes, 8, (n) => n.ns.must('iptables', rule('eth0')));
        const run = execa('/usr/bin/python3', [DELAY, '0', String(ms), hubNs.name, ...nodes.map((n) => n.ns.name)], { all: true });
        delayer = run;
        let said = '';
        run.all?.on('data', (d: Buffer) => (said += d.toString()));
        let ended = false;
        run.catch(() => undefined).finally(() => (ended = true));
        for (let i = 0; !said.includes('held'); i++) {
          if (ended || i > 100) throw new Error(`lab/fleet/delay.py did not start: ${said}`);
          await sleep(100);
        }
      },
      async stopApi() {
        await execa(join(FLEET, 'stop.sh'), [stateDir, 'api']);
      },
      async startApi() {
        await hubNs.must(join(FLEET, 'api.sh'), [stateDir, apiUrl], { timeoutMs: 120_000 });
      },
      conductorLog(n) {
        try {
          return readFileSync(join(stateDir, `conductor-${n}.log`), 'utf8');
        } catch {
          return '';
        }
      },
      async restartAgent(uuid) {
        const node = nodes.find((n) => n.uuid === uuid);
        if (!node) throw new Error(`no node ${uuid} in this lab`);
        await node.agent.stop();
        node.earlierOutput.push(node.agent.output());
        node.agent = await agentFor(node);
      },
      keepLogs(dir, why) {
        rmSync(dir, { recursive: true, force: true });
        mkdirSync(dir, { recursive: true });
        for (const f of ['api.log', 'conductor-1.log', 'conductor-2.log']) {
          try {
            cpSync(join(stateDir, f), join(dir, f));
          } catch {
            // not written
          }
        }
        for (const x of nodes) writeFileSync(join(dir, `${x.name}-${x.uuid}.log`), [...x.earlierOutput, x.agent.output()].join('\n--- agent restarted ---\n'));
        writeFileSync(join(dir, 'error.txt'), `${why}\n`);
        console.error(`fleet lab: logs kept in ${dir}`);
      },
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}

/** Polls every node until each (or `atLeast` of them) is in one of `states`; `onPoll` sees every poll (the timeline). */
export async function waitForAll(
  lab: FleetLab,
  states: string[],
  timeoutSec: number,
  onPoll: (nodes: Array<Record<string, any>>) => void | Promise<void>,
  uuids: string[] = lab.nodes.map((n) => n.uuid),
  atLeast = uuids.length,
): Promise<Array<Record<string, any>>> {
  const deadline = Date.now() + timeoutSec * 1000;
  for (;;) {
    const all = (await lab.listNodes()).filter((n) => uuids.includes(n.uuid));
    await onPoll(all);
    if (all.length === uuids.length && all.filter((n) => states.includes(n.provision_state)).length >= atLeast) return all;
    if (Date.now() > deadline) {
      throw new Error(`not all in ${states.join('/')} after ${timeoutSec}s: ${all.map((n) => `${n.name} ${n.provision_state} (${n.last_error ?? ''})`).join('; ')}`);
    }
    await sleep(500);
  }
}
