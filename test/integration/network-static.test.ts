import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startIronic, type Ironic } from '../helpers/ironic.ts';
import { REPO_ROOT, createNetns, destroyNetns, linkVeth, macOf, type Netns } from '../helpers/netns.ts';

// Virtual-media style DHCP-less boot: no router advertisements, no DHCP, only
// network_data.json (as Ironic puts it on the boot ISO at
// openstack/latest/network_data.json). The node applies it, then finds the
// real Ironic over mDNS and reaches its API through the static address.

describe('Ironic 21.4: network_data.json static addressing, then lookup', () => {
  let conductor: Netns | undefined;
  let node: Netns | undefined;
  let ironic: Ironic | undefined;
  let work: string | undefined;

  beforeAll(async () => {
    conductor = await createNetns('nsc');
    node = await createNetns('nsn');
    await linkVeth(conductor, 'eth0', node, 'eth0', { up: false });
    await conductor.ip(['link', 'set', 'eth0', 'up']);
    await conductor.ip(['addr', 'add', 'fd00:252::1/64', 'dev', 'eth0', 'nodad']);
    await conductor.ip(['addr', 'add', '10.250.5.1/24', 'dev', 'eth0']);
    // Nothing may configure the node behind our back: no RA processing at all.
    await node.sysctl('net/ipv6/conf/eth0/accept_ra', '0');
    ironic = await startIronic({ netns: conductor.name, hostIp: 'fd00:252::1', port: 6385, mdns: true });
    work = await mkdtemp(join(tmpdir(), 'mai-netdata-'));
  }, 240_000);

  afterAll(async () => {
    await ironic?.stop();
    await destroyNetns(node, conductor);
    if (work) await rm(work, { recursive: true, force: true });
  });

  it('applies a static IPv6 (and IPv4) config matched by MAC and reaches Ironic', async () => {
    const mac = (await macOf(node!, 'eth0')).toUpperCase(); // case must not matter
    const configDir = join(work!, 'config-2');
    await mkdir(join(configDir, 'openstack', 'latest'), { recursive: true });
    await writeFile(
      join(configDir, 'openstack', 'latest', 'network_data.json'),
      JSON.stringify({
        links: [{ id: 'port-0', type: 'phy', ethernet_mac_address: mac, mtu: 1450 }],
        networks: [
          {
            id: 'v6', type: 'ipv6', link: 'port-0', ip_address: 'fd00:252::10', netmask: 'ffff:ffff:ffff:ffff::',
            routes: [{ network: 'fd00:999::', netmask: 'ffff:ffff::', gateway: 'fd00:252::1' }],
            services: [{ type: 'dns', address: 'fd00:252::53' }],
          },
          {
            id: 'v4', type: 'ipv4', link: 'port-0', ip_address: '10.250.5.10', netmask: '255.255.255.0',
            routes: [{ network: '0.0.0.0', netmask: '0.0.0.0', gateway: '10.250.5.1' }],
          },
        ],
        services: [{ type: 'dns', address: '10.250.5.53' }],
      }),
    );
    const resolv = join(work!, 'resolv.conf');
    const r = await node!.runScript(`
import { readNetworkDataFromDir } from '${REPO_ROOT}/src/system/network/virtual-media.ts';
import { applyNetworkData } from '${REPO_ROOT}/src/system/network/apply.ts';
import { waitForUsableAddress } from '${REPO_ROOT}/src/system/network/wait-address.ts';
import { discoverConductor } from '${REPO_ROOT}/src/conductor/mdns.ts';
import { conductorTarget } from '${REPO_ROOT}/src/conductor/discovery-http.ts';
const { request } = await import('${REPO_ROOT}/node_modules/undici/index.js');
const doc = await readNetworkDataFromDir(${JSON.stringify(configDir)});
const plan = await applyNetworkData(doc, { resolvConfPath: ${JSON.stringify(resolv)} });
const addr = await waitForUsableAddress({ timeoutMs: 30000, linkLocalGraceMs: 0 });
const found = await discoverConductor({ timeoutMs: 60000 });
const target = conductorTarget(found.url);
const res = await request(target.url + '/', { dispatcher: target.dispatcher });
const body = await res.body.json();
console.log('RESULT ' + JSON.stringify({ plan, addr, found, status: res.statusCode, body }));
process.exit(0);
`, { timeoutMs: 150_000 });
    if (r.result === undefined) throw new Error(`node script failed (${r.exitCode}):\n${r.stderr.slice(-4000)}`);
    const out = r.result as {
      plan: { warnings: string[]; interfaces: Record<string, string> };
      found: { url: string };
      status: number;
      body: { default_version?: { id?: string } };
    };
    expect(out.plan.warnings).toEqual([]);
    expect(out.plan.interfaces).toEqual({ 'port-0': 'eth0' });
    expect(out.found.url).toBe('http://[fd00:252::1]:6385');
    expect(out.status).toBe(200);
    expect(out.body.default_version?.id).toBe('v1');

    // The namespace now looks like the document says.
    const [link] = JSON.parse(await node!.ip(['-j', 'addr', 'show', 'dev', 'eth0'])) as Array<{
      mtu: number;
      addr_info: Array<{ local: string; prefixlen: number; dynamic?: boolean }>;
    }>;
    expect(link!.mtu).toBe(1450);
    const addrs = link!.addr_info.map((a) => `${a.local}/${a.prefixlen}`);
    expect(addrs).toContain('fd00:252::10/64');
    expect(addrs).toContain('10.250.5.10/24');
    expect(link!.addr_info.some((a) => a.dynamic)).toBe(false); // nothing came from SLAAC
    const v6routes = JSON.parse(await node!.ip(['-j', '-6', 'route', 'show', 'dev', 'eth0'])) as Array<{ dst: string; gateway?: string }>;
    expect(v6routes).toContainEqual(expect.objectContaining({ dst: 'fd00:999::/32', gateway: 'fd00:252::1' }));
    const v4routes = JSON.parse(await node!.ip(['-j', '-4', 'route', 'show', 'dev', 'eth0'])) as Array<{ dst: string; gateway?: string }>;
    expect(v4routes).toContainEqual(expect.objectContaining({ dst: 'default', gateway: '10.250.5.1' }));
    expect(await readFile(resolv, 'utf8')).toBe(
      '# written by metal-agent from network_data.json\nnameserver fd00:252::53\nnameserver 10.250.5.53\n',
    );
  }, 200_000);
});
