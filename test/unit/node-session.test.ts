import { afterEach, describe, expect, it } from 'vitest';
import { Agent } from '../../src/agent.ts';
import { loadConfig } from '../../src/config.ts';
import { armedKexec, armKexec, type PreparedHandoff } from '../../src/system/kexec/index.ts';
import { startFakeIronic, until } from '../helpers/fake-ironic.ts';
import { freePort } from '../helpers/ironic.ts';

// What the agent knows of the node is one session per agent token. When
// Ironic wipes the token (a phase ended without a reboot) and hands out a new
// one, the agent behaves like a freshly booted ramdisk: the deploy state, the
// status message and an armed kexec handoff of the old session are gone. The
// conductor is a stand-in on loopback that answers as Ironic's ramdisk API.

const FIRST = 'F1rStT0kEnOfThEcLeAnInGpHaSe0123456789abcd';
const SECOND = 'S2cOnDt0KeNoFtHeDePlOyPhAsE0123456789abcd';

describe('a new agent token', () => {
  const cleanups: Array<() => Promise<void>> = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  it('replaces the whole node session: deploy state, status message and armed kexec handoff are gone', async () => {
    const current = { token: FIRST };
    const ironic = await startFakeIronic({ lookupToken: () => current.token, nodeToken: () => current.token, heartbeatTimeoutSec: 1 });
    cleanups.push(ironic.close);
    const port = await freePort();
    const agent = new Agent(
      loadConfig({
        argv: ['--api-url', ironic.url, '--listen-host', '127.0.0.1', '--listen-port', String(port), '--advertise-port', String(port),
          '--no-enable-auto-tls', '--lookup-interval', '0', '--bootif', '01-52-54-00-15-00-07'],
        env: {},
        cmdlineText: '',
      }),
    );
    cleanups.push(() => agent.stop());
    await agent.start();
    expect(agent.tokens.value).toBe(FIRST);

    // What a deploy in the first session leaves behind.
    agent.progress('kexec_handoff: loaded /boot/vmlinuz');
    agent.deployState.rootDevice = '/dev/vdz';
    agent.deployState.isWholeDisk = true;
    agent.deployState.kernelParams.push('nosmt');
    agent.deployState.partitionUuids = { root_uuid: 'aaaa' };
    agent.lastCommandNode = { uuid: 'node-1', instance_info: { image_source: 'old' } };
    const prepared = { plan: { device: '/dev/vdz' }, real: false } as unknown as PreparedHandoff;
    armKexec(agent.deployState, prepared);
    expect(armedKexec(agent.deployState)).toBe(prepared);
    await until('a heartbeat with the status message', () =>
      ironic.heartbeatBodies().some((h) => h.agent_status_message === 'kexec_handoff: loaded /boot/vmlinuz'));

    // Ironic wipes the token: the next heartbeat is refused, the lookup hands out a new one.
    current.token = SECOND;
    await until('a heartbeat with the new token', () => ironic.heartbeatBodies().some((h) => h.agent_token === SECOND));
    expect(agent.tokens.value).toBe(SECOND);
    expect(agent.deployState).toEqual({ partitionUuids: {}, kernelParams: [] });
    expect(armedKexec(agent.deployState)).toBeUndefined();
    expect(agent.lastCommandNode).toBeUndefined();
    expect(agent.lastNode()).toMatchObject({ uuid: 'node-1', provision_state: 'clean wait' });
    const fresh = ironic.heartbeatBodies().filter((h) => h.agent_token === SECOND);
    expect(fresh.every((h) => h.agent_status === undefined && h.agent_status_message === undefined)).toBe(true);
  });
});
