import { mkdtemp, rm, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import type { ResultPromise } from 'execa';
import { createNetns, destroyNetns, startRadvd, type Netns } from '../../test/helpers/netns.ts';
import { addTapToBridge, type VmNetwork } from '../../test/e2e/qemu-network.ts';

// The demo's provisioning network: a namespace holding a bridge with an IPv6
// ULA address and radvd announcing its /64 (SLAAC), and nothing else: no DHCP
// server at all, so the ramdisk's udhcpc gets no answer and the agent finds
// Ironic over mDNS. VMs join through taps on the bridge.

export const PREFIX = 'fd00:de:1';

export interface SlaacNetwork extends VmNetwork {
  /** http://[host]:port/NAME for a file served from the namespace. */
  serveFile(path: string): Promise<string>;
}

export async function createSlaacNetwork(tag = 'demo'): Promise<SlaacNetwork> {
  const ns: Netns = await createNetns(tag);
  const bridge = 'br0';
  const hostIp = `${PREFIX}::1`;
  let taps = 0;
  let httpDir: string | undefined;
  let http: ResultPromise | undefined;
  const httpPort = 8080;
  try {
    await ns.ip(['link', 'add', bridge, 'type', 'bridge']);
    await ns.ip(['link', 'set', bridge, 'up']);
    await ns.ip(['addr', 'add', `${hostIp}/64`, 'dev', bridge, 'nodad']);
    await startRadvd(ns, bridge, `${PREFIX}::/64`);
  } catch (err) {
    await destroyNetns(ns);
    throw err;
  }
  return {
    ns,
    bridge,
    hostIp,
    prefixLength: 64,
    addTap: () => addTapToBridge(ns, bridge, `tap${taps++}`),
    // No DHCP here: the VM's address comes from SLAAC; the agent reports it to Ironic.
    async reserve() {
      return '';
    },
    async serveFile(path: string) {
      if (!httpDir) {
        httpDir = await mkdtemp(join(tmpdir(), 'mai-demo-http-'));
        ns.tempDirs.push(httpDir);
        // Python's http.server in the namespace, bound to the bridge address only.
        http = ns.spawn('python3', ['-m', 'http.server', '--bind', hostIp, '--directory', httpDir, String(httpPort)]);
        void http;
      }
      await symlink(path, join(httpDir, basename(path)));
      const url = `http://[${hostIp}]:${httpPort}/${basename(path)}`;
      for (let i = 0; i < 50; i++) {
        const r = await ns.exec('curl', ['-fsS', '-o', '/dev/null', '-I', '-m', '2', url]);
        if (r.exitCode === 0) return url;
        await new Promise((res) => setTimeout(res, 200));
      }
      throw new Error(`image server in ${ns.name} does not answer ${url}`);
    },
    async destroy() {
      await destroyNetns(ns); // stops radvd and the HTTP server, deletes bridge and taps
      if (httpDir) await rm(httpDir, { recursive: true, force: true });
    },
  };
}
