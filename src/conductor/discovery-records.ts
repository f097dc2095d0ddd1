import { classifyIp } from '../system/network/addresses.ts';
import { parseBoolean } from '../base/booleans.ts';
import { isValidZone } from '../base/url-zone.ts';

// Pure half of mDNS discovery: turns untrusted DNS records into a validated
// picture of the `baremetal` service, and that picture into a URL. Anyone on
// the segment can answer mDNS, so every field is checked before use, nothing
// here throws on bad input (it records why an answer was rejected), and the
// URL is assembled from validated parts and re-parsed to prove that its host
// and port are exactly the advertised ones.

export const SERVICE_TYPE = '_openstack._tcp.local';
export const SERVICE_INSTANCE = `baremetal.${SERVICE_TYPE}`;

const MAX_ADDRESSES_PER_NAME = 16;
const MAX_NAMES = 32;
const MAX_TXT_ENTRIES = 64;
const MAX_REJECTIONS = 20;

export interface AdvertisedAddress {
  address: string;
  family: 4 | 6;
  /** Interface a link-local IPv6 address is reachable through. */
  zone?: string;
  linkLocal: boolean;
}

export interface TxtProperties {
  protocol?: 'http' | 'https';
  path: string;
  /** Other key/value pairs, keys lower-cased, first occurrence wins. */
  other: Record<string, string>;
}

/** Where a packet came from: its source address (Node adds `%ifname` to link-local ones). */
export interface PacketSource {
  address: string;
  /** The single interface discovery runs on, used when the source carries no scope. */
  soleInterface?: string;
}

function normalizeName(name: unknown): string | undefined {
  if (typeof name !== 'string') return undefined;
  const n = name.toLowerCase().replace(/\.$/, '');
  return isValidDnsName(n) ? n : undefined;
}

