import { log } from '../../log.ts';
import { applyNetworkData } from './apply.ts';
import type { NetworkChangePolicy } from './guard.ts';
import type { NetworkPlan } from './network-data.ts';
import { readVirtualMediaConfig } from './virtual-media.ts';
import { bringUpWiredInterfaces, waitForUsableAddress, type UsableAddress } from './wait-address.ts';

// The whole DHCP-less start in one call, in the order a ramdisk needs it:
// 1. a virtual media boot may carry parameters and a static network_data.json;
// 2. every wired NIC goes up and accepts router advertisements (SLAAC);
// 3. wait until some address is usable (past DAD).
// Discovery of the conductor (mDNS) comes after this, in src/conductor.

export interface DhcpLessOptions extends NetworkChangePolicy {
  /** Kernel command line (default: /proc/cmdline). */
  cmdline?: string;
  timeoutMs: number;
  interfaces?: string[];
  resolvConfPath?: string;
  linkLocalGraceMs?: number;
}

export interface DhcpLessResult {
  /** parameters.txt from virtual media; merge over the kernel command line. */
  vmediaParams: Record<string, string>;
  /** What network_data.json made us do, if there was one. */
  plan?: NetworkPlan;
  address: UsableAddress;
}

export async function prepareDhcpLessNetwork(opts: DhcpLessOptions): Promise<DhcpLessResult> {
  const vmedia = await readVirtualMediaConfig({ cmdline: opts.cmdline });
  let plan: NetworkPlan | undefined;
  if (vmedia.networkData !== undefined) {
    const { resolvConfPath, allowHostNetworkChanges } = opts;
    plan = await applyNetworkData(vmedia.networkData, { resolvConfPath, allowHostNetworkChanges });
  }
  await bringUpWiredInterfaces({ interfaces: opts.interfaces, allowHostNetworkChanges: opts.allowHostNetworkChanges });
  const address = await waitForUsableAddress({
    timeoutMs: opts.timeoutMs,
    interfaces: opts.interfaces,
    linkLocalGraceMs: opts.linkLocalGraceMs,
  });
  log.info({ address, staticConfig: plan !== undefined }, 'network ready');
  return { vmediaParams: vmedia.params, plan, address };
}
