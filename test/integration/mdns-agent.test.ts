import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startAgent, type AgentProcess } from '../helpers/agent-process.ts';
import { startIronic, type Ironic, type IronicOptions } from '../helpers/ironic.ts';
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
function mdnsAgentFlow(
  tags: [string, string],
  setUp: (conductor: Netns, node: Netns) => Promise<string>,
  listenHost: string,
  ironicOpts: Partial<IronicOptions> = {},
) {
  const ctx = {} as {
    lab: Lab;
    ironic: Ironic;
    agent: AgentProcess;
    uuid: string;
    /** Every agent_url Ironic held while cleaning (it wipes it at the end). */
    agentUrls: Set<string>;
    /** The node once cleaning ended; watched from before the agent starts. */
    cleaned: Promise<Record<string, any>>;
  };
  beforeAll(async () => {
    const conductor = await createNetns(tags[0]);
    const node = await createNetns(tags[1]);
    ctx.lab = { conductor, node, hostIp: await setUp(conductor, node) };
    ctx.ironic = await startIronic({ netns: conductor.name, hostIp: ctx.lab.hostIp, port: 6385, mdns: true, ...ironicOpts });
    ctx.uuid = await ctx.ironic.enroll(await macOf(node, 'eth0'));
    // Watch before the agent starts: without disks, cleaning takes well under
    // a second, and agent_url lives only that long.
    ctx.agentUrls = new Set();
    ctx.cleaned = ctx.ironic.waitForState(ctx.uuid, ['available', 'clean failed'], 300, {
      everyMs: 100,
      onNode: (n) => void (n.driver_internal_info?.agent_url && ctx.agentUrls.add(n.driver_internal_info.agent_url)),
    });
    ctx.cleaned.catch(() => {}); // awaited (and reported) by the test
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

/** Waits for `available`; returns the agent's log. */
async function cleanedToAvailable(ctx: ReturnType<typeof mdnsAgentFlow>): Promise<string> {
  const n = await ctx.cleaned;
  expect(n.last_error ?? null, ctx.agent.output().slice(-3000)).toBeNull();
  expect(n.provision_state).toBe('available');
  expect(ctx.agent.output()).toMatch(/lookup succeeded/);
  return ctx.agent.output();
}

describe('Ironic 21.4: agent with ipa-api-url=mdns on a SLAAC-only network', () => {
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

describe('Ironic 21.4: agent with ipa-api-url=mdns on an IPv4-only network', () => {
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

describe('Ironic 21.4: agent with ipa-api-url=mdns on an IPv6 link-local-only network', () => {
  // No router, no prefix, no DHCP: fe80::/64 addresses only. Ironic listens on
  // every address and publishes its link-local one (the endpoint URL); the
  // agent keeps the zone (%eth0) of the interface the answer came in on for
  // lookup and heartbeats, and calls back on its own link-local address, over
  // plain HTTP: no certificate names a zone, so Ironic could verify none
  // (the agent token still guards every command).
  // Ironic's calls to the agent carry the agent's zone name too: in this lab
  // both sides name their interface eth0 (docs/dhcp-less.md says why that
  // matters on real networks).
  const ctx = mdnsAgentFlow(
    ['mllc', 'mlln'],
    async (conductor, node) => {
      await linkVeth(conductor, 'eth0', node, 'eth0');
      await conductor.ip(['addr', 'add', 'fe80::1/64', 'dev', 'eth0', 'nodad']);
      return '::';
    },
    '::',
    { extraConf: '[service_catalog]\nendpoint_override = http://[fe80::1]:6385\n' },
  );

  it('discovers Ironic with the scope kept, looks up and heartbeats through cleaning', async () => {
    const out = await cleanedToAvailable(ctx);
    const agentUrls = ctx.agentUrls;
    expect(out).toMatch(/"url":"http:\/\/\[fe80::1%25eth0\]:6385".*conductor discovered over mDNS/);
    expect(out).toMatch(/auto-TLS off: the callback address is link-local/);
    expect(out).toMatch(/"callbackUrl":"http:\/\/\[fe80::[0-9a-f:]+%25eth0\]:\d+"/);
    // What Ironic called the agent at while cleaning: the scoped link-local URL.
    expect([...agentUrls]).toHaveLength(1);
    expect([...agentUrls][0]).toMatch(/^http:\/\/\[fe80::[0-9a-f:]+%25eth0\]:\d+$/);
    expect(out).toMatch(/"command":"clean.get_clean_steps"[^\n]*"command started"/);
  }, 260_000);
});
