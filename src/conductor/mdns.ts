import { createSocket, type RemoteInfo, type Socket } from 'node:dgram';
import { setTimeout as sleep } from 'node:timers/promises';
import makeMdns from 'multicast-dns';
import { log } from '../log.ts';
import { listLinksWithAddresses, routeTo } from '../system/network/ip.ts';
import { isWiredLink } from '../system/network/interfaces.ts';
import {
  SERVICE_INSTANCE,
  SERVICE_TYPE,
  ServiceCollector,
  allowedParams,
  buildConductorUrl,
  defaultProtocol,
  urlHost,
  type AdvertisedAddress,
} from './discovery-records.ts';
import { MDNS_PORT, offLinkReason, type LocalInterfaces } from './mdns-source.ts';

// Finds the Ironic API the way IPA's `ipa-api-url=mdns` does: resolve the
// service instance `baremetal._openstack._tcp.local.` over multicast DNS, then
// build the URL from SRV (port, target), A/AAAA (address) and TXT (protocol,
// path). Queries go out on every wired interface over IPv4 (224.0.0.251) and
// IPv6 (ff02::fb), one socket per interface and family so each query leaves
// through its own interface. Answers are untrusted: see discovery-records.ts.

const MDNS_V4 = '224.0.0.251';
const MDNS_V6 = 'ff02::fb';

export class ConductorNotFoundError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConductorNotFoundError';
  }
}

export interface DiscoverOptions {
  timeoutMs: number;
  /** Interfaces to query on (default: every wired interface that is up). */
  interfaces?: string[];
  /** Whether a global address can be reached (default: the kernel has a route to it). */
  isRoutable?: (address: string) => Promise<boolean>;
  /** The local interfaces' addresses, to tell on-link responders (default: os.networkInterfaces()). */
  localInterfaces?: () => LocalInterfaces;
}

export interface DiscoveredConductor {
  /** e.g. http://[fd00::1]:6385 or, link-local, http://[fe80::1%25eth0]:6385 (see discovery-http.ts). */
  url: string;
  /** Allowed agent parameters from TXT, in kernel command line form (ipa-debug=true). */
  params: Record<string, string>;
  address?: string;
  /** Interface of a link-local address. */
  zone?: string;
  /** TXT ipa_* keys that were refused. */
  ignoredParams: string[];
}

interface Endpoint {
  family: 4 | 6;
  ifname: string;
  mdns: ReturnType<typeof makeMdns>;
  socket: Socket;
}

/** Interfaces to use and their addresses (IPv4 membership needs one). */
async function pickInterfaces(only?: string[]): Promise<Array<{ ifname: string; ipv4?: string; ipv6: boolean }>> {
  const links = await listLinksWithAddresses();
  return links
    .filter((l) => (only && only.length ? only.includes(l.ifname) : isWiredLink(l)))
    .filter((l) => l.flags.includes('UP'))
    .map((l) => {
      const usable = (l.addr_info ?? []).filter((a) => !a.tentative && !a.dadfailed);
      return {
        ifname: l.ifname,
        ipv4: usable.find((a) => a.family === 'inet')?.local,
        ipv6: usable.some((a) => a.family === 'inet6'),
      };
    })
    .filter((i) => i.ipv4 !== undefined || i.ipv6);
}

function bindSocket(socket: Socket, port: number, address: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (err: Error) => reject(err);
    socket.once('error', onError);
    socket.bind({ port, address }, () => {
      socket.removeListener('error', onError);
      resolve();
    });
  });
}

/**
 * A socket on the mDNS port (so multicast answers reach it), joined to the group
 * on one interface and sending through it. If the port cannot be shared, an
 * ephemeral port still works: responders answer such "legacy" queries unicast.
 */
async function openEndpoint(family: 4 | 6, ifname: string, ifaceAddr: string): Promise<Endpoint> {
  const make = () =>
    createSocket({ type: family === 4 ? 'udp4' : 'udp6', reuseAddr: true, ...(family === 6 ? { ipv6Only: true } : {}) });
  let socket = make();
  const any = family === 4 ? '0.0.0.0' : '::';
  try {
    await bindSocket(socket, MDNS_PORT, any);
  } catch (err) {
    log.warn({ ifname, family, err: String(err) }, 'mDNS port busy, querying from an ephemeral port');
    socket.close();
    socket = make();
    await bindSocket(socket, 0, any);
  }
  const group = family === 4 ? MDNS_V4 : MDNS_V6;
  try {
    socket.addMembership(group, ifaceAddr);
  } catch (err) {
    log.debug({ ifname, family, err: String(err) }, 'mDNS group membership failed (unicast answers still work)');
  }
  socket.setMulticastInterface(ifaceAddr);
  socket.setMulticastTTL(255);
  const mdns = makeMdns({ socket, bind: false, multicast: false });
  return { family, ifname, mdns, socket };
}

