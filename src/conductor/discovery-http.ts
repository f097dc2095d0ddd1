import { isIPv6 } from 'node:net';
import { Agent, buildConnector, type Dispatcher } from 'undici';
import { classifyIp } from '../system/network/addresses.ts';
import { isValidZone, splitZone } from '../base/url-zone.ts';

// A conductor found on an IPv6 link-local address is only reachable through
// one interface, so its URL carries the zone: http://[fe80::1%25eth0]:6385
// (RFC 6874). WHATWG URL parsing (fetch, undici) rejects zone ids, so the
// agent's HTTP client splits the zone off (src/base/url-zone.ts) and hands
// undici a dispatcher whose connector adds `%eth0` back to link-local hosts
// before connecting.

export { splitZone };

/** An undici Agent that connects link-local IPv6 hosts through `zone`. */
export function zoneAgent(zone: string, options: Agent.Options = {}): Agent {
  if (!isValidZone(zone)) throw new Error(`invalid interface zone ${JSON.stringify(zone)}`);
  const connectOpts = typeof options.connect === 'object' && options.connect !== null ? options.connect : {};
  const base = buildConnector(connectOpts as buildConnector.BuildOptions);
  const connect: buildConnector.connector = (opts, callback) => {
    const h = opts.hostname;
    const scoped = isIPv6(h) && !h.includes('%') && classifyIp(h) === 'link-local' ? `${h}%${zone}` : h;
    return base({ ...opts, hostname: scoped }, callback);
  };
  return new Agent({ ...options, connect });
}

/**
 * What to hand undici for a conductor URL: the zone-free URL, plus a dispatcher
 * when the URL is scoped (undefined otherwise: use the client's usual one).
 */
export function conductorTarget(url: string, options: Agent.Options = {}): { url: string; dispatcher?: Dispatcher } {
  const { url: plain, zone } = splitZone(url);
  return zone ? { url: plain, dispatcher: zoneAgent(zone, options) } : { url: plain };
}
