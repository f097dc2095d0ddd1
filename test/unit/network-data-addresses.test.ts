import { describe, expect, it } from 'vitest';
import { classifyIp, hostBitsZero, ipv6Bytes, netmaskToPrefix, normalizeMac, sameIp } from '../../src/system/network/addresses.ts';
import { isWiredLink } from '../../src/system/network/interfaces.ts';
import type { IpLink } from '../../src/system/network/ip.ts';
import { classifyAddress, pickUsableAddress } from '../../src/system/network/wait-address.ts';

// Address arithmetic and the "is this address usable yet" rules behind
// waitForUsableAddress, on `ip -j addr` shaped data.

describe('address helpers', () => {
  it('expands IPv6 text', () => {
    expect(Array.from(ipv6Bytes('fe80::1')!)).toEqual([0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
    expect(Array.from(ipv6Bytes('::ffff:192.0.2.1')!.slice(10))).toEqual([0xff, 0xff, 192, 0, 2, 1]);
    expect(ipv6Bytes('fe80::1%eth0')).toBeUndefined();
    expect(ipv6Bytes('1::2::3')).toBeUndefined();
    expect(ipv6Bytes('192.0.2.1')).toBeUndefined();
  });

  it('netmask → prefix, contiguous only', () => {
    expect(netmaskToPrefix('255.255.255.0')).toBe(24);
    expect(netmaskToPrefix('0.0.0.0')).toBe(0);
    expect(netmaskToPrefix('ffff:ffff:ffff:ffff::')).toBe(64);
    expect(netmaskToPrefix('ffff:ff80::')).toBe(25);
    expect(netmaskToPrefix('255.0.255.0')).toBeUndefined();
    expect(netmaskToPrefix('nonsense')).toBeUndefined();
  });

  it('host bits', () => {
    expect(hostBitsZero('10.0.0.0', 8)).toBe(true);
    expect(hostBitsZero('10.0.0.1', 8)).toBe(false);
    expect(hostBitsZero('fd00:99::', 32)).toBe(true);
    expect(hostBitsZero('fd00:99::1', 32)).toBe(false);
  });

  it('classifies addresses', () => {
    expect(classifyIp('0.0.0.0')).toBe('unspecified');
    expect(classifyIp('::')).toBe('unspecified');
    expect(classifyIp('127.0.0.5')).toBe('loopback');
    expect(classifyIp('::1')).toBe('loopback');
    expect(classifyIp('224.0.0.251')).toBe('multicast');
    expect(classifyIp('ff02::fb')).toBe('multicast');
    expect(classifyIp('255.255.255.255')).toBe('broadcast');
    expect(classifyIp('169.254.1.1')).toBe('link-local');
    expect(classifyIp('fe80::1')).toBe('link-local');
    expect(classifyIp('febf::1')).toBe('link-local');
    expect(classifyIp('fec0::1')).toBe('global');
    expect(classifyIp('::ffff:10.0.0.1')).toBe('mapped');
    expect(classifyIp('fd00:250::1')).toBe('global');
    expect(classifyIp('10.0.0.1')).toBe('global');
    expect(classifyIp('evil.host')).toBeUndefined();
    expect(classifyIp('fe80::1%eth0')).toBeUndefined();
  });

  it('MACs and same-address checks', () => {
    expect(normalizeMac('52-54-00-AB-CD-EF')).toBe('52:54:00:ab:cd:ef');
    expect(normalizeMac('52:54:00-ab:cd:ef')).toBeUndefined();
    expect(normalizeMac('52:54:00:ab:cd')).toBeUndefined();
    expect(sameIp('fd00:0252:0::10', 'fd00:252::10')).toBe(true);
    expect(sameIp('10.0.0.1', '10.0.0.2')).toBe(false);
    expect(sameIp('::ffff:10.0.0.1', '10.0.0.1')).toBe(false);
  });
});

const link = (over: Partial<IpLink>): IpLink => ({
  ifname: 'eth0',
  ifindex: 2,
  flags: ['BROADCAST', 'MULTICAST', 'UP', 'LOWER_UP'],
  link_type: 'ether',
  address: '52:54:00:12:34:56',
  addr_info: [],
  ...over,
});

describe('wired interfaces', () => {
  it('keeps Ethernet NICs and veth, drops loopback, software links and wireless', () => {
    const none = () => false;
    expect(isWiredLink(link({}), none)).toBe(true);
    expect(isWiredLink(link({ linkinfo: { info_kind: 'veth' } }), none)).toBe(true);
    expect(isWiredLink(link({ ifname: 'lo', link_type: 'loopback', flags: ['LOOPBACK', 'UP'] }), none)).toBe(false);
    expect(isWiredLink(link({ linkinfo: { info_kind: 'bridge' } }), none)).toBe(false);
    expect(isWiredLink(link({ linkinfo: { info_kind: 'vlan' } }), none)).toBe(false);
    expect(isWiredLink(link({ link_type: 'none', ifname: 'tun0' }), none)).toBe(false);
    expect(isWiredLink(link({ ifname: 'wlan0' }), (n) => n === 'wlan0')).toBe(false);
  });
});

describe('usable addresses', () => {
  it('tentative and DAD-failed addresses are not usable', () => {
    expect(classifyAddress({ family: 'inet6', local: 'fd00::5', prefixlen: 64, scope: 'global', tentative: true })).toBeUndefined();
    expect(classifyAddress({ family: 'inet6', local: 'fd00::5', prefixlen: 64, scope: 'global', dadfailed: true })).toBeUndefined();
    expect(classifyAddress({ family: 'inet6', local: 'fd00::5', prefixlen: 64, scope: 'global' })).toBe('global');
    expect(classifyAddress({ family: 'inet6', local: 'fe80::5', prefixlen: 64, scope: 'link' })).toBe('link-local');
    expect(classifyAddress({ family: 'inet', local: '169.254.3.4', prefixlen: 16, scope: 'link' })).toBe('link-local');
    expect(classifyAddress({ family: 'inet', local: '10.0.0.4', prefixlen: 24, scope: 'global' })).toBe('global');
  });

  it('prefers global over link-local, and fresh over deprecated, on links that are up', () => {
    const links = [
      link({ ifname: 'down0', flags: ['BROADCAST'], addr_info: [{ family: 'inet', local: '10.9.9.9', prefixlen: 24, scope: 'global' }] }),
      link({
        ifname: 'eth0',
        addr_info: [
          { family: 'inet6', local: 'fe80::5', prefixlen: 64, scope: 'link' },
          { family: 'inet6', local: 'fd00::old', prefixlen: 64, scope: 'global', deprecated: true },
          { family: 'inet6', local: 'fd00::5', prefixlen: 64, scope: 'global', tentative: true },
        ],
      }),
      link({ ifname: 'eth1', addr_info: [{ family: 'inet6', local: 'fd01::7', prefixlen: 64, scope: 'global' }] }),
    ];
    expect(pickUsableAddress(links)).toEqual({ ifname: 'eth1', address: 'fd01::7', family: 'inet6', kind: 'global' });
    expect(pickUsableAddress(links.slice(0, 2))).toEqual({ ifname: 'eth0', address: 'fd00::old', family: 'inet6', kind: 'global' });
    const onlyLinkLocal = [link({ addr_info: [{ family: 'inet6', local: 'fe80::5', prefixlen: 64, scope: 'link' }] })];
    expect(pickUsableAddress(onlyLinkLocal)?.kind).toBe('link-local');
    expect(pickUsableAddress([link({ addr_info: [{ family: 'inet6', local: 'fe80::5', prefixlen: 64, scope: 'link', tentative: true }] })])).toBeUndefined();
  });
});
