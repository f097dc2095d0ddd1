// Fleet bench (issue 20, Show it 1): N agents from the one built executable, each in its own network
// namespace with its own MAC and loop disk, against Ironic 21.4 in its distributed shape (lab/fleet:
// ironic-api + two conductors, MariaDB, JSON-RPC; test/helpers/fleet-lab.ts). All nodes are cleaned
// at once, then deployed at once from one image server; the same is done with one node in the same
// run, and the wall times are printed as a ratio to it. Also: the API's request rate while the fleet
// works (from ironic-api's own request log: every agent heartbeat and lookup, and this bench's polls,
// which are counted apart), the agents' memory on the host (sum of VmRSS of every process in the
// agents' namespaces, sampled every 2 s, peak), and every disk's first image-size bytes checked
// against the image's sha256 (Show it 1).
//
// Then (Show it 2, unless --no-faults) the same N in a fresh lab with faults while it works: ironic-api
// stopped for --outage-sec once half the nodes wait in `clean wait` (the agents' heartbeats fail and
// are retried 5-10 s apart, jittered), with the most heartbeats the API took in one second in the
// minute before and after; and the image server (paced, so downloads are in flight) killed once every
// node is at write_image and half the downloads began, then started again 3 s later: the agents resume
// with a Range. Every node
// must end available, then active, every disk checked. One conductor is SIGKILLed mid-cleaning and
// (started again before the deploy) one mid-deploy; the other takes their nodes over, and what Ironic
// failed is retried as an operator would (test/helpers/fleet-operator.ts, shared with make test's
// N=4 test/integration/fleet-conductor-kill.test.ts), each retry printed with its cause. Throughout
// the faults run, 5% of every agent's packets are dropped (nftables) and each is held --delay-ms
// (200), each way: this kernel has no sch_netem, so lab/fleet/delay.py holds them on NFQUEUE.
//
//   npx tsx bench/fleet.ts [--agents 40] [--binary build/metal-agent] [--image-mib 16] [--disk-mib 32]
//                          [--no-faults | --faults-only] [--outage-sec 60] [--delay-ms 200]
//                          [--logs-on-failure build/fleet-failure]
import { cpSync, mkdirSync, readFileSync, rmSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { execa } from 'execa';
import { startFleetLab, waitForAll, type FleetLab } from '../test/helpers/fleet-lab.ts';
import { fleetOperator, type Retry } from '../test/helpers/fleet-operator.ts';
import type { RequestRecord } from '../test/helpers/http-image-server.ts';
import { makeRawImage, sha256File } from '../test/helpers/images.ts';
import { teardownOnSignals } from '../test/helpers/teardown.ts';

const { values } = parseArgs({
  options: {
    agents: { type: 'string', default: '40' },
    binary: { type: 'string', default: 'build/metal-agent' },
    'image-mib': { type: 'string', default: '16' },
    'disk-mib': { type: 'string', default: '32' },
    /** Unless --no-faults, the fleet runs again with faults: the API stopped for --outage-sec mid-cleaning, the image server restarted mid-deploy. */
    'no-faults': { type: 'boolean', default: false },
    'outage-sec': { type: 'string', default: '60' },
    /** With faults, every packet to and from an agent is held this long (each way). */
    'delay-ms': { type: 'string', default: '200' },
    /** Only the faults run (its ratios are then to N=1 of the faults run's own lab shape: not printed). */
    'faults-only': { type: 'boolean', default: false },
    /** Where a failed run leaves the lab's logs (every agent's output, ironic-api's and both conductors'). */
    'logs-on-failure': { type: 'string', default: 'build/fleet-failure' },
  },
});
const N = Number(values.agents);
const IMAGE_MIB = Number(values['image-mib']);
const DISK_MIB = Number(values['disk-mib']);

interface FaultReport {
  outageSec: number;
  /** Heartbeats the API logged per second: the most in any one second in the minute before the outage, and after it. */
  heartbeatsPerSecBefore: number;
  heartbeatsPerSecAfter: number;
  /** Image GETs cut by the restart and resumed with a Range (206) afterwards. */
  imageGetsBefore: number;
  rangeResumes: number;
  fullRestarts: number;
  /** Downloads begun before the restart whose node asked nothing after it (done before it). */
  finishedBefore: number;
  /** For each conductor kill (mid-cleaning, mid-deploy), how many nodes the dead conductor held. */
  kills: number[];
}

interface Result {
  n: number;
  faults?: FaultReport;
  availableSec: number;
  activeSec: number;
  agentRequests: number;
  pollRequests: number;
  busySec: number;
  peakAgentRssMiB: number;
  /** Nodes Ironic failed that were retried as an operator would, and why. */
  retries: Retry[];
}

/** Every request line in ironic-api's log (oslo.service's wsgi access lines). */
function apiRequests(lab: FleetLab): string[] {
  const log = readFileSync(join(lab.stateDir, 'api.log'), 'utf8');
  return [...log.matchAll(/"(GET|POST|PUT|PATCH|DELETE) (\S+) HTTP\/1\.[01]"/g)].map((m) => `${m[1]} ${m[2]}`);
}

/** The most heartbeats ironic-api logged in any one second of [from, to). */
function peakHeartbeatsPerSec(lab: FleetLab, from: number, to: number): number {
  const perSec = new Map<number, number>();
  for (const line of readFileSync(join(lab.stateDir, 'api.log'), 'utf8').split('\n')) {
    // oslo.log's line: "2026-12-06 02:50:01.123 PID INFO ... "POST /v1/heartbeat/UUID HTTP/1.1" status: 202 ..."
    const m = /^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)\.\d+ .*"POST \/v1\/heartbeat\//.exec(line);
    if (!m) continue;
    const sec = new Date(m[1]!.replace(' ', 'T')).getTime();
    if (sec >= from - 999 && sec < to) perSec.set(sec, (perSec.get(sec) ?? 0) + 1);
  }
  return Math.max(0, ...perSec.values());
}