async function openEndpoints(ifaces: Array<{ ifname: string; ipv4?: string; ipv6: boolean }>): Promise<Endpoint[]> {
  const endpoints: Endpoint[] = [];
  for (const i of ifaces) {
    const wanted: Array<[4 | 6, string]> = [];
    if (i.ipv6) wanted.push([6, `::%${i.ifname}`]);
    if (i.ipv4) wanted.push([4, i.ipv4]);
    for (const [family, addr] of wanted) {
      try {
        endpoints.push(await openEndpoint(family, i.ifname, addr));
      } catch (err) {
        log.warn({ ifname: i.ifname, family, err: String(err) }, 'cannot query mDNS here');
      }
    }
  }
  return endpoints;
}

function closeEndpoints(endpoints: Endpoint[]): Promise<void> {
  return Promise.all(endpoints.map((e) => new Promise<void>((r) => e.mdns.destroy(() => r())))).then(() => undefined);
}

/** A route exists and the kernel has a source address for it (none while ours is still tentative). */
async function defaultIsRoutable(address: string): Promise<boolean> {
  return (await routeTo(address))?.prefsrc !== undefined;
}

/** Global addresses we have a route to, then link-local ones, then (with a warning) the rest. */
async function chooseAddress(candidates: AdvertisedAddress[], isRoutable: (a: string) => Promise<boolean>): Promise<AdvertisedAddress> {
  const global = candidates.filter((c) => !c.linkLocal);
  for (const c of global) if (await isRoutable(c.address)) return c;
  const scoped = candidates.find((c) => c.linkLocal && (c.family === 4 || c.zone));
  if (scoped) return scoped;
  log.warn({ candidates: candidates.map((c) => c.address) }, 'no advertised conductor address seems routable, trying the first');
  return candidates[0]!;
}

function questions(collector: ServiceCollector): Array<{ name: string; type: 'PTR' | 'SRV' | 'TXT' | 'A' | 'AAAA' }> {
  const q: Array<{ name: string; type: 'PTR' | 'SRV' | 'TXT' | 'A' | 'AAAA' }> = [
    { name: SERVICE_TYPE, type: 'PTR' },
    { name: SERVICE_INSTANCE, type: 'SRV' },
    { name: SERVICE_INSTANCE, type: 'TXT' },
  ];
  const target = collector.srv?.target;
  if (target && target.endsWith('.local')) q.push({ name: target, type: 'A' }, { name: target, type: 'AAAA' });
  return q;
}

/**
 * Resolves the conductor over mDNS, retrying (0.25 s doubling to 2 s) until
 * timeoutMs; throws ConductorNotFoundError when nothing valid answered.
 */
