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