/** Sum of VmRSS (KiB) of every process in the agents' namespaces. */
async function agentRssKiB(lab: FleetLab): Promise<number> {
  let total = 0;
  for (const n of lab.nodes) {
    const { stdout } = await execa('ip', ['netns', 'pids', n.ns.name], { reject: false });
    for (const pid of stdout.split(/\s+/).filter((p) => /^[0-9]+$/.test(p))) {
      try {
        total += Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0);
      } catch {
        // exited
      }
    }
  }
  return total;
}


// With faults the image server sends each download at this pace, so that downloads are in flight when it restarts.
const FAULT_PACE = 2 * 2 ** 20;
const LOSS_PERCENT = 5;
const DELAY_MS = Number(values['delay-ms']);
/** 21.4's direct deploy steps from write_image on (the image URL is checked before them). */
const STEPS_FROM_WRITE_IMAGE = ['write_image', 'prepare_instance_boot', 'tear_down_agent', 'switch_to_tenant_network', 'boot_instance'];

async function run(n: number, image: string, sha: string, withFaults = false): Promise<Result> {
  const lab = await startFleetLab({
    agents: n,
    diskMiB: DISK_MIB,
    binary: values.binary,
    tag: `${withFaults ? 'f' : 'b'}${n}`,
    apiWorkers: 2,
    imagePaceBytesPerSec: withFaults ? FAULT_PACE : undefined,
  });
  const t0 = Date.now();
  const timeline: string[] = [];
  const op = fleetOperator(lab, (text) => timeline.push(`${((Date.now() - t0) / 1000).toFixed(1).padStart(7)}s  ${text}`));
  const faults: Partial<FaultReport> = {};
  /** When ironic-api answered again after its outage (faults run). */
  let apiBackAt = 0;
  if (withFaults) {
    await lab.dropPackets(LOSS_PERCENT);
    await lab.delayPackets(DELAY_MS);
    console.log(`faults: ${LOSS_PERCENT}% of every agent's packets dropped and each held ${DELAY_MS} ms, each way, for the whole run`);
  }
  let peak = 0;
  let sampling = true;
  const sampler = (async () => {
    while (sampling) {
      peak = Math.max(peak, await agentRssKiB(lab));
      await new Promise((r) => setTimeout(r, 2000));
    }
  })();
  try {
    const before = apiRequests(lab).length;
    await Promise.all(lab.nodes.map((x) => op.call('PUT', `/v1/nodes/${x.uuid}/states/provision`, { target: 'provide' })));
    if (withFaults) {
      // A conductor dies with cleaning in flight; the other takes its nodes over.
      const victim = await op.killMidway(['cleaning', 'clean wait'], 'clean_step');
      console.log(`faults: conductor ${victim} killed mid-cleaning, holding ${op.kills.at(-1)!.held.length} of ${n} nodes`);
      // The API goes away while the fleet cleans: once half the nodes wait for their agents' heartbeats.
      await waitForAll(lab, ['clean wait', 'available'], 600, op.record, undefined, Math.ceil(n / 2));
      const outageSec = Number(values['outage-sec']);
      const down = Date.now();
      await lab.stopApi();
      console.log(`faults: ironic-api stopped for ${outageSec} s mid-cleaning`);
      await new Promise((r) => setTimeout(r, outageSec * 1000));
      await lab.startApi();
      apiBackAt = Date.now();
      faults.outageSec = Math.round((apiBackAt - down) / 1000);
      faults.heartbeatsPerSecBefore = peakHeartbeatsPerSec(lab, down - 60_000, down);
    }
    // Retried as an operator would: a node whose conductor died holding it, and one hit by Ironic
    // 21.4's token race (README: a heartbeat queued before provide's reboot, then a 401).
    await op.settle('available', 'clean failed', op.recleanNode, 1200, 2);
    const availableSec = (Date.now() - t0) / 1000;
    if (withFaults) await op.reviveConductors();
    const url = lab.serveImage(image);
    await Promise.all(
      lab.nodes.map((x) =>
        op.call('PATCH', `/v1/nodes/${x.uuid}`, [
          { op: 'add', path: '/instance_info/image_source', value: url },
          { op: 'add', path: '/instance_info/image_os_hash_algo', value: 'sha256' },
          { op: 'add', path: '/instance_info/image_os_hash_value', value: sha },
          { op: 'add', path: '/instance_info/image_disk_format', value: 'raw' },
        ]),
      ),
    );
    const t1 = Date.now();
    const deploy = (uuid: string) => op.call<void>('PUT', `/v1/nodes/${uuid}/states/provision`, { target: 'active' });
    await Promise.all(lab.nodes.map((x) => deploy(x.uuid)));
    const faultsInDeploy = async () => {
      if (!withFaults) return;
      const victim = await op.killMidway(['deploying', 'wait call-back'], 'deploy_step');
      console.log(`faults: conductor ${victim} killed mid-deploy, holding ${op.kills.at(-1)!.held.length} of ${n} nodes`);
      // The image server restarts while half the fleet's downloads are in flight, once every node is
      // at its write_image step or later: before that the conductor checks the image URL itself (a
      // HEAD in prepare), and a node whose check meets the restart fails its deploy on Ironic's side.
      const gets = () => lab.imageRequests().filter((r) => r.method === 'GET' && (r.status === 200 || r.status === 206));
      const deadline = Date.now() + 900_000;
      const pastPrepare = (x: Record<string, any>) =>
        x.provision_state === 'active' || STEPS_FROM_WRITE_IMAGE.includes(x.deploy_step?.step);
      while (gets().length < Math.ceil(n / 2) || !(await lab.listNodes()).filter((x) => lab.nodes.some((m) => m.uuid === x.uuid)).every(pastPrepare)) {
        if (Date.now() > deadline) throw new Error(`not every node at write_image with half the downloads begun in 900 s (${gets().length} begun)`);
        await new Promise((r) => setTimeout(r, 1000)); // a node list per second: the API is part of what is measured
      }
      faults.imageGetsBefore = gets().length;
      await lab.restartImageServer(3000);
      console.log(`faults: image server restarted with ${faults.imageGetsBefore} downloads begun (paced at ${FAULT_PACE / 2 ** 20} MiB/s each)`);
    };
    // Nodes Ironic failed (the conductor kill, or a retry whose image check met the restart) are
    // deployed again, at most three times each.
    await Promise.all([faultsInDeploy(), op.settle('active', 'deploy failed', deploy, 1200, 3)]);
    const activeSec = (Date.now() - t1) / 1000;
    const busySec = (Date.now() - t0) / 1000;
    const reqs = apiRequests(lab).slice(before);
    // This bench's own calls: the node list polls and the provision/patch calls it made.
    const pollRequests = reqs.filter((r) => r.startsWith('GET /v1/nodes') || /^(PUT|PATCH|DELETE) \/v1\/nodes/.test(r)).length;
    for (const x of lab.nodes) {
      const { stdout } = await execa('sh', ['-c', `head -c ${IMAGE_MIB * 2 ** 20} ${x.disk.device} | sha256sum`]);
      if (stdout.split(' ')[0] !== sha) throw new Error(`${x.name}: disk ${x.disk.device} does not hold the image`);
    }
    console.log(`N=${n}${withFaults ? ' with faults' : ''}: every disk checked (${n} x sha256 ${sha.slice(0, 16)}...)`);
    if (withFaults) {
      // Counted after the deploy: by then the minute after the API came back has passed.
      faults.heartbeatsPerSecAfter = peakHeartbeatsPerSec(lab, apiBackAt, apiBackAt + 60_000);
      // Each node that had begun its download before the restart and was not deployed again (a new
      // deploy starts a new download from byte 0, rightly): its first GET after the restart shows
      // whether the cut download was resumed (206 from where it stopped) or begun again (200).
      const all = lab.imageRequests().filter((r) => r.method === 'GET');
      const ipOf = (r: RequestRecord) => r.client?.replace(/^::ffff:/, '');
      const redeployed = new Set(op.retries.filter((r) => r.from === 'deploy failed').map((r) => r.name));
      faults.rangeResumes = faults.fullRestarts = faults.finishedBefore = 0;
      for (const x of lab.nodes.filter((m) => !redeployed.has(m.name))) {
        if (!all.slice(0, faults.imageGetsBefore).some((r) => ipOf(r) === x.ip)) continue;
        const next = all.slice(faults.imageGetsBefore).find((r) => ipOf(r) === x.ip);
        if (!next) faults.finishedBefore++;
        else if (next.status === 206 && next.range && next.range !== 'bytes=0-') faults.rangeResumes++;
        else faults.fullRestarts++;
      }
      faults.kills = op.kills.map((k) => k.held.length);
    }
    return {
      n,
      faults: withFaults ? (faults as FaultReport) : undefined,
      availableSec,
      activeSec,
      agentRequests: reqs.length - pollRequests,
      pollRequests,
      busySec,
      peakAgentRssMiB: peak / 1024,
      retries: op.retries,
    };
  } catch (err) {
    lab.keepLogs(values['logs-on-failure']!, `${String(err)}\n\ntimeline:\n${timeline.join('\n')}`);
    throw err;
  } finally {
    sampling = false;
    await sampler;
    await lab.stop();
  }
}