export async function discoverConductor(opts: DiscoverOptions): Promise<DiscoveredConductor> {
  const start = Date.now();
  const isRoutable = opts.isRoutable ?? defaultIsRoutable;
  const ifaces = await pickInterfaces(opts.interfaces);
  if (ifaces.length === 0) {
    throw new ConductorNotFoundError(
      `mDNS discovery: no usable interface${opts.interfaces?.length ? ` among ${opts.interfaces.join(', ')}` : ''} ` +
        '(link down or no address yet)',
    );
  }
  const soleInterface = ifaces.length === 1 ? ifaces[0]!.ifname : undefined;
  const collector = new ServiceCollector();
  const endpoints = await openEndpoints(ifaces);
  if (endpoints.length === 0) throw new ConductorNotFoundError('mDNS discovery: could not open any mDNS socket');
  let answered = false;
  let wake: (() => void) | undefined;
  // RFC 6762 11: answers from off-link sources (or not from port 5353) are dropped unread.
  const ifnames = ifaces.map((i) => i.ifname);
  const offLinkSources = new Set<string>();
  for (const e of endpoints) {
    e.mdns.on('response', (packet: unknown, rinfo: RemoteInfo) => {
      const refused = offLinkReason(rinfo, ifnames, opts.localInterfaces?.());
      if (refused !== undefined) {
        if (offLinkSources.size < 20 && !offLinkSources.has(rinfo.address)) {
          offLinkSources.add(rinfo.address);
          const source = `${rinfo.address}:${rinfo.port}`;
          log.warn({ ifname: e.ifname, source, reason: refused }, 'mDNS: answer from off-link source ignored');
        }
        return;
      }
      collector.addPacket(packet, { address: rinfo.address, soleInterface });
      answered = true;
      wake?.();
    });
    e.mdns.on('warning', (err: unknown) => log.debug({ ifname: e.ifname, err: String(err) }, 'mDNS: undecodable packet ignored'));
    e.mdns.on('error', (err: unknown) => log.warn({ ifname: e.ifname, err: String(err) }, 'mDNS socket error'));
  }
  const interfaces = endpoints.map((e) => `${e.ifname}/IPv${e.family}`);
  log.info({ interfaces, timeoutMs: opts.timeoutMs }, 'looking for the conductor over mDNS');

  let queries = 0;
  try {
    let delay = 250;
    let nextQueryAt = 0;
    let srvSeenAt: number | undefined;
    for (;;) {
      const now = Date.now();
      if (collector.hasEndpoint) srvSeenAt ??= now;
      // Done once everything is there, or when no TXT came at all a while after SRV (IPA's
      // defaults apply then). A refused TXT is different: its protocol/path were hostile or
      // broken, and guessing would be wrong, so only a valid TXT will do.
      const txtSettled =
        collector.txt !== undefined || (!collector.txtRejected && (now - srvSeenAt! > 1500 || now - start >= opts.timeoutMs));
      if (collector.hasEndpoint && txtSettled) break;
      if (now - start >= opts.timeoutMs) {
        const rejected = collector.rejections.length ? `; rejected answers: ${collector.rejections.join('; ')}` : '';
        const offLink = offLinkSources.size ? `; ignored answers from off-link sources ${[...offLinkSources].join(', ')}` : '';
        const heard = (answered ? 'answers arrived but none described a usable conductor' : 'nothing answered') + offLink;
        throw new ConductorNotFoundError(
          `mDNS discovery of ${SERVICE_INSTANCE} failed after ${opts.timeoutMs} ms and ${queries} queries on ` +
            `${endpoints.map((e) => `${e.ifname}/IPv${e.family}`).join(', ')}: ${heard}${rejected}`,
        );
      }
      if (now >= nextQueryAt) {
        const q = questions(collector);
        for (const e of endpoints) {
          e.mdns.query({ questions: q }, { port: MDNS_PORT, address: e.family === 4 ? MDNS_V4 : MDNS_V6 }, (err) => {
            if (err) log.debug({ ifname: e.ifname, err: String(err) }, 'mDNS query not sent');
          });
        }
        queries++;
        nextQueryAt = now + delay;
        delay = Math.min(delay * 2, 2000);
      }
      await new Promise<void>((resolve) => {
        wake = resolve;
        void sleep(Math.max(10, Math.min(nextQueryAt, start + opts.timeoutMs) - Date.now())).then(() => resolve());
      });
      wake = undefined;
    }
  } finally {
    await closeEndpoints(endpoints);
  }
  return buildResult(collector, isRoutable);
}

async function buildResult(collector: ServiceCollector, isRoutable: (a: string) => Promise<boolean>): Promise<DiscoveredConductor> {
  const srv = collector.srv!;
  const txt = collector.txt ?? { path: '', other: {} };
  if (!collector.txt) log.warn('mDNS: no valid TXT record for the conductor, using default protocol and path');
  const protocol = txt.protocol ?? defaultProtocol(srv.port);
  let host: string;
  let chosen: AdvertisedAddress | undefined;
  if (collector.targetIsDnsName) {
    host = srv.target; // IPA: a catalog host name (not .local) is used as such (TLS certificates name it)
  } else {
    chosen = await chooseAddress(collector.targetAddresses(), isRoutable);
    host = urlHost(chosen);
  }
  const url = buildConductorUrl({ protocol, host, port: srv.port, path: txt.path });
  const { params, ignored } = allowedParams(txt.other, host);
  if (ignored.length) log.warn({ ignored }, 'mDNS: TXT parameters ignored (not on the allow-list or invalid)');
  if (collector.droppedTxtKeys.length) log.warn({ dropped: collector.droppedTxtKeys }, 'mDNS: malformed TXT entries dropped');
  log.info({ url, params }, 'conductor discovered over mDNS');
  return { url, params, address: chosen?.address, zone: chosen?.zone, ignoredParams: ignored };
}
