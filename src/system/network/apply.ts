import { writeFile } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { log } from '../../log.ts';
import { sameIp } from './addresses.ts';
import { assertMayChangeNetwork, type NetworkChangePolicy } from './guard.ts';
import { ip, listLinksWithAddresses } from './ip.ts';
import { isWiredLink } from './interfaces.ts';
import { parseNetworkData, planNetworkData, resolvConf, type NetworkPlan, type PlanInterface } from './network-data.ts';
import { acceptRouterAdvertisements } from './wait-address.ts';

export interface ApplyOptions extends NetworkChangePolicy {
  /** Where name servers go; tests point this at a temp file. */
  resolvConfPath?: string;
  /** How long to wait for duplicate address detection of the static addresses (default 15 s). */
  dadTimeoutMs?: number;
}

export class DuplicateAddressError extends Error {
  constructor(readonly dev: string, readonly address: string) {
    super(`static address ${address} on ${dev} failed duplicate address detection: another host uses it`);
    this.name = 'DuplicateAddressError';
  }
}

/**
 * A fresh IPv6 address is "tentative" for a second or two; until then the
 * kernel will not use it as a source, and a connection to an IPv6-only
 * conductor fails. Wait until every planned address is settled.
 */
async function waitForDad(addresses: NetworkPlan['addresses'], timeoutMs: number): Promise<void> {
  const start = Date.now();
  for (;;) {
    const links = await listLinksWithAddresses();
    const pending: string[] = [];
    for (const want of addresses) {
      const info = links.find((l) => l.ifname === want.dev)?.addr_info?.find((a) => sameIp(a.local, want.address));
      if (info?.dadfailed) throw new DuplicateAddressError(want.dev, want.address);
      if (!info || info.tentative) pending.push(`${want.address} on ${want.dev}`);
    }
    if (pending.length === 0) return;
    if (Date.now() - start >= timeoutMs) {
      log.warn({ pending }, 'static addresses still tentative, going on');
      return;
    }
    await sleep(200);
  }
}

/** The NICs of this namespace as the planner sees them. */
async function currentInterfaces(): Promise<PlanInterface[]> {
  return (await listLinksWithAddresses())
    .filter((l) => typeof l.address === 'string' && l.ifname !== 'lo')
    .map((l) => ({ ifname: l.ifname, mac: l.address!, wired: isWiredLink(l) }));
}

/** Runs a plan: sysctls for SLAAC links, the `ip` commands in order, then resolv.conf. */
export async function applyNetworkPlan(plan: NetworkPlan, opts: ApplyOptions = {}): Promise<void> {
  assertMayChangeNetwork('apply network_data.json', opts);
  for (const w of plan.warnings) log.warn({ warning: w }, 'network_data.json');
  for (const dev of plan.acceptRa) await acceptRouterAdvertisements(dev, opts);
  for (const args of plan.commands) await ip(args);
  await waitForDad(plan.addresses, opts.dadTimeoutMs ?? 15_000);
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
