import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  REPO_ROOT,
  createNetns,
  destroyNetns,
  linkVeth,
  startRadvd,
  type Netns,
} from '../helpers/netns.ts';
import { startIronic, type Ironic } from '../helpers/ironic.ts';

// DHCP-less discovery against a real Ironic 21.4 that publishes itself with
// python zeroconf ([conductor]enable_mdns) inside a "conductor" namespace; the
// agent's code runs inside a "node" namespace joined to it by a veth pair.
// Each scenario proves the discovered URL works by fetching Ironic's version
// document through it with undici, as the agent's HTTP client will.

/** Node-side script: bring NICs up, wait for an address, discover, GET the URL. */
function nodeScript(opts: { linkLocalGraceMs: number; discoverMs: number; acceptRa?: boolean }): string {
  return `
import { bringUpWiredInterfaces, waitForUsableAddress } from '${REPO_ROOT}/src/system/network/wait-address.ts';
import { discoverConductor } from '${REPO_ROOT}/src/conductor/mdns.ts';
import { conductorTarget } from '${REPO_ROOT}/src/conductor/discovery-http.ts';
const { request } = await import('${REPO_ROOT}/node_modules/undici/index.js');
await bringUpWiredInterfaces({ acceptRa: ${opts.acceptRa ?? true} });
const addr = await waitForUsableAddress({ timeoutMs: 30000, linkLocalGraceMs: ${opts.linkLocalGraceMs} });
const found = await discoverConductor({ timeoutMs: ${opts.discoverMs} });
const target = conductorTarget(found.url);
const res = await request(target.url + '/', { dispatcher: target.dispatcher });
const body = await res.body.json();
console.log('RESULT ' + JSON.stringify({ addr, found, fetched: target.url, status: res.statusCode, body }));
process.exit(0);
`;
}

interface NodeResult {
  addr: { ifname: string; address: string; family: string; kind: string };
  found: { url: string; params: Record<string, string>; address?: string; zone?: string };
  status: number;
  body: { name?: string; default_version?: { id?: string } };
}

async function runNode(node: Netns, opts: { linkLocalGraceMs: number; discoverMs?: number; acceptRa?: boolean }): Promise<NodeResult> {
  const r = await node.runScript(nodeScript({ discoverMs: 60_000, ...opts }), { timeoutMs: 150_000 });
  if (r.result === undefined) throw new Error(`node script failed (${r.exitCode}):\n${r.stderr.slice(-4000)}`);
  return r.result as NodeResult;
}

describe('Ironic 21.4: mDNS discovery over SLAAC IPv6', () => {
  let conductor: Netns | undefined;
  let node: Netns | undefined;
  let ironic: Ironic | undefined;

  beforeAll(async () => {
    conductor = await createNetns('mdc6');
    node = await createNetns('mdn6');
    await linkVeth(conductor, 'eth0', node, 'eth0');
    await conductor.ip(['addr', 'add', 'fd00:250::1/64', 'dev', 'eth0', 'nodad']);
    await startRadvd(conductor, 'eth0', 'fd00:250::/64');
    ironic = await startIronic({ netns: conductor.name, hostIp: 'fd00:250::1', port: 6385, mdns: true });
  }, 240_000);

  afterAll(async () => {
    await ironic?.stop();
    await destroyNetns(node, conductor);
  });

  it('gets a SLAAC address, finds Ironic over IPv6 and reaches its API', async () => {
    const r = await runNode(node!, { linkLocalGraceMs: 20_000 });
    expect(r.addr.kind).toBe('global');
    expect(r.addr.address.startsWith('fd00:250:')).toBe(true);
    expect(r.found.url).toBe('http://[fd00:250::1]:6385');
    expect(r.status).toBe(200);
    expect(r.body.name).toMatch(/Ironic/);
    expect(r.body.default_version?.id).toBe('v1');
    // Ironic runs with debug on, which it publishes as ipa_debug=True: the one allowed parameter here.
    expect(r.found.params).toEqual({ 'ipa-debug': 'true' });
  }, 200_000);
});

describe('Ironic 21.4: mDNS discovery over IPv4 only', () => {
  let conductor: Netns | undefined;
  let node: Netns | undefined;
  let ironic: Ironic | undefined;

  beforeAll(async () => {
    conductor = await createNetns('mdc4');
    node = await createNetns('mdn4');
    await linkVeth(conductor, 'eth0', node, 'eth0', { up: false });
    // No IPv6 at all on either side: discovery has to work over 224.0.0.251.
    await conductor.sysctl('net/ipv6/conf/eth0/disable_ipv6', '1');
    await node.sysctl('net/ipv6/conf/eth0/disable_ipv6', '1');
    await conductor.ip(['addr', 'add', '10.250.4.1/24', 'dev', 'eth0']);
    await conductor.ip(['link', 'set', 'eth0', 'up']);
    await node.ip(['addr', 'add', '10.250.4.10/24', 'dev', 'eth0']);
    ironic = await startIronic({ netns: conductor.name, hostIp: '10.250.4.1', port: 6385, mdns: true });
  }, 240_000);

  afterAll(async () => {
    await ironic?.stop();
    await destroyNetns(node, conductor);
  });

  it('finds Ironic over IPv4 multicast and reaches its API', async () => {
    const r = await runNode(node!, { linkLocalGraceMs: 0, acceptRa: false });
    expect(r.addr).toMatchObject({ family: 'inet', address: '10.250.4.10', kind: 'global' });
    expect(r.found.url).toBe('http://10.250.4.1:6385');
    expect(r.status).toBe(200);
    expect(r.body.default_version?.id).toBe('v1');
  }, 200_000);
});

describe('Ironic 21.4: mDNS discovery on an IPv6 link-local address only', () => {
  let conductor: Netns | undefined;
  let node: Netns | undefined;
  let ironic: Ironic | undefined;

  beforeAll(async () => {
    conductor = await createNetns('mdcl');
    node = await createNetns('mdnl');
    await linkVeth(conductor, 'eth0', node, 'eth0');
    // No router, no prefix: the only addresses anywhere are fe80::/64 ones.
    await conductor.ip(['addr', 'add', 'fe80::1/64', 'dev', 'eth0', 'nodad']);
    // Ironic listens everywhere; what it publishes comes from the endpoint URL,
    // so point that at its link-local address (zeroconf then sends AAAA fe80::1).
    ironic = await startIronic({
      netns: conductor.name,
      hostIp: '::',
      port: 6385,
      mdns: true,
      extraConf: '[service_catalog]\nendpoint_override = http://[fe80::1]:6385\n',
    });
  }, 240_000);

  afterAll(async () => {
    await ironic?.stop();
    await destroyNetns(node, conductor);
  });

  it('keeps the interface scope in the URL and the URL works', async () => {
    const r = await runNode(node!, { linkLocalGraceMs: 1000 });
    expect(r.addr.kind).toBe('link-local');
    expect(r.found.url).toBe('http://[fe80::1%25eth0]:6385');
    expect(r.found.zone).toBe('eth0');
    expect(r.status).toBe(200);
    expect(r.body.default_version?.id).toBe('v1');
  }, 200_000);
});
