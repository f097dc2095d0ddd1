import { mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { createNetns, destroyNetns, type Netns } from '../helpers/netns.ts';

// The test network a VM boots on: a namespace of its own holding a bridge
// (the "provisioning network", where a test runs Ironic, image servers, curl),
// a DHCPv4 server on it, and one tap per VM NIC. Nothing touches the host's
// interfaces; addresses are from 192.0.2.0/24 (TEST-NET-1) and exist only
// inside the namespace.

export interface VmNetwork {
  ns: Netns;
  bridge: string;
  /** The namespace side's address on the bridge: where Ironic listens. */
  hostIp: string;
  prefixLength: number;
  /** Creates a tap on the bridge; qemu (run in ns) opens it by name. */
  addTap(): Promise<string>;
  /** A fixed DHCP lease for a MAC, so a test knows a VM's address up front. */
  reserve(mac: string): Promise<string>;
  /** http://HOST:8080/NAME for a file served from the namespace (images for deploys). */
  serveFile(path: string): Promise<string>;
  destroy(): Promise<void>;
}

const SUBNET = '192.0.2';

/** A tap on the namespace's bridge, up, for one VM NIC (qemu in the namespace opens it by name). */
export async function addTapToBridge(ns: Netns, bridge: string, name: string): Promise<string> {
  await ns.ip(['tuntap', 'add', 'dev', name, 'mode', 'tap']);
  await ns.ip(['link', 'set', name, 'master', bridge]);
  await ns.ip(['link', 'set', name, 'up']);
  return name;
}

/**
 * Python's http.server in the namespace, bound to hostIp only, started on the
 * first file; it serves symlinks from a temporary folder (removed with the
 * namespace). Ironic HEADs the URL at deploy time and the agent GETs it.
 */
export function namespaceFileServer(ns: Netns, hostIp: string, port = 8080): (path: string) => Promise<string> {
  let dir: string | undefined;
  const urlHost = hostIp.includes(':') ? `[${hostIp}]` : hostIp;
  return async (path) => {
    if (!dir) {
      dir = await mkdtemp(join(tmpdir(), 'mai-http-'));
      ns.tempDirs.push(dir);
      void ns.spawn('python3', ['-m', 'http.server', '--bind', hostIp, '--directory', dir, String(port)]);
    }
    await symlink(path, join(dir, basename(path)));
    const url = `http://${urlHost}:${port}/${basename(path)}`;
    for (let i = 0; i < 50; i++) {
      if ((await ns.exec('curl', ['-fsS', '-o', '/dev/null', '-I', '-m', '2', url])).exitCode === 0) return url;
      await sleep(200);
    }
    throw new Error(`file server in ${ns.name} does not answer ${url}`);
  };
}

/** `dhcp: false`: no DHCP server at all (DHCP-less boots; reserve() then only records the MAC). */
export async function createVmNetwork(tag = 'vm', opts: { dhcp?: boolean } = {}): Promise<VmNetwork> {
  const dhcpOn = opts.dhcp ?? true;
  const ns = await createNetns(tag);
  const dir = await mkdtemp(join(tmpdir(), 'mai-vmnet-'));
  const bridge = 'br0';
  const hostIp = `${SUBNET}.1`;
  let taps = 0;
  const leases = new Map<string, string>();
  let dhcp: ReturnType<Netns['spawn']> | undefined;

  try {
    await ns.ip(['link', 'add', bridge, 'type', 'bridge']);
    await ns.ip(['addr', 'add', `${hostIp}/24`, 'dev', bridge]);
    await ns.ip(['link', 'set', bridge, 'up']);
  } catch (err) {
    await destroyNetns(ns);
    await rm(dir, { recursive: true, force: true });
    throw err;
  }

  // udhcpd reads its static leases at start, so it is (re)started after each
  // reservation; it is cheap and a VM asks only after it has booted.
  async function restartDhcp(): Promise<void> {
    if (dhcp && dhcp.exitCode === null) {
      dhcp.kill('SIGTERM');
      await dhcp;
    }
    const conf = [
      `interface ${bridge}`,
      `start ${SUBNET}.100`,
      `end ${SUBNET}.199`,
      `lease_file ${dir}/udhcpd.leases`,
      `pidfile ${dir}/udhcpd.pid`,
      'option subnet 255.255.255.0',
      'option lease 3600',
      ...[...leases].map(([mac, ip]) => `static_lease ${mac} ${ip}`),
    ];
    await writeFile(join(dir, 'udhcpd.conf'), conf.join('\n') + '\n');
    await writeFile(join(dir, 'udhcpd.leases'), '');
    dhcp = ns.spawn('busybox', ['udhcpd', '-f', join(dir, 'udhcpd.conf')]);
  }
  if (dhcpOn) await restartDhcp();

  return {
    ns,
    bridge,
    hostIp,
    prefixLength: 24,
    addTap: () => addTapToBridge(ns, bridge, `tap${taps++}`),
    async reserve(mac: string) {
      const known = leases.get(mac);
      if (known) return known;
      const ip = `${SUBNET}.${10 + leases.size}`;
      leases.set(mac, ip);
      if (dhcpOn) await restartDhcp();
      return dhcpOn ? ip : '';
    },
    serveFile: namespaceFileServer(ns, hostIp),
    async destroy() {
      await destroyNetns(ns); // stops udhcpd and the file server, deletes bridge, taps and temp dirs
      await rm(dir, { recursive: true, force: true });
    },
  };
}
