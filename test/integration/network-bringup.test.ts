import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REPO_ROOT, createNetns, destroyNetns, linkVeth, startRadvd, type Netns } from '../helpers/netns.ts';

// NIC bring-up without DHCP, in namespaces: SLAAC from a real radvd, link-local
// only, no carrier at all (timeout), and resetNetworking() for fast-track.

interface Addr {
  local: string;
  prefixlen: number;
  scope: string;
  tentative?: boolean;
}

async function addrs(ns: Netns, dev: string): Promise<Addr[]> {
  const [link] = JSON.parse(await ns.ip(['-j', 'addr', 'show', 'dev', dev])) as Array<{ addr_info: Addr[] }>;
  return link!.addr_info;
}

const IMPORTS = `
import { bringUpWiredInterfaces, waitForUsableAddress } from '${REPO_ROOT}/src/system/network/wait-address.ts';
import { resetNetworking } from '${REPO_ROOT}/src/system/network/reset.ts';
`;

describe('SLAAC bring-up and reset', () => {
  let router: Netns | undefined;
  let node: Netns | undefined;

  beforeAll(async () => {
    router = await createNetns('nbr');
    node = await createNetns('nbn');
    await linkVeth(router, 'eth0', node, 'eth0', { up: false });
    await router.ip(['link', 'set', 'eth0', 'up']);
    await router.ip(['addr', 'add', 'fd00:253::1/64', 'dev', 'eth0', 'nodad']);
    // Something that must be left alone: not a wired NIC.
    await node.ip(['link', 'add', 'br0', 'type', 'bridge']);
    await startRadvd(router, 'eth0', 'fd00:253::/64');
  }, 60_000);

  afterAll(async () => {
    await destroyNetns(node, router);
  });

  it('brings only wired NICs up, accepts RAs and waits for a settled SLAAC address', async () => {
    await node!.sysctl('net/ipv6/conf/eth0/accept_ra', '0'); // the code must turn it on
    const r = await node!.runScript(`${IMPORTS}
const up = await bringUpWiredInterfaces();
const addr = await waitForUsableAddress({ timeoutMs: 60000, linkLocalGraceMs: 30000 });
console.log('RESULT ' + JSON.stringify({ up, addr }));
`);
    expect(r.result, r.stderr.slice(-2000)).toBeDefined();
    const { up, addr } = r.result as { up: string[]; addr: { ifname: string; address: string; kind: string } };
    expect(up).toEqual(['eth0']);
    expect(addr.kind).toBe('global');
    expect(addr.ifname).toBe('eth0');
    expect(addr.address.startsWith('fd00:253:')).toBe(true);
    const settled = (await addrs(node!, 'eth0')).find((a) => a.local === addr.address);
    expect(settled?.tentative).toBeUndefined();
    expect((await node!.must('cat', ['/proc/sys/net/ipv6/conf/eth0/accept_ra'])).trim()).toBe('2');
    const [bridge] = JSON.parse(await node!.ip(['-j', 'link', 'show', 'dev', 'br0'])) as Array<{ flags: string[] }>;
    expect(bridge!.flags).not.toContain('UP');
  }, 120_000);

  it('resetNetworking flushes addresses and routes, then RAs configure the NIC again', async () => {
    await node!.ip(['addr', 'add', '10.253.0.10/24', 'dev', 'eth0']);
    await node!.ip(['route', 'add', '10.99.0.0/16', 'via', '10.253.0.1', 'dev', 'eth0']);
    await node!.ip(['-6', 'addr', 'add', 'fd00:253::77/64', 'dev', 'eth0', 'nodad']);
    const r = await node!.runScript(`${IMPORTS}
const reset = await resetNetworking();
const after = JSON.parse((await (await import('${REPO_ROOT}/node_modules/execa/index.js')).execa('ip', ['-j', 'addr', 'show', 'dev', 'eth0'])).stdout);
const addr = await waitForUsableAddress({ timeoutMs: 60000, linkLocalGraceMs: 30000 });
console.log('RESULT ' + JSON.stringify({ reset, after, addr }));
`);
    expect(r.result, r.stderr.slice(-2000)).toBeDefined();
    const { reset, after, addr } = r.result as {
      reset: string[];
      after: Array<{ flags: string[]; addr_info: Addr[] }>;
      addr: { kind: string; address: string };
    };
    expect(reset).toEqual(['eth0']);
    // Right after the reset: up again, and none of the old addresses survive.
    expect(after[0]!.flags).toContain('UP');
    const old = after[0]!.addr_info.map((a) => a.local);
    expect(old).not.toContain('10.253.0.10');
    expect(old).not.toContain('fd00:253::77');
    const v4routes = JSON.parse(await node!.ip(['-j', '-4', 'route', 'show', 'dev', 'eth0'])) as unknown[];
    expect(v4routes).toEqual([]);
    // And the router's advertisement configures it again.
    expect(addr.kind).toBe('global');
    expect(addr.address.startsWith('fd00:253:')).toBe(true);
  }, 120_000);
});

describe('bring-up without a router', () => {
  let peer: Netns | undefined;
  let node: Netns | undefined;

  beforeAll(async () => {
    peer = await createNetns('nbp');
    node = await createNetns('nbq');
    await linkVeth(peer, 'eth0', node, 'eth0', { up: false });
  }, 60_000);

  afterAll(async () => {
    await destroyNetns(node, peer);
  });

  it('times out with a clear error when the NIC has no carrier', async () => {
    const r = await node!.runScript(`${IMPORTS}
await bringUpWiredInterfaces();
try {
  await waitForUsableAddress({ timeoutMs: 2000 });
  console.log('RESULT ' + JSON.stringify({ ok: true }));
} catch (err) {
  console.log('RESULT ' + JSON.stringify({ name: err.name, message: err.message }));
}
`);
    expect(r.result).toMatchObject({ name: 'NoUsableAddressError', message: expect.stringMatching(/no usable IPv4\/IPv6 address/) });
  }, 60_000);

  it('settles for a link-local address when no router advertises a prefix', async () => {
    await peer!.ip(['link', 'set', 'eth0', 'up']);
    const r = await node!.runScript(`${IMPORTS}
await bringUpWiredInterfaces();
const addr = await waitForUsableAddress({ timeoutMs: 30000, linkLocalGraceMs: 1500 });
console.log('RESULT ' + JSON.stringify(addr));
`);
    expect(r.result, r.stderr.slice(-2000)).toMatchObject({ ifname: 'eth0', family: 'inet6', kind: 'link-local' });
    const address = (r.result as { address: string }).address;
    expect(address.startsWith('fe80:')).toBe(true);
    expect((await addrs(node!, 'eth0')).find((a) => a.local === address)?.tentative).toBeUndefined();
  }, 60_000);
});
