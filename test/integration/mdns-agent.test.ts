import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startAgent, type AgentProcess } from '../helpers/agent-process.ts';
import { startIronic, type Ironic } from '../helpers/ironic.ts';
import { createNetns, destroyNetns, linkVeth, macOf, startRadvd, type Netns } from '../helpers/netns.ts';

// Issue 5 end to end: no DHCP anywhere. The node namespace gets a SLAAC
// address from radvd, the agent (ipa-api-url=mdns) finds a real Ironic
// publishing itself over mDNS, looks its node up and heartbeats through
// automated cleaning to `available`.

describe('agent with ipa-api-url=mdns on a SLAAC-only network', () => {
  let conductor: Netns | undefined;
  let node: Netns | undefined;
  let ironic: Ironic | undefined;
  let agent: AgentProcess | undefined;
  let uuid: string;

  beforeAll(async () => {
    conductor = await createNetns('mac');
    node = await createNetns('man');
    await linkVeth(conductor, 'eth0', node, 'eth0');
    await conductor.ip(['addr', 'add', 'fd00:251::1/64', 'dev', 'eth0', 'nodad']);
    await startRadvd(conductor, 'eth0', 'fd00:251::/64');
    ironic = await startIronic({ netns: conductor.name, hostIp: 'fd00:251::1', port: 6385, mdns: true });
    const mac = await macOf(node, 'eth0');
    uuid = await ironic.enroll(mac);
    agent = await startAgent({
      apiUrl: 'mdns',
      allowedDevices: [],
      prefix: ['ip', 'netns', 'exec', node.name],
      listenHost: '::',
      extraArgs: ['--lookup-timeout', '120'],
    });
  }, 240_000);

  afterAll(async () => {
    await agent?.stop();
    await ironic?.stop();
    await destroyNetns(node, conductor);
  });

  it('discovers Ironic over IPv6, looks up and heartbeats through cleaning', async () => {
    const n = await ironic!.waitForState(uuid, ['available', 'clean failed'], 240);
    expect(n.last_error ?? null, agent!.output().slice(-3000)).toBeNull();
    expect(n.provision_state).toBe('available');
    const out = agent!.output();
    expect(out).toMatch(/"url":"http:\/\/\[fd00:251::1\]:6385".*conductor discovered over mDNS/);
    expect(out).toMatch(/lookup succeeded/);
  }, 260_000);
});

describe('agent with ipa-api-url=mdns on an IPv4-only network', () => {
  let conductor: Netns | undefined;
  let node: Netns | undefined;
  let ironic: Ironic | undefined;
  let agent: AgentProcess | undefined;
  let uuid: string;

  beforeAll(async () => {
    conductor = await createNetns('ma4c');
    node = await createNetns('ma4n');
    await linkVeth(conductor, 'eth0', node, 'eth0', { up: false });
    // No IPv6 on the conductor's side: Ironic is published and reached over IPv4 only.
    await conductor.sysctl('net/ipv6/conf/eth0/disable_ipv6', '1');
    await conductor.ip(['addr', 'add', '10.250.5.1/24', 'dev', 'eth0']);
    await conductor.ip(['link', 'set', 'eth0', 'up']);
    await node.ip(['addr', 'add', '10.250.5.10/24', 'dev', 'eth0']);
    ironic = await startIronic({ netns: conductor.name, hostIp: '10.250.5.1', port: 6385, mdns: true });
    uuid = await ironic.enroll(await macOf(node, 'eth0'));
    agent = await startAgent({
      apiUrl: 'mdns',
      allowedDevices: [],
      prefix: ['ip', 'netns', 'exec', node.name],
      listenHost: '0.0.0.0',
      extraArgs: ['--lookup-timeout', '120'],
    });
  }, 240_000);

  afterAll(async () => {
    await agent?.stop();
    await ironic?.stop();
    await destroyNetns(node, conductor);
  });

  it('discovers Ironic over IPv4 multicast, looks up and heartbeats through cleaning', async () => {
    const n = await ironic!.waitForState(uuid, ['available', 'clean failed'], 240);
    expect(n.last_error ?? null, agent!.output().slice(-3000)).toBeNull();
    expect(n.provision_state).toBe('available');
    expect(agent!.output()).toMatch(/"url":"http:\/\/10\.250\.5\.1:6385".*conductor discovered over mDNS/);
    expect(agent!.output()).toMatch(/"callbackUrl":"https:\/\/10\.250\.5\.10:\d+"/);
  }, 260_000);
});
