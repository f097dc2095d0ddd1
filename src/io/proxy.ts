// Which proxy (if any) a URL goes through, with the conventions of Python
// requests / curl that IPA inherited: `proxies` maps a scheme to a proxy URL,
// `no_proxy` is a comma list of host names, domain suffixes (with or without a
// leading dot), IP addresses, optional `:port`, or `*` for everything.

export interface ProxySettings {
  /** Ironic's image_info.proxies: {http: URL, https: URL}. */
  proxies?: { http?: string; https?: string };
  /** Ironic's image_info.no_proxy. */
  noProxy?: string;
}

function bypasses(url: URL, noProxy: string | undefined): boolean {
  if (!noProxy) return false;
  const host = url.hostname.toLowerCase().replace(/^\[|\]$/g, '');
  const port = url.port || (url.protocol === 'https:' ? '443' : '80');
  for (const raw of noProxy.split(',')) {
    let entry = raw.trim().toLowerCase();
    if (!entry) continue;
    if (entry === '*') return true;
    let entryPort: string | undefined;
    const portMatch = /^(.*[^:]):(\d+)$/.exec(entry);
    if (portMatch && !entry.includes('::')) {
      entry = portMatch[1]!;
      entryPort = portMatch[2];
    }
    entry = entry.replace(/^\[|\]$/g, '').replace(/^\*?\./, '');
    if (entryPort && entryPort !== port) continue;
    if (host === entry || host.endsWith(`.${entry}`)) return true;
  }
  return false;
}

/** The proxy URL to use for `url`, or undefined to connect directly. */
export function proxyFor(url: URL, settings: ProxySettings): string | undefined {
  const scheme = url.protocol.replace(':', '') as 'http' | 'https';
  const proxy = settings.proxies?.[scheme];
  if (!proxy || bypasses(url, settings.noProxy)) return undefined;
  return proxy;
}