/** Host names and service instance names as DNS carries them (letters, digits, '-', '_'). */
function isValidDnsName(name: string): boolean {
  if (name.length === 0 || name.length > 253) return false;
  return name.split('.').every((label) => /^[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?$/i.test(label));
}

const KEY_RE = /^[a-z0-9_.-]{1,64}$/;
const PATH_RE = /^(?:\/(?:[A-Za-z0-9._~-]|%[0-9A-Fa-f]{2})+)*\/?$/;

/** A URL path from TXT `path`: absolute, plain segments only, no '.'/'..', no '//', no query, no CR/LF. */
export function validPath(path: string): string | undefined {
  if (path === '' || path === '/') return '';
  if (path.length > 256 || !PATH_RE.test(path)) return undefined;
  const segments = path.replace(/\/$/, '').split('/').slice(1);
  if (segments.some((s) => s === '' || s === '.' || s === '..' || /^(%2e|\.){1,2}$/i.test(s))) return undefined;
  return path.replace(/\/$/, '');
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * TXT strings → properties. Any malformed entry that matters for the URL
 * (protocol, path) rejects the whole record; other bad entries are dropped.
 */
export function parseTxt(data: unknown): { ok: true; value: TxtProperties; dropped: string[] } | { ok: false; reason: string } {
  const entries = (Array.isArray(data) ? data : [data]).slice(0, MAX_TXT_ENTRIES + 1);
  if (entries.length > MAX_TXT_ENTRIES) return { ok: false, reason: 'TXT record has too many strings' };
  const props: Record<string, string> = {};
  const dropped: string[] = [];
  for (const entry of entries) {
    let text: string;
    try {
      text = Buffer.isBuffer(entry) ? utf8.decode(entry) : typeof entry === 'string' ? entry : '';
    } catch {
      dropped.push('(not UTF-8)');
      continue;
    }
    if (text === '') continue;
    const eq = text.indexOf('=');
    const key = (eq < 0 ? text : text.slice(0, eq)).toLowerCase();
    const value = eq < 0 ? '' : text.slice(eq + 1);
    if (!KEY_RE.test(key)) {
      dropped.push(JSON.stringify(key.slice(0, 40)));
      continue;
    }
    if (/[\u0000-\u001f\u007f]/.test(value) || value.length > 255) {
      if (key === 'protocol' || key === 'path') return { ok: false, reason: `TXT ${key} has control characters or is too long` };
      dropped.push(key);
      continue;
    }
    if (!(key in props)) props[key] = value; // RFC 6763 6.4: first occurrence wins
  }
  let protocol: 'http' | 'https' | undefined;
  if ('protocol' in props) {
    const p = props.protocol!.toLowerCase();
    if (p !== 'http' && p !== 'https') {
      return { ok: false, reason: `TXT protocol ${JSON.stringify(props.protocol!.slice(0, 40))} is not http or https` };
    }
    protocol = p;
  }
  const path = validPath(props.path ?? '');
  if (path === undefined) {
    return { ok: false, reason: `TXT path ${JSON.stringify((props.path ?? '').slice(0, 80))} is not a plain absolute path` };
  }
  const { protocol: _p, path: _q, ...other } = props;
  return { ok: true, value: { protocol, path, other }, dropped };
}

/** Validated address from an A/AAAA record; undefined when unusable for us. */
export function parseAddressRecord(type: 'A' | 'AAAA', data: unknown, source: PacketSource): AdvertisedAddress | string {
  if (typeof data !== 'string') return `${type} data is not text`;
  const cls = classifyIp(data);
  const family = type === 'A' ? 4 : 6;
  if (cls === undefined || (family === 4) !== data.includes('.') || (family === 6 && !data.includes(':'))) {
    return `${type} ${JSON.stringify(data.slice(0, 60))} is not an IPv${family} address`;
  }
  if (cls !== 'global' && cls !== 'link-local') return `${type} ${data} is ${cls}`;
  const linkLocal = cls === 'link-local';
  if (family === 6 && linkLocal) {
    const zone = zoneOf(source);
    if (!zone) return `link-local ${data}: cannot tell which interface it is on`;
    return { address: data.toLowerCase(), family, zone, linkLocal };
  }
  return { address: family === 6 ? data.toLowerCase() : data, family, linkLocal };
}

function zoneOf(source: PacketSource): string | undefined {
  const pct = source.address.indexOf('%');
  const zone = pct >= 0 ? source.address.slice(pct + 1) : source.soleInterface;
  return zone !== undefined && isValidZone(zone) ? zone : undefined;
}

export interface ServiceSrv {
  port: number;
  target: string;
}

/** Everything learnt so far about the instance, from any number of packets. */
export class ServiceCollector {
  srv?: ServiceSrv;
  txt?: TxtProperties;
  sawPtr = false;
  /** A TXT record for the instance arrived but was refused (then defaults must not be used). */
  txtRejected = false;
  readonly addresses = new Map<string, AdvertisedAddress[]>();
  readonly rejections: string[] = [];
  droppedTxtKeys: string[] = [];

  private reject(reason: string): void {
    if (this.rejections.length < MAX_REJECTIONS && !this.rejections.includes(reason)) this.rejections.push(reason);
  }

  /** Feeds one decoded response packet. Never throws. */
  addPacket(packet: unknown, source: PacketSource): void {
    try {
      if (typeof packet !== 'object' || packet === null) return;
      const p = packet as { answers?: unknown; additionals?: unknown };
      for (const list of [p.answers, p.additionals]) {
        if (!Array.isArray(list)) continue;
        for (const record of list.slice(0, 256)) this.addRecord(record, source);
      }
    } catch (err) {
      this.reject(`malformed packet: ${String(err).slice(0, 100)}`);
    }
  }

  private addRecord(record: unknown, source: PacketSource): void {
    if (typeof record !== 'object' || record === null) return;
    const r = record as { name?: unknown; type?: unknown; data?: unknown };
    const name = normalizeName(r.name);
    if (name === undefined) return;
    switch (r.type) {
      case 'PTR':
        if (name === SERVICE_TYPE && normalizeName(r.data) === SERVICE_INSTANCE) this.sawPtr = true;
        return;
      case 'SRV':
        if (name === SERVICE_INSTANCE && this.srv === undefined) this.addSrv(r.data);
        return;
      case 'TXT':
        if (name === SERVICE_INSTANCE && this.txt === undefined) {
          const parsed = parseTxt(r.data);
          if (parsed.ok) {
            this.txt = parsed.value;
            this.droppedTxtKeys = parsed.dropped;
          } else {
            this.txtRejected = true;
            this.reject(parsed.reason);
          }
        }
        return;
      case 'A':
      case 'AAAA': {
        const addr = parseAddressRecord(r.type, r.data, source);
        if (typeof addr === 'string') return this.reject(addr);
        let list = this.addresses.get(name);
        if (!list) {
          if (this.addresses.size >= MAX_NAMES) return;
          list = [];
          this.addresses.set(name, list);
        }
        if (list.length < MAX_ADDRESSES_PER_NAME && !list.some((a) => a.address === addr.address && a.zone === addr.zone)) {
          list.push(addr);
        }
        return;
      }
      default:
        return;
    }
  }

  private addSrv(data: unknown): void {
    if (typeof data !== 'object' || data === null) return this.reject('SRV without data');
    const d = data as { port?: unknown; target?: unknown };
    if (typeof d.port !== 'number' || !Number.isInteger(d.port) || d.port < 1 || d.port > 65535) {
      return this.reject(`SRV port ${String(d.port).slice(0, 20)} is invalid`);
    }
    const target = normalizeName(d.target);
    if (target === undefined) return this.reject(`SRV target ${JSON.stringify(String(d.target).slice(0, 60))} is not a host name`);
    this.srv = { port: d.port, target };
  }

  /** The SRV target is a real DNS name (not .local): IPA then uses the name itself in the URL. */
  get targetIsDnsName(): boolean {
    return this.srv !== undefined && !this.srv.target.endsWith('.local');
  }

  /** Addresses advertised for the SRV target. */
  targetAddresses(): AdvertisedAddress[] {
    return this.srv ? this.addresses.get(this.srv.target) ?? [] : [];
  }

  /** Enough to build a URL (TXT may still be missing). */
  get hasEndpoint(): boolean {
    return this.srv !== undefined && (this.targetIsDnsName || this.targetAddresses().length > 0);
  }
}

/** The URL host for an address: brackets for IPv6, `%25zone` (RFC 6874) for link-local. */
export function urlHost(a: AdvertisedAddress): string {
  if (a.family === 4) return a.address;
  return a.zone ? `[${a.address}%25${a.zone}]` : `[${a.address}]`;
}

export function defaultProtocol(port: number): 'http' | 'https' {
  return port === 80 ? 'http' : 'https'; // IPA's rule when TXT has no protocol
}

/**
 * Builds the conductor URL and proves (by re-parsing, zone removed) that host,
 * port and path are exactly the validated parts. Throws if not.
 */
export function buildConductorUrl(parts: { protocol: 'http' | 'https'; host: string; port: number; path: string }): string {
  const url = `${parts.protocol}://${parts.host}:${parts.port}${parts.path}`;
  const zoneless = url.replace(/%25[A-Za-z0-9_.-]+\]/, ']');
  const expectedHost = parts.host.replace(/%25[A-Za-z0-9_.-]+\]$/, ']');
  let u: URL;
  try {
    u = new URL(zoneless);
  } catch {
    throw new Error(`refusing conductor URL ${JSON.stringify(url)}: does not parse`);
  }
  const defaultPort = parts.protocol === 'http' ? 80 : 443;
  const ok =
    u.protocol === `${parts.protocol}:` &&
    u.hostname === expectedHost.toLowerCase() &&
    (u.port === String(parts.port) || (u.port === '' && parts.port === defaultPort)) &&
    u.username === '' &&
    u.password === '' &&
    u.search === '' &&
    u.hash === '' &&
    u.pathname === (parts.path || '/');
  if (!ok) throw new Error(`refusing conductor URL ${JSON.stringify(url)}: it does not point at the advertised endpoint`);
  return url;
}

