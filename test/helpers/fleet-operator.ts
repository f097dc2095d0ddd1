import { setTimeout as sleep } from 'node:timers/promises';
import { waitForAll, type FleetLab } from './fleet-lab.ts';

// What an operator does to a fleet whose conductor died under it (issue 20), shared by the
// make-test fleet (test/integration/fleet-conductor-kill.test.ts, N=4) and the fleet bench
// (bench/fleet.ts, N=40): kill the conductor that holds work in flight, call the API again while
// its hash ring still names the dead one, and retry the nodes Ironic failed. Every step is noted,
// so a run's timeline says what happened and which nodes were retried, and why.

export interface Retry {
  name: string;
  at: number;
  /** The state the node was retried from (`clean failed`, `deploy failed`). */
  from: string;
  lastError: string;
}

export interface Kill {
  conductor: number;
  /** The nodes the hash ring gave it when it died: "name (state)". */
  held: string[];
  at: number;
}

export interface FleetOperator {
  /**
   * A REST call as an operator makes it right after a takeover: the API's hash ring can still name
   * the dead conductor for a few seconds (until its heartbeat is heartbeat_timeout old and the ring
   * is rebuilt), and the call then fails with 500 "Unable to establish connection" to that
   * conductor's JSON-RPC port. The operator tries again every 2 s, for at most 60 s.
   */
  call<T = any>(method: string, path: string, body?: unknown): Promise<T>;
  /**
   * Waits until a node has a step of the given kind in flight (`clean_step`/`deploy_step` set, in one
   * of `states`) on some conductor, SIGKILLs that conductor, and returns its number.
   */
  killMidway(states: string[], stepField: 'clean_step' | 'deploy_step'): Promise<number>;
  /**
   * Waits until every node is in `goal`; a node found in `failed` is retried by `retry`, at most
   * `maxRetries` times each (a retry can meet the next fault), and each retry is kept in `retries`.
   */
  settle(goal: string, failed: string, retry: (uuid: string) => Promise<void>, timeoutSec: number, maxRetries?: number): Promise<void>;
  /** Takes a `clean failed` node back to cleaning: maintenance off, manage, provide. */
  recleanNode(uuid: string): Promise<void>;
  /** Starts again (under its own host name) every conductor that is not running, and notes it. */
  reviveConductors(): Promise<void>;
  /** Every node's state changes as seen by the polls (fed by killMidway and settle). */
  record(nodes: Array<Record<string, any>>): void;
  retries: Retry[];
  kills: Kill[];
}

export function fleetOperator(lab: FleetLab, note: (text: string) => void): FleetOperator {
  const last = new Map<string, string>();
  const retries: Retry[] = [];
  const kills: Kill[] = [];
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

  async function call<T>(method: string, path: string, body?: unknown): Promise<T> {
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

  return {
    call,
    record,
    retries,
    kills,
    async killMidway(states, stepField) {
      const byHost = Object.fromEntries(Object.entries(lab.conductorHosts).map(([n, h]) => [h, Number(n)]));
      let victim: number | undefined;
      const deadline = Date.now() + 300_000;
      while (victim === undefined) {
        if (Date.now() > deadline) throw new Error(`no node reached ${states.join('/')} with a ${stepField} in 300 s`);
        const nodes = await lab.listNodes();
        record(nodes);
        const busy = nodes.find((n) => states.includes(n.provision_state) && n[stepField]?.step && byHost[n.conductor] !== undefined);
        if (busy) victim = byHost[busy.conductor];
        else await sleep(200);
      }
      const pid = await lab.killConductor(victim!);
      const nodes = await lab.listNodes();
      const held = nodes.filter((n) => n.conductor === lab.conductorHosts[victim!]).map((n) => `${n.name} (${n.provision_state})`);
      kills.push({ conductor: victim!, held, at: Date.now() });
      note(`SIGKILL conductor ${victim} (${lab.conductorHosts[victim!]}, pid ${pid}); it held ${held.join(', ') || 'none'}`);
      record(nodes);
      return victim!;
    },
    async settle(goal, failed, retry, timeoutSec, maxRetries = 1) {
      const tries = new Map<string, number>();
      await waitForAll(lab, [goal], timeoutSec, async (nodes) => {
        record(nodes);
        // The nodes failed by one fault are retried side by side (a manage waits for its node),
        // each once its conductor has let go: Ironic saves a failure in steps under the lock.
        await Promise.all(
          nodes
            .filter((n) => n.provision_state === failed && !n.reservation)
            .map((n) => {
              const done = tries.get(n.uuid) ?? 0;
              if (done >= maxRetries) throw new Error(`${n.name}: ${failed} again after ${done} retries: ${n.last_error}`);
              tries.set(n.uuid, done + 1);
              retries.push({ name: n.name, at: Date.now(), from: failed, lastError: String(n.last_error ?? '') });
              note(`${n.name} is ${failed} (last_error: ${n.last_error}): retried as an operator would`);
              return retry(n.uuid);
            }),
        );
      });
    },
    async reviveConductors() {
      for (const n of Object.keys(lab.conductorHosts).map(Number)) {
        try {
          process.kill(lab.conductorPid(n), 0);
          continue;
        } catch {
          // gone: started again below
        }
        await lab.startConductor(n);
        note(`conductor ${n} (${lab.conductorHosts[n]}) started again, pid ${lab.conductorPid(n)}`);
      }
    },
    async recleanNode(uuid) {
      const n = await lab.api<Record<string, any>>('GET', `/v1/nodes/${uuid}?fields=name,maintenance,last_error`);
      // Ironic 21.4's token race (README: a heartbeat queued before provide's reboot) leaves the
      // node's agent URL recorded and its token wiped, while the agent holds the token it was given:
      // every call Ironic makes then gets 401, and provide fails again. A real node's reboot would
      // have restarted its ramdisk; here fake power does not, so the operator power-cycles it.
      if (/401 Unauthorized: Token invalid/.test(String(n.last_error))) {
        await lab.restartAgent(uuid);
        note(`${n.name}: its agent refused Ironic's token-less calls (401): agent restarted, as a power cycle would`);
      }
      if (n.maintenance) await call('DELETE', `/v1/nodes/${uuid}/maintenance`);
      await call('PUT', `/v1/nodes/${uuid}/states/provision`, { target: 'manage' });
      await waitForAll(lab, ['manageable'], 120, record, [uuid]);
      await call('PUT', `/v1/nodes/${uuid}/states/provision`, { target: 'provide' });
    },
  };
}