teardownOnSignals();
const scratch = mkdtempSync(join(tmpdir(), 'metal-agent-bench-fleet-'));
try {
  const image = join(scratch, 'fleet.raw');
  await makeRawImage(image, IMAGE_MIB);
  const sha = await sha256File(image);
  const results: Result[] = [];
  if (!values['faults-only']) for (const n of [1, N]) results.push(await run(n, image, sha));
  if (!values['no-faults'] || values['faults-only']) results.push(await run(N, image, sha, true));
  const base = results[0]!;
  // The ratio to N=1 (of the run without faults; none with --faults-only).
  const ratio = (x: number, b: number) => (base.faults ? '-' : (x / b).toFixed(2)).padStart(5);
  console.log(`fleet bench: ${values.binary}, ${IMAGE_MIB} MiB raw image, ${DISK_MIB} MiB loop disks, Ironic 21.4 (1 API + 2 conductors, MariaDB, JSON-RPC)`);
  console.log('   N  to available  ratio   to active  ratio  agent req/s  (bench polls)  agents RSS peak  per agent');
  for (const r of results) {
    console.log(
      `${String(r.n).padStart(4)}  ${r.availableSec.toFixed(1).padStart(10)} s  ${ratio(r.availableSec, base.availableSec)}` +
        `  ${r.activeSec.toFixed(1).padStart(8)} s  ${ratio(r.activeSec, base.activeSec)}` +
        `  ${(r.agentRequests / r.busySec).toFixed(2).padStart(11)}  ${String(r.pollRequests).padStart(13)}` +
        `  ${r.peakAgentRssMiB.toFixed(0).padStart(11)} MiB  ${(r.peakAgentRssMiB / r.n).toFixed(1).padStart(5)} MiB` +
        (r.faults ? '  (with faults)' : ''),
    );
  }
  for (const r of results.filter((x) => x.faults)) {
    const f = r.faults!;
    console.log(
      `faults, N=${r.n}, ${LOSS_PERCENT}% packet loss and ${DELAY_MS} ms delay each way on every agent's link throughout: every node available, then active, every disk checked. ` +
        `Conductors killed: mid-cleaning holding ${f.kills[0]} nodes, mid-deploy holding ${f.kills[1]}. ironic-api down ${f.outageSec} s mid-cleaning: ` +
        `heartbeats in the busiest second ${f.heartbeatsPerSecBefore} in the minute before, ${f.heartbeatsPerSecAfter} in the minute after. ` +
        `Image server restarted with ${f.imageGetsBefore} downloads begun; of the nodes not deployed again, ${f.rangeResumes} resumed with a Range, ${f.fullRestarts} started again from byte 0, ${f.finishedBefore} had finished.`,
    );
  }
  for (const r of results) {
    // What Ironic failed and the bench retried as an operator would, grouped by state and cause.
    const causes = new Map<string, number>();
    for (const x of r.retries) {
      const key = `${x.from}: ${x.lastError.replace(/[0-9a-f]{8}-[0-9a-f-]{27}/g, 'UUID').slice(0, 140)}`;
      causes.set(key, (causes.get(key) ?? 0) + 1);
    }
    console.log(`N=${r.n}${r.faults ? ' with faults' : ''}: ${r.retries.length} node retries${r.retries.length ? ':' : ''}`);
    for (const [cause, count] of causes) console.log(`  ${String(count).padStart(3)} x ${cause}`);
  }
} finally {
  rmSync(scratch, { recursive: true, force: true });
}
