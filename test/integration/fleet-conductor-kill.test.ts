import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startFleetLab, type FleetLab } from '../helpers/fleet-lab.ts';
import { fleetOperator, type FleetOperator } from '../helpers/fleet-operator.ts';
import { makeRawImage, sha256File } from '../helpers/images.ts';
import { teardownOnSignals } from '../helpers/teardown.ts';

// Issue 20, Show it 3: a fleet of N=4 agents against Ironic 21.4 in its distributed shape
// (lab/fleet: ironic-api + two ironic-conductors, MariaDB, JSON-RPC), each agent in its own
// namespace with its own MAC and loop disk. All are cleaned at once, then deployed at once from one
// image server; one conductor is SIGKILLed while cleaning is in flight, and (brought back, so two
// are up again) one is SIGKILLed while the deploy is in flight. The survivor takes the nodes over.
// What 21.4 does with each node decides what follows (conductor/manager.py _check_orphan_nodes):
// a node in `clean wait`/`wait call-back` (no lock held) just goes on with the survivor once the
// API's hash ring drops the dead conductor; a node the dead conductor had locked (`cleaning`,
// `deploying`) is released and failed (`clean failed` + maintenance, `deploy failed`): the test then
// retries it as an operator would (maintenance unset, manage, provide; deploy again), and says so.
// Every node must end `available`, then `active`, with the image's bytes on its disk.

const N = 4;
const IMAGE_MIB = 12;
const DISK_MIB = 32;
const LOGS_ON_FAILURE = 'build/fleet-conductor-kill-failure';

interface Event {
  t: number;
  text: string;
}

describe('a fleet under a conductor kill (Ironic 21.4, two conductors, MariaDB, JSON-RPC)', () => {
  let lab: FleetLab;
  const scratch = mkdtempSync(join(tmpdir(), 'metal-agent-fleet-img-'));
  const image = join(scratch, 'fleet.raw');
  const t0 = Date.now();
  const timeline: Event[] = [];
  const note = (text: string) => {
    const e = { t: (Date.now() - t0) / 1000, text };
    timeline.push(e);
    console.log(`[fleet ${e.t.toFixed(1)}s] ${text}`);
  };
  let op: FleetOperator;

  beforeAll(async () => {
    teardownOnSignals();
    await makeRawImage(image, IMAGE_MIB);
    lab = await startFleetLab({ agents: N, diskMiB: DISK_MIB, tag: 'k' });
    op = fleetOperator(lab, note);
    note(`lab up: API ${lab.apiUrl}, conductors 1=${lab.conductorHosts[1]} (pid ${lab.conductorPid(1)}), 2=${lab.conductorHosts[2]} (pid ${lab.conductorPid(2)}); ${N} agents enrolled`);
  }, 300_000);

  // A failed case keeps the lab's logs (API, conductors, every agent) where CI's artefacts are.
  afterEach((ctx) => {
    if (ctx.task.result?.state === 'fail' && lab) lab.keepLogs(LOGS_ON_FAILURE, `${ctx.task.name}\n\n${timeline.map((e) => `${e.t.toFixed(1)}s ${e.text}`).join('\n')}`);
  });

  afterAll(async () => {
    await lab?.stop();
    rmSync(scratch, { recursive: true, force: true });
    console.log(`fleet timeline:\n${timeline.map((e) => `  ${e.t.toFixed(1).padStart(6)}s  ${e.text}`).join('\n')}`);
  }, 120_000);

  it('cleans all nodes at once while a conductor dies mid-cleaning: all end available', async () => {
    await Promise.all(lab.nodes.map((n) => lab.api('PUT', `/v1/nodes/${n.uuid}/states/provision`, { target: 'provide' })));
    note('provide sent for all nodes');
    const victim = await op.killMidway(['cleaning', 'clean wait'], 'clean_step');
    const survivor = victim === 1 ? 2 : 1;
    await op.settle('available', 'clean failed', op.recleanNode, 240);
    const nodes = await lab.listNodes();
    note(`all available; conductors now: ${nodes.map((n) => `${n.name}=${n.conductor}`).join(', ')}`);
    for (const n of nodes) {
      expect(n.provision_state).toBe('available');
      expect(n.maintenance).toBe(false);
      // The dead conductor holds nothing: every node is the survivor's now.
      expect(n.conductor).toBe(lab.conductorHosts[survivor]);
    }
  }, 420_000);

  it('deploys all nodes at once from one image server while a conductor dies mid-deploy: all end active, disks byte-identical', async () => {
    // Two conductors again: the killed one comes back under its own host name.
    await op.reviveConductors();
    const sha = await sha256File(image);
    const url = lab.serveImage(image);
    const deploy = async (uuid: string) => op.call<void>('PUT', `/v1/nodes/${uuid}/states/provision`, { target: 'active' });
    await Promise.all(
      lab.nodes.map(async (n) => {
        await lab.api('PATCH', `/v1/nodes/${n.uuid}`, [
          { op: 'add', path: '/instance_info/image_source', value: url },
          { op: 'add', path: '/instance_info/image_os_hash_algo', value: 'sha256' },
          { op: 'add', path: '/instance_info/image_os_hash_value', value: sha },
          { op: 'add', path: '/instance_info/image_disk_format', value: 'raw' },
        ]);
      }),
    );
    await Promise.all(lab.nodes.map((n) => deploy(n.uuid)));
    note(`deploy sent for all nodes (${url}, sha256 ${sha.slice(0, 16)}...)`);
    await op.killMidway(['deploying', 'wait call-back'], 'deploy_step');
    await op.settle('active', 'deploy failed', deploy, 300);
    const nodes = await lab.listNodes();
    note(`all active; conductors now: ${nodes.map((n) => `${n.name}=${n.conductor}`).join(', ')}`);
    // Every disk holds the image, byte for byte (the rest of the disk is past the image's end).
    for (const n of lab.nodes) {
      const { stdout } = await execa('sh', ['-c', `head -c ${IMAGE_MIB * 2 ** 20} ${n.disk.device} | sha256sum`]);
      expect(stdout.split(' ')[0], `${n.name} (${n.disk.device})`).toBe(sha);
    }
    note(`every disk checked: ${lab.nodes.length} x sha256 ${sha.slice(0, 16)}...; retried: ${op.retries.map((r) => `${r.name}: ${r.from} (${r.lastError})`).join('; ') || 'none'}`);
  }, 480_000);
});
