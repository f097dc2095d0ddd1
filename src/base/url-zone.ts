// IPv6 zones in URLs (RFC 6874): a conductor on a link-local address is only
// reachable through one interface, so its URL carries the zone,
// http://[fe80::1%25eth0]:6385. WHATWG URL parsing rejects zone ids, so the
// zone is split off before a URL is parsed (config.ts) or connected to
// (conductor/discovery-http.ts adds it back in its connector). Pure string
// work, used from the config up to the conductor client: base layer, it
// imports nothing of ours.

/** An interface name as Linux allows it (IFNAMSIZ - 1 characters, no '/', not '.' or '..'). */
export function isValidZone(zone: string): boolean {
  return /^[A-Za-z0-9_.-]{1,15}$/.test(zone) && zone !== '.' && zone !== '..';
}

const ZONE_RE = /^(https?:\/\/\[[0-9A-Fa-f:.]+)%25([^\]]+)\]/;

/** 'http://[fe80::1%25eth0]:6385/v1' → { url: 'http://[fe80::1]:6385/v1', zone: 'eth0' }. */
export function splitZone(url: string): { url: string; zone?: string } {
  const m = ZONE_RE.exec(url);
  if (!m) return { url };
  const zone = decodeURIComponent(m[2]!);
  if (!isValidZone(zone)) throw new Error(`invalid interface zone in ${JSON.stringify(url)}`);
  return { url: url.replace(ZONE_RE, '$1]'), zone };
}
