import { isIPv4, isIPv6 } from 'node:net';

// Small, dependency-free address arithmetic shared by network_data.json
// handling and mDNS answer validation. Inputs are untrusted strings: every
// function validates before it computes.

/** 16 bytes of an IPv6 address, or undefined if the text is not one (zone ids are not accepted). */
export function ipv6Bytes(text: string): Uint8Array | undefined {
  if (!isIPv6(text) || text.includes('%')) return undefined;
  let head = text;
  let tail4: number[] = [];
  const lastColon = text.lastIndexOf(':');
  const maybeV4 = text.slice(lastColon + 1);
  if (isIPv4(maybeV4)) {
    tail4 = maybeV4.split('.').map(Number);
    head = text.slice(0, lastColon + 1) + '0:0'; // placeholder groups, replaced below
  }
  const [left, right] = head.includes('::') ? head.split('::') : [head, undefined];
  const parse = (s: string | undefined) => (s ? s.split(':').filter((g) => g !== '').map((g) => parseInt(g, 16)) : []);
  const l = parse(left);
  const r = parse(right);
  const groups = right === undefined ? l : [...l, ...new Array(8 - l.length - r.length).fill(0), ...r];
  if (groups.length !== 8) return undefined;
  const bytes = new Uint8Array(16);
  groups.forEach((g, i) => {
    bytes[i * 2] = g >> 8;
    bytes[i * 2 + 1] = g & 0xff;
  });
  if (tail4.length === 4) bytes.set(tail4, 12);
  return bytes;
}

export function ipv4Bytes(text: string): Uint8Array | undefined {
  if (!isIPv4(text)) return undefined;
  return Uint8Array.from(text.split('.').map(Number));
}

/** Prefix length of a contiguous netmask (dotted IPv4 or IPv6 text), or undefined. */
export function netmaskToPrefix(mask: string): number | undefined {
  const bytes = ipv4Bytes(mask) ?? ipv6Bytes(mask);
  if (!bytes) return undefined;
  let prefix = 0;
  let seenZero = false;
  for (const byte of bytes) {
    for (let bit = 7; bit >= 0; bit--) {
      const set = (byte >> bit) & 1;
      if (set && seenZero) return undefined; // non-contiguous
      if (set) prefix++;
      else seenZero = true;
    }
  }
  return prefix;
}

/** Whether the host part (bits after prefix) is all zero. */
export function hostBitsZero(address: string, prefix: number): boolean {
  const bytes = ipv4Bytes(address) ?? ipv6Bytes(address);
  if (!bytes) return false;
  for (let i = 0; i < bytes.length * 8; i++) {
    if (i < prefix) continue;
    if ((bytes[i >> 3]! >> (7 - (i & 7))) & 1) return false;
  }
  return true;
}

export type AddressClass = 'unspecified' | 'loopback' | 'multicast' | 'link-local' | 'global' | 'mapped' | 'broadcast';

/** Coarse class of an IP address; undefined if it is not an IP address at all. */
export function classifyIp(text: string): AddressClass | undefined {
  const v4 = ipv4Bytes(text);
  if (v4) {
    if (v4.every((b) => b === 0)) return 'unspecified';
    if (v4[0] === 127) return 'loopback';
    if (v4[0]! >= 224 && v4[0]! <= 239) return 'multicast';
    if (v4.every((b) => b === 255)) return 'broadcast';
    if (v4[0] === 169 && v4[1] === 254) return 'link-local';
    return 'global';
  }
  const v6 = ipv6Bytes(text);
  if (!v6) return undefined;
  if (v6.every((b) => b === 0)) return 'unspecified';
  if (v6.slice(0, 15).every((b) => b === 0) && v6[15] === 1) return 'loopback';
  if (v6[0] === 0xff) return 'multicast';
  if (v6[0] === 0xfe && (v6[1]! & 0xc0) === 0x80) return 'link-local';
  if (v6.slice(0, 10).every((b) => b === 0) && v6[10] === 0xff && v6[11] === 0xff) return 'mapped';
  return 'global';
}

/** Canonical lower-case colon MAC, or undefined. */
export function normalizeMac(text: string): string | undefined {
  const m = /^([0-9a-fA-F]{2})([:-])([0-9a-fA-F]{2})\2([0-9a-fA-F]{2})\2([0-9a-fA-F]{2})\2([0-9a-fA-F]{2})\2([0-9a-fA-F]{2})$/.exec(text);
  if (!m) return undefined;
  return [m[1], m[3], m[4], m[5], m[6], m[7]].join(':').toLowerCase();
}

/** Whether two texts name the same IP address (however they are written). */
export function sameIp(a: string, b: string): boolean {
  const x = ipv4Bytes(a) ?? ipv6Bytes(a);
  const y = ipv4Bytes(b) ?? ipv6Bytes(b);
  return x !== undefined && y !== undefined && x.length === y.length && x.every((v, i) => v === y[i]);
}
