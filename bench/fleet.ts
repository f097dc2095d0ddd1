// Fleet bench (issue 20, Show it 1): N agents from the one built executable, each in its own network
// namespace with its own MAC and loop disk, against Ironic 21.4 in its distributed shape (lab/fleet:
// ironic-api + two conductors, MariaDB, JSON-RPC; test/helpers/fleet-lab.ts). All nodes are cleaned
// at once, then deployed at once from one image server; the same is done with one node in the same
// run, and the wall times are printed as a ratio to it. Also: the API's request rate while the fleet
// works (from ironic-api's own request log: every agent heartbeat and lookup, and this bench's polls,
// which are counted apart), the agents' memory on the host (sum of VmRSS of every process in the
// agents' namespaces, sampled every 2 s, peak), and every disk's first image-size bytes checked
// against the image's sha256. No faults here yet (the API stop, netem loss and image server
// restart are to come); the conductor-kill fault is shown in make test (fleet-conductor-kill).
//
//   npx tsx bench/fleet.ts [--agents 40] [--binary build/metal-agent] [--image-mib 16] [--disk-mib 32]
import { readFileSync, rmSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { execa } from 'execa';
import { startFleetLab, waitForAll, type FleetLab } from '../test/helpers/fleet-lab.ts';
import { makeRawImage, sha256File } from '../test/helpers/images.ts';
import { teardownOnSignals } from '../test/helpers/teardown.ts';

const { values } = parseArgs({
  options: {
    agents: { type: 'string', default: '40' },
    binary: { type: 'string', default: 'build/metal-agent' },
    'image-mib': { type: 'string', default: '16' },
    'disk-mib': { type: 'string', default: '32' },
  },
});
const N = Number(values.agents);
const IMAGE_MIB = Number(values['image-mib']);
const DISK_MIB = Number(values['disk-mib']);

interface Result {
  n: number;
  availableSec: number;
  activeSec: number;
  agentRequests: number;
  pollRequests: number;
  busySec: number;
  peakAgentRssMiB: number;
}

/** Every request line in ironic-api's log (oslo.service's wsgi access lines). */
function apiRequests(lab: FleetLab): string[] {
  const log = readFileSync(join(lab.stateDir, 'api.log'), 'utf8');
  return [...log.matchAll(/"(GET|POST|PUT|PATCH|DELETE) (\S+) HTTP\/1\.[01]"/g)].map((m) => `${m[1]} ${m[2]}`);
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

async function run(n: number, image: string, sha: string): Promise<Result> {
  const lab = await startFleetLab({ agents: n, diskMiB: DISK_MIB, binary: values.binary, tag: `b${n}`, apiWorkers: 2 });
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
    const t0 = Date.now();
    await Promise.all(lab.nodes.map((x) => lab.api('PUT', `/v1/nodes/${x.uuid}/states/provision`, { target: 'provide' })));
    await waitForAll(lab, ['available'], 600, (nodes) => {
      const bad = nodes.find((x) => x.provision_state === 'clean failed');
      if (bad) throw new Error(`${bad.name}: clean failed: ${bad.last_error}`);
    });
    const availableSec = (Date.now() - t0) / 1000;
    const url = lab.serveImage(image);
    await Promise.all(
      lab.nodes.map((x) =>
        lab.api('PATCH', `/v1/nodes/${x.uuid}`, [
          { op: 'add', path: '/instance_info/image_source', value: url },
          { op: 'add', path: '/instance_info/image_os_hash_algo', value: 'sha256' },
          { op: 'add', path: '/instance_info/image_os_hash_value', value: sha },
          { op: 'add', path: '/instance_info/image_disk_format', value: 'raw' },
        ]),
      ),
    );
    const t1 = Date.now();
    await Promise.all(lab.nodes.map((x) => lab.api('PUT', `/v1/nodes/${x.uuid}/states/provision`, { target: 'active' })));
    await waitForAll(lab, ['active'], 900, (nodes) => {
      const bad = nodes.find((x) => x.provision_state === 'deploy failed');
      if (bad) throw new Error(`${bad.name}: deploy failed: ${bad.last_error}`);
    });
    const activeSec = (Date.now() - t1) / 1000;
    const busySec = (Date.now() - t0) / 1000;
    const reqs = apiRequests(lab).slice(before);
    // This bench's own calls: the node list polls and the provision/patch calls it made.
    const pollRequests = reqs.filter((r) => r.startsWith('GET /v1/nodes') || /^(PUT|PATCH) \/v1\/nodes/.test(r)).length;
    for (const x of lab.nodes) {
      const { stdout } = await execa('sh', ['-c', `head -c ${IMAGE_MIB * 2 ** 20} ${x.disk.device} | sha256sum`]);
      if (stdout.split(' ')[0] !== sha) throw new Error(`${x.name}: disk ${x.disk.device} does not hold the image`);
    }
    console.log(`N=${n}: every disk checked (${n} x sha256 ${sha.slice(0, 16)}...)`);
    return { n, availableSec, activeSec, agentRequests: reqs.length - pollRequests, pollRequests, busySec, peakAgentRssMiB: peak / 1024 };
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
  for (const n of [1, N]) results.push(await run(n, image, sha));
  const base = results[0]!;
  console.log(`fleet bench: ${values.binary}, ${IMAGE_MIB} MiB raw image, ${DISK_MIB} MiB loop disks, Ironic 21.4 (1 API + 2 conductors, MariaDB, JSON-RPC)`);
  console.log('   N  to available  ratio   to active  ratio  agent req/s  (bench polls)  agents RSS peak  per agent');
  for (const r of results) {
    console.log(
      `${String(r.n).padStart(4)}  ${r.availableSec.toFixed(1).padStart(10)} s  ${(r.availableSec / base.availableSec).toFixed(2).padStart(5)}` +
        `  ${r.activeSec.toFixed(1).padStart(8)} s  ${(r.activeSec / base.activeSec).toFixed(2).padStart(5)}` +
        `  ${(r.agentRequests / r.busySec).toFixed(2).padStart(11)}  ${String(r.pollRequests).padStart(13)}` +
        `  ${r.peakAgentRssMiB.toFixed(0).padStart(11)} MiB  ${(r.peakAgentRssMiB / r.n).toFixed(1).padStart(5)} MiB`,
    );
  }
} finally {
  rmSync(scratch, { recursive: true, force: true });
}
