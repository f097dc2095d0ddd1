import { createNetns, destroyNetns, startRadvd, type Netns } from '../../test/helpers/netns.ts';
import { addTapToBridge, namespaceFileServer, type VmNetwork } from '../../test/e2e/qemu-network.ts';

// The demo's provisioning network: a namespace holding a bridge with an IPv6
// ULA address and radvd announcing its /64 (SLAAC), and nothing else: no DHCP
// server at all, so the ramdisk's udhcpc gets no answer and the agent finds
// Ironic over mDNS. VMs join through taps on the bridge.

export const PREFIX = 'fd00:de:1';

export type SlaacNetwork = VmNetwork;

export async function createSlaacNetwork(tag = 'demo'): Promise<SlaacNetwork> {
  const ns: Netns = await createNetns(tag);
  const bridge = 'br0';
  const hostIp = `${PREFIX}::1`;
  let taps = 0;
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
    serveFile: namespaceFileServer(ns, hostIp),
    async destroy() {
      await destroyNetns(ns); // stops radvd and the HTTP server, deletes bridge, taps and temp dirs
    },
  };
}
