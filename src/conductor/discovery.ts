import { discoverConductor, type DiscoveredConductor } from './mdns.ts';

// `ipa-api-url` is either a URL or the word `mdns` (IPA's convention). This
// turns it into a conductor URL plus whatever allowed parameters the mDNS
// answer carried. Parameters from mDNS rank below the kernel command line:
// the caller should only fill in keys the command line does not set.

export interface ResolvedConductor {
  url: string;
  /** Allowed parameters from mDNS TXT (kernel command line form), empty for a given URL. */
  params: Record<string, string>;
  discovered: boolean;
}

export async function resolveConductorUrl(apiUrl: string, opts: { timeoutMs: number; interfaces?: string[] }): Promise<ResolvedConductor> {
  if (apiUrl.trim().toLowerCase() !== 'mdns') return { url: apiUrl, params: {}, discovered: false };
  const found: DiscoveredConductor = await discoverConductor(opts);
  return { url: found.url, params: found.params, discovered: true };
}

/** Command line wins; mDNS only fills gaps. */
export function mergeUnderCommandLine(cmdline: Record<string, string>, fromMdns: Record<string, string>): Record<string, string> {
  return { ...fromMdns, ...cmdline };
}
