import { writeFile } from 'node:fs/promises';
import { log } from '../../log.ts';
import { ip, listLinksWithAddresses } from './ip.ts';
import { isWiredLink } from './interfaces.ts';
import { parseNetworkData, planNetworkData, resolvConf, type NetworkPlan, type PlanInterface } from './network-data.ts';
import { acceptRouterAdvertisements } from './wait-address.ts';

export interface ApplyOptions {
  /** Where name servers go; tests point this at a temp file. */
  resolvConfPath?: string;
}

/** The NICs of this namespace as the planner sees them. */
export async function currentInterfaces(): Promise<PlanInterface[]> {
  return (await listLinksWithAddresses())
    .filter((l) => typeof l.address === 'string' && l.ifname !== 'lo')
    .map((l) => ({ ifname: l.ifname, mac: l.address!, wired: isWiredLink(l) }));
}

/** Runs a plan: sysctls for SLAAC links, the `ip` commands in order, then resolv.conf. */
export async function applyNetworkPlan(plan: NetworkPlan, opts: ApplyOptions = {}): Promise<void> {
  for (const w of plan.warnings) log.warn({ warning: w }, 'network_data.json');
  for (const dev of plan.acceptRa) await acceptRouterAdvertisements(dev);
  for (const args of plan.commands) await ip(args);
  if (plan.nameservers.length > 0) {
    const path = opts.resolvConfPath ?? '/etc/resolv.conf';
    await writeFile(path, resolvConf(plan.nameservers));
    log.info({ path, nameservers: plan.nameservers }, 'resolv.conf written');
  }
  log.info({ interfaces: plan.interfaces, commands: plan.commands.length }, 'network_data.json applied');
}

/** Parse (strictly), plan against the NICs present, apply. Throws NetworkDataError on a bad document. */
export async function applyNetworkData(doc: unknown, opts: ApplyOptions = {}): Promise<NetworkPlan> {
  const data = parseNetworkData(doc);
  const plan = planNetworkData(data, await currentInterfaces());
  await applyNetworkPlan(plan, opts);
  return plan;
}
