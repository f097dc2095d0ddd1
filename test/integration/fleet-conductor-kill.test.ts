import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFleetLab, waitForAll, type FleetLab } from '../helpers/fleet-lab.ts';
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
  // The last state/conductor/reservation seen per node: every change goes into the timeline.
  const last = new Map<string, string>();
  const record = (nodes: Array<Record<string, any>>) => {
    for (const n of nodes) {
      const step = n.clean_step?.step ?? n.deploy_step?.step ?? '';
      const now = `${n.provision_state}${step ? ` [${step}]` : ''}, conductor ${n.conductor ?? '-'}, lock ${n.reservation ?? '-'}${n.maintenance ? ', maintenance' : ''}`;
      if (last.get(n.uuid) !== now) {
        last.set(n.uuid, now);
        note(`${n.name}: ${now}${n.last_error ? ` (last_error: ${n.last_error})` : ''}`);
      }
    }
  };
  const retried: string[] = [];

  /**
   * An operator's call right after a takeover: the API's hash ring can still name the dead conductor
   * for a few seconds (until its heartbeat is heartbeat_timeout old and the ring is rebuilt), and the
   * call then fails with 500 "Unable to establish connection" to that conductor's JSON-RPC port. The
   * operator tries again; the test does too, for at most 60 s, and notes each such answer.
   */
  async function asOperator<T>(method: string, path: string, body?: unknown): Promise<T> {
    const deadline = Date.now() + 60_000;
    for (;;) {
      try {
        return await lab.api<T>(method, path, body);
      } catch (err) {
        const text = String((err as Error).message);
        if (!/: 500 .*Unable to establish connection/.test(text) || Date.now() > deadline) throw err;
        note(`${method} ${path}: the API still routes to the dead conductor (500 connection refused): again in 2 s`);
        await sleep(2_000);
      }
    }
  }

  beforeAll(async () => {
    teardownOnSignals();
    await makeRawImage(image, IMAGE_MIB);
    lab = await startFleetLab({ agents: N, diskMiB: DISK_MIB, tag: 'k' });
    note(`lab up: API ${lab.apiUrl}, conductors 1=${lab.conductorHosts[1]} (pid ${lab.conductorPid(1)}), 2=${lab.conductorHosts[2]} (pid ${lab.conductorPid(2)}); ${N} agents enrolled`);
  }, 300_000);

  afterAll(async () => {
    await lab?.stop();
    rmSync(scratch, { recursive: true, force: true });
    console.log(`fleet timeline:\n${timeline.map((e) => `  ${e.t.toFixed(1).padStart(6)}s  ${e.text}`).join('\n')}`);
  }, 120_000);

  /**
   * Waits for a node of the given phase to be in flight on some conductor, SIGKILLs that conductor,
   * and returns its number. "In flight": a step running (`clean_step`/`deploy_step` set) while the node
   * is in `activeState` or its wait state.
   */
  async function killMidway(states: string[], stepField: 'clean_step' | 'deploy_step'): Promise<number> {
    const byHost = Object.fromEntries(Object.entries(lab.conductorHosts).map(([n, h]) => [h, Number(n)]));
    let victim: number | undefined;
    const deadline = Date.now() + 120_000;
    while (victim === undefined) {
      if (Date.now() > deadline) throw new Error(`no node reached ${states.join('/')} with a ${stepField} in 120 s`);
      const nodes = await lab.listNodes();
      record(nodes);
      const busy = nodes.find((n) => states.includes(n.provision_state) && n[stepField]?.step && byHost[n.conductor] !== undefined);
      if (busy) victim = byHost[busy.conductor];
      else await sleep(200);
    }
    const pid = await lab.killConductor(victim!);
    const nodes = await lab.listNodes();
    const held = nodes.filter((n) => n.conductor === lab.conductorHosts[victim!]).map((n) => `${n.name} (${n.provision_state})`);
    note(`SIGKILL conductor ${victim} (${lab.conductorHosts[victim!]}, pid ${pid}); it held ${held.join(', ') || 'none'}`);
    record(nodes);
    return victim!;
  }

  /** Waits until every node is in `goal`; nodes Ironic failed on the takeover are retried once each by `retry`. */
  async function settle(goal: string, failed: string, retry: (uuid: string) => Promise<void>, timeoutSec: number) {
    const done = new Set<string>();
    await waitForAll(lab, [goal], timeoutSec, async (nodes) => {
      record(nodes);
      for (const n of nodes) {
        if (n.provision_state !== failed || done.has(n.uuid)) continue;
        done.add(n.uuid);
        retried.push(`${n.name}: ${failed} (${n.last_error})`);
        note(`${n.name} is ${failed} after the takeover (last_error: ${n.last_error}): retried as an operator would`);
        await retry(n.uuid);
      }
    });
  }

  it('cleans all nodes at once while a conductor dies mid-cleaning: all end available', async () => {
    await Promise.all(lab.nodes.map((n) => lab.api('PUT', `/v1/nodes/${n.uuid}/states/provision`, { target: 'provide' })));
    note('provide sent for all nodes');
    const victim = await killMidway(['cleaning', 'clean wait'], 'clean_step');
    const survivor = victim === 1 ? 2 : 1;
    await settle(
      'available',
      'clean failed',
      async (uuid) => {
        const n = await lab.api<Record<string, any>>('GET', `/v1/nodes/${uuid}?fields=maintenance`);
        if (n.maintenance) await asOperator('DELETE', `/v1/nodes/${uuid}/maintenance`);
        await asOperator('PUT', `/v1/nodes/${uuid}/states/provision`, { target: 'manage' });
        await waitForAll(lab, ['manageable'], 60, record, [uuid]);
        await asOperator('PUT', `/v1/nodes/${uuid}/states/provision`, { target: 'provide' });
      },
      240,
    );
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
    for (const n of [1, 2]) {
      let alive = true;
      try {
        process.kill(lab.conductorPid(n), 0);
      } catch {
        alive = false;
      }
      if (!alive) {
        await lab.startConductor(n);
        note(`conductor ${n} (${lab.conductorHosts[n]}) started again, pid ${lab.conductorPid(n)}`);
      }
    }
    const sha = await sha256File(image);
    const url = lab.serveImage(image);
    const deploy = async (uuid: string) => asOperator<void>('PUT', `/v1/nodes/${uuid}/states/provision`, { target: 'active' });
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
    await killMidway(['deploying', 'wait call-back'], 'deploy_step');
    await settle('active', 'deploy failed', deploy, 300);
    const nodes = await lab.listNodes();
    note(`all active; conductors now: ${nodes.map((n) => `${n.name}=${n.conductor}`).join(', ')}`);
    // Every disk holds the image, byte for byte (the rest of the disk is past the image's end).
    for (const n of lab.nodes) {
      const { stdout } = await execa('sh', ['-c', `head -c ${IMAGE_MIB * 2 ** 20} ${n.disk.device} | sha256sum`]);
      expect(stdout.split(' ')[0], `${n.name} (${n.disk.device})`).toBe(sha);
    }
    note(`every disk checked: ${lab.nodes.length} x sha256 ${sha.slice(0, 16)}...; retried: ${retried.join('; ') || 'none'}`);
  }, 480_000);
});
