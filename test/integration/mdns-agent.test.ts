import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startAgent, type AgentProcess } from '../helpers/agent-process.ts';
import { startIronic, type Ironic } from '../helpers/ironic.ts';
import { createNetns, destroyNetns, linkVeth, macOf, startRadvd, type Netns } from '../helpers/netns.ts';

// Issue 5 end to end: no DHCP anywhere. The node namespace gets its address
// from SLAAC (radvd) or a static IPv4 one; the agent (ipa-api-url=mdns) finds
// a real Ironic publishing itself over mDNS, looks its node up and heartbeats
// through automated cleaning to `available`.

interface Lab {
  conductor: Netns;
  node: Netns;
  /** Where Ironic listens and what it publishes. */
  hostIp: string;
}

/** Ironic in `conductor`, our agent in `node` with ipa-api-url=mdns; the node enrolled with the node side's MAC. */
function mdnsAgentFlow(tags: [string, string], setUp: (conductor: Netns, node: Netns) => Promise<string>, listenHost: string) {
  const ctx = {} as { lab: Lab; ironic: Ironic; agent: AgentProcess; uuid: string };
  beforeAll(async () => {
    const conductor = await createNetns(tags[0]);
    const node = await createNetns(tags[1]);
    ctx.lab = { conductor, node, hostIp: await setUp(conductor, node) };
    ctx.ironic = await startIronic({ netns: conductor.name, hostIp: ctx.lab.hostIp, port: 6385, mdns: true });
    ctx.uuid = await ctx.ironic.enroll(await macOf(node, 'eth0'));
    ctx.agent = await startAgent({
      apiUrl: 'mdns',
      allowedDevices: [],
      prefix: ['ip', 'netns', 'exec', node.name],
      listenHost,
      extraArgs: ['--lookup-timeout', '120'],
    });
  }, 240_000);

  afterAll(async () => {
    await ctx.agent?.stop();
    await ctx.ironic?.stop();
    await destroyNetns(ctx.lab?.node, ctx.lab?.conductor);
  });
  return ctx;
}

async function cleanedToAvailable(ctx: ReturnType<typeof mdnsAgentFlow>): Promise<string> {
  const n = await ctx.ironic.waitForState(ctx.uuid, ['available', 'clean failed'], 240);
  expect(n.last_error ?? null, ctx.agent.output().slice(-3000)).toBeNull();
  expect(n.provision_state).toBe('available');
  expect(ctx.agent.output()).toMatch(/lookup succeeded/);
  return ctx.agent.output();
}

describe('agent with ipa-api-url=mdns on a SLAAC-only network', () => {
  const ctx = mdnsAgentFlow(['mac', 'man'], async (conductor, node) => {
    await linkVeth(conductor, 'eth0', node, 'eth0');
    await conductor.ip(['addr', 'add', 'fd00:251::1/64', 'dev', 'eth0', 'nodad']);
    await startRadvd(conductor, 'eth0', 'fd00:251::/64');
    return 'fd00:251::1';
  }, '::');

  it('discovers Ironic over IPv6, looks up and heartbeats through cleaning', async () => {
    const out = await cleanedToAvailable(ctx);
    expect(out).toMatch(/"url":"http:\/\/\[fd00:251::1\]:6385".*conductor discovered over mDNS/);
    expect(out).toMatch(/"callbackUrl":"https:\/\/\[fd00:251:[0-9a-f:]+\]:\d+"/);
  }, 260_000);
});

describe('agent with ipa-api-url=mdns on an IPv4-only network', () => {
  const ctx = mdnsAgentFlow(['ma4c', 'ma4n'], async (conductor, node) => {
    await linkVeth(conductor, 'eth0', node, 'eth0', { up: false });
    // No IPv6 on the conductor's side: Ironic is published and reached over IPv4 only.
    await conductor.sysctl('net/ipv6/conf/eth0/disable_ipv6', '1');
    await conductor.ip(['addr', 'add', '10.250.5.1/24', 'dev', 'eth0']);
    await conductor.ip(['link', 'set', 'eth0', 'up']);
    await node.ip(['addr', 'add', '10.250.5.10/24', 'dev', 'eth0']);
    return '10.250.5.1';
  }, '0.0.0.0');

  it('discovers Ironic over IPv4 multicast, looks up and heartbeats through cleaning', async () => {
    const out = await cleanedToAvailable(ctx);
    expect(out).toMatch(/"url":"http:\/\/10\.250\.5\.1:6385".*conductor discovered over mDNS/);
    expect(out).toMatch(/"callbackUrl":"https:\/\/10\.250\.5\.10:\d+"/);
  }, 260_000);
});