/** mDNS TXT keys that may set agent parameters, and how their values are checked. */
export interface AllowedParams {
  params: Record<string, string>;
  ignored: string[];
}

/**
 * Applies the allow-list. Only parameters that cannot hand the node to someone
 * else are honoured: debug logging, and an inspection callback URL that points
 * at the very conductor that was discovered. Never the agent token, TLS
 * switches, API URLs or anything else. Not ipa_ntp_server either, which IPA
 * allows: IPA sets the clock from it at start, this agent has no clock sync,
 * and a key taken here but honoured nowhere would only look honoured. Keys come back in kernel
 * command line form (`ipa-debug`), to be merged under the command line.
 */
export function allowedParams(other: Record<string, string>, conductorHost: string): AllowedParams {
  const params: Record<string, string> = {};
  const ignored: string[] = [];
  for (const [key, value] of Object.entries(other)) {
    if (!key.startsWith('ipa_')) continue; // not a parameter at all (IPA ignores them too)
    switch (key) {
      case 'ipa_debug': {
        const b = parseBoolean(value);
        if (b !== undefined) params['ipa-debug'] = String(b);
        else ignored.push(`${key} (not a boolean)`);
        break;
      }
      case 'ipa_inspection_callback_url': {
        let host: string | undefined;
        try {
          const u = new URL(value);
          if ((u.protocol === 'http:' || u.protocol === 'https:') && u.username === '' && u.password === '') host = u.hostname;
        } catch {
          host = undefined;
        }
        if (host !== undefined && host === conductorHost.replace(/%25[^\]]*\]$/, ']').toLowerCase()) {
          params['ipa-inspection-callback-url'] = value;
        } else {
          ignored.push(`${key} (only accepted when it points at the discovered conductor)`);
        }
        break;
      }
      default:
        ignored.push(key);
    }
  }
  return { params, ignored };
}
