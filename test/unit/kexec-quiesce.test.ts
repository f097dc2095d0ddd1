import { describe, expect, it } from 'vitest';
import { Agent } from '../../src/agent.ts';
import { loadConfig } from '../../src/config.ts';
import type { ConductorClient, HeartbeatBody } from '../../src/conductor/client.ts';
import { ConductorSession } from '../../src/conductor/session.ts';

// Before a kexec -e (and a real power action) the agent quiesces: a last
// heartbeat, then no more heartbeats and no API. The heartbeat loop looks at
// `stopped` before it sends, so a wake-up followed at once by stop() used to
// send nothing.

describe('Agent.quiesce before a handoff', () => {
  it('sends one last heartbeat, then stops heartbeating', async () => {
    const agent = new Agent(loadConfig({ argv: ['--standalone'], env: {}, cmdlineText: '' }));
    const sent: HeartbeatBody[] = [];
    let notify: (() => void) | undefined;
    const client = {
      async heartbeat(_uuid: string, body: HeartbeatBody) {
        sent.push(body);
        notify?.();
        return { kind: 'ok' as const };
      },
    } as unknown as ConductorClient;
    const session = new ConductorSession({
      client,
      macs: [],
      nodeUuid: 'node-1',
      lookupTimeoutSec: 1,
      lookupIntervalSec: 1,
      heartbeatBody: () => ({ callback_url: 'https://127.0.0.1:9999', agent_version: 'test' }),
      onLookup: () => undefined,
      token: () => 'token',
    });
    session.nodeUuid = 'node-1';
    (agent as unknown as { session: ConductorSession }).session = session;
    const first = new Promise<void>((res) => (notify = res));
    const loop = session.heartbeatLoop();
    await first;
    expect(sent).toHaveLength(1);

    await agent.quiesce();
    await loop; // the loop ends once stopped
    expect(sent).toHaveLength(2);
    expect(sent[1]!.agent_token).toBe('token');
    await agent.stop();
  });

  it('ipa-kexec on the kernel command line turns the run_image handoff on', () => {
    expect(loadConfig({ argv: ['--standalone'], env: {}, cmdlineText: 'ipa-kexec=1' }).kexec).toBe(true);
    expect(loadConfig({ argv: ['--standalone'], env: {}, cmdlineText: '' }).kexec).toBe(false);
    expect(loadConfig({ argv: ['--standalone', '--kexec'], env: {}, cmdlineText: '' }).kexec).toBe(true);
  });
});
