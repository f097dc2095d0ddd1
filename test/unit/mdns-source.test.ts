import type { NetworkInterfaceInfo } from 'node:os';
import { describe, expect, it } from 'vitest';
import { offLinkReason, type LocalInterfaces } from '../../src/conductor/mdns-source.ts';

// Issue 21, RFC 6762 sections 6 and 11: an mDNS answer counts only when it
// comes from port 5353 and from a neighbour on one of the discovery links.

function v4(address: string, prefix: number): NetworkInterfaceInfo {
  return { address, netmask: '', family: 'IPv4', mac: '52:54:00:00:00:01', internal: false, cidr: `${address}/${prefix}` };
}
function v6(address: string, prefix: number, scopeid = 0): NetworkInterfaceInfo {
  return { address, netmask: '', family: 'IPv6', mac: '52:54:00:00:00:01', internal: false, cidr: `${address}/${prefix}`, scopeid };
}

const local: LocalInterfaces = {
  lo: [{ address: '127.0.0.1', netmask: '255.0.0.0', family: 'IPv4', mac: '00:00:00:00:00:00', internal: true, cidr: '127.0.0.1/8' }],
  eth0: [v4('10.251.0.10', 24), v6('fd00:251::10', 64), v6('fe80::10', 64, 2)],
  eth1: [v4('192.168.7.2', 24), v6('2001:db8:7::2', 64)],
};
const from = (address: string, port = 5353) => offLinkReason({ address, port }, ['eth0'], local);

describe('mDNS response source (RFC 6762 11)', () => {
  it('accepts a neighbour in an IPv4 subnet of the discovery interface', () => {
    expect(from('10.251.0.1')).toBeUndefined();
    expect(from('10.251.0.254')).toBeUndefined();
  });

  it('ignores an IPv4 source outside every subnet of the discovery interfaces', () => {
    expect(from('10.99.0.5')).toMatch(/not on a local link/);
    expect(from('10.251.1.1')).toMatch(/not on a local link/);
    expect(from('8.8.8.8')).toMatch(/not on a local link/);
  });

  it('ignores sources that are on-link only for an interface discovery does not run on, or loopback', () => {
    expect(from('192.168.7.9')).toMatch(/not on a local link/);
    expect(from('2001:db8:7::9')).toMatch(/not on a local link/);
    expect(from('127.0.0.1')).toMatch(/not on a local link/);
  });

  it('accepts IPv4 link-local (169.254/16), which is on-link by definition', () => {
    expect(from('169.254.3.4')).toBeUndefined();
  });

  it('accepts IPv6 link-local from a discovery interface, or unscoped, and refuses another interface', () => {
    expect(from('fe80::1%eth0')).toBeUndefined();
    expect(from('fe80::1')).toBeUndefined();
    expect(from('fe80::1%eth1')).toMatch(/on another interface/);
  });

  it("accepts an IPv6 source in the interface's on-link prefix and refuses a routed one", () => {
    expect(from('fd00:251::1')).toBeUndefined();
    expect(from('fd00:252::1')).toMatch(/not on a local link/);
    expect(from('2001:db8:99::1')).toMatch(/not on a local link/);
  });

  it('ignores any response not sent from port 5353 (section 6), even from an on-link neighbour', () => {
    expect(from('10.251.0.1', 40000)).toMatch(/source port 40000 is not 5353/);
    expect(from('fe80::1%eth0', 53)).toMatch(/source port 53/);
  });

  it('takes the interfaces from the machine by default (loopback is never on-link for discovery)', () => {
    expect(offLinkReason({ address: '127.0.0.1', port: 5353 }, ['lo'])).toMatch(/not on a local link/);
  });
});
