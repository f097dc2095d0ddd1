import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REPO_ROOT, createNetns, destroyNetns, linkVeth, type Netns } from '../helpers/netns.ts';

// Issue 21, RFC 6762 section 11: an mDNS answer from a source that is not on
// the node's link (routed to it, or forged) is ignored; the same answer from
// an on-link neighbour on port 5353 is used. The responder (own namespace)
// hears queries with multicast-dns and sends its answer from a socket bound to
// the source address and port each scenario names: on-link 10.251.9.1, or
// 10.99.0.5, which the node reaches only through a router (a route via
// 10.251.9.1), so the packet does arrive, and the agent must refuse it.

const ON_LINK = '10.251.9.1';
const OFF_LINK = '10.99.0.5';
const INSTANCE = 'baremetal._openstack._tcp.local';

const RESPONDER = `
import makeMdns from '${REPO_ROOT}/node_modules/multicast-dns/index.js';
import packet from '${REPO_ROOT}/node_modules/dns-packet/index.js';
import dgram from 'node:dgram';
const { source, port, advertise } = JSON.parse(process.env.RESPONDER_CONFIG);
const out = dgram.createSocket({ type: 'udp4', reuseAddr: true });
out.bind({ address: source, port }, () => {
  out.setMulticastInterface('${ON_LINK}');
  const m = makeMdns({ interface: '${ON_LINK}', bind: '0.0.0.0' });
  m.on('warning', () => {});
  m.on('query', (q) => {
    if (!q.questions.some((x) => x.name.toLowerCase().endsWith('_openstack._tcp.local'))) return;
    const answers = [
      { name: '_openstack._tcp.local', type: 'PTR', data: '${INSTANCE}' },
      { name: '${INSTANCE}', type: 'SRV', data: { port: 6385, target: 'conductor-o.local' } },
      { name: '${INSTANCE}', type: 'TXT', data: [Buffer.from('protocol=http')] },
      { name: 'conductor-o.local', type: 'A', data: advertise },
    ];
    out.send(packet.encode({ type: 'response', flags: packet.AUTHORITATIVE_ANSWER, answers }), 5353, '224.0.0.251');
    console.log('ANSWERED');
  });
  console.log('READY');
});
`;

const NODE = `
import { discoverConductor } from '${REPO_ROOT}/src/conductor/mdns.ts';
try {
  const found = await discoverConductor({ timeoutMs: Number(process.env.DISCOVER_MS), isRoutable: async () => true });
  console.log('RESULT ' + JSON.stringify({ found }));
} catch (err) {
  console.log('RESULT ' + JSON.stringify({ error: { name: err.name, message: err.message } }));
}
process.exit(0);
`;

interface Outcome {
  found?: { url: string };
  error?: { name: string; message: string };
}

describe('mDNS answers are taken only from on-link sources on port 5353', () => {
  let node: Netns | undefined;
  let peer: Netns | undefined;

  beforeAll(async () => {
    peer = await createNetns('mop');
    node = await createNetns('mon');
    await linkVeth(peer, 'eth0', node, 'eth0');
    await peer.ip(['addr', 'add', `${ON_LINK}/24`, 'dev', 'eth0']);
    await peer.ip(['addr', 'add', `${OFF_LINK}/32`, 'dev', 'eth0']);
    await peer.ip(['route', 'add', '224.0.0.0/4', 'dev', 'eth0']);
    await node.ip(['addr', 'add', '10.251.9.10/24', 'dev', 'eth0']);
    // The off-link network is behind a router (the peer), as a routed attacker would be.
    await node.ip(['route', 'add', '10.99.0.0/24', 'via', ON_LINK]);
  }, 60_000);

  afterAll(async () => {
    await destroyNetns(node, peer);
  });

  async function scenario(source: string, port: number, advertise: string, discoverMs: number): Promise<{ outcome: Outcome; log: string }> {
    const responder = await peer!.spawnScript(RESPONDER, { env: { RESPONDER_CONFIG: JSON.stringify({ source, port, advertise }) } });
    try {
      for (let i = 0; i < 200 && !responder.output().includes('READY'); i++) await new Promise((r) => setTimeout(r, 100));
      const r = await node!.runScript(NODE, { env: { DISCOVER_MS: String(discoverMs) }, timeoutMs: 120_000 });
      if (r.result === undefined) throw new Error(`node script crashed (${r.exitCode}):\n${r.stderr.slice(-3000)}`);
      return { outcome: r.result as Outcome, log: await responder.stop() };
    } finally {
      await responder.stop();
    }
  }

  it('ignores a (routed) answer from an off-link source, and says so', async () => {
    const { outcome, log } = await scenario(OFF_LINK, 5353, OFF_LINK, 4000);
    expect(log).toContain('ANSWERED');
    expect(outcome.found).toBeUndefined();
    expect(outcome.error?.name).toBe('ConductorNotFoundError');
    expect(outcome.error?.message).toContain(`ignored answers from off-link sources ${OFF_LINK}`);
  }, 60_000);

  it('ignores an on-link answer that does not come from port 5353', async () => {
    const { outcome, log } = await scenario(ON_LINK, 5354, ON_LINK, 4000);
    expect(log).toContain('ANSWERED');
    expect(outcome.error?.name).toBe('ConductorNotFoundError');
    expect(outcome.error?.message).toContain(`ignored answers from off-link sources ${ON_LINK}`);
  }, 60_000);

  it('uses the same answer from an on-link neighbour on port 5353', async () => {
    const { outcome } = await scenario(ON_LINK, 5353, ON_LINK, 20_000);
    expect(outcome.error).toBeUndefined();
    expect(outcome.found?.url).toBe(`http://${ON_LINK}:6385`);
  }, 60_000);
});
