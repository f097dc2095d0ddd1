import { describe, expect, it } from 'vitest';
import {
  NetworkDataError,
  parseNetworkData,
  planNetworkData,
  resolvConf,
  type PlanInterface,
} from '../../src/system/network/network-data.ts';

const MAC0 = '52:54:00:12:34:56';
const MAC1 = '52:54:00:ab:cd:ef';
const NICS: PlanInterface[] = [
  { ifname: 'eno1', mac: MAC0, wired: true },
  { ifname: 'eno2', mac: MAC1.toUpperCase(), wired: true },
];

function plan(doc: unknown, nics = NICS) {
  return planNetworkData(parseNetworkData(doc), nics);
}

describe('network_data.json → ip commands', () => {
  it('static IPv6 with netmask, routes and DNS on the NIC with that MAC', () => {
    const p = plan({
      links: [{ id: 'l0', type: 'phy', ethernet_mac_address: MAC1, mtu: 9000 }],
      networks: [
        {
          id: 'n0', type: 'ipv6', link: 'l0', ip_address: 'fd00:1::10', netmask: 'ffff:ffff:ffff:ffff::',
          routes: [
            { network: '::', netmask: '::', gateway: 'fd00:1::1' },
            { network: 'fd00:99::', netmask: 'ffff:ffff::', gateway: 'fd00:1::2' },
          ],
          services: [{ type: 'dns', address: 'fd00:1::53' }],
        },
      ],
      services: [{ type: 'dns', address: '192.0.2.53' }, { type: 'ntp', address: '192.0.2.1' }],
    });
    expect(p.commands).toEqual([
      ['link', 'set', 'dev', 'eno2', 'mtu', '9000'],
      ['link', 'set', 'dev', 'eno2', 'up'],
      ['-6', 'addr', 'replace', 'fd00:1::10/64', 'dev', 'eno2'],
      ['-6', 'route', 'replace', 'default', 'via', 'fd00:1::1', 'dev', 'eno2'],
      ['-6', 'route', 'replace', 'fd00:99::/32', 'via', 'fd00:1::2', 'dev', 'eno2'],
    ]);
    expect(p.nameservers).toEqual(['fd00:1::53', '192.0.2.53']);
    expect(p.interfaces).toEqual({ l0: 'eno2' });
    expect(p.addresses).toEqual([{ dev: 'eno2', address: 'fd00:1::10', prefix: 64 }]);
    expect(p.warnings).toEqual([]);
  });

  it('static IPv4 with a prefix in ip_address; all routes come after all addresses', () => {
    const p = plan({
      links: [
        { id: 'a', type: 'ethernet', ethernet_mac_address: MAC0 },
        { id: 'b', type: 'vif', ethernet_mac_address: MAC1 },
      ],
      networks: [
        { id: 'x', type: 'ipv4', link: 'a', ip_address: '192.0.2.10/24', routes: [{ network: '0.0.0.0', netmask: '0.0.0.0', gateway: '192.0.2.1' }] },
        { id: 'y', type: 'ipv4', link: 'b', ip_address: '198.51.100.7', netmask: '255.255.255.128' },
      ],
    });
    expect(p.commands).toEqual([
      ['link', 'set', 'dev', 'eno1', 'up'],
      ['link', 'set', 'dev', 'eno2', 'up'],
      ['-4', 'addr', 'replace', '192.0.2.10/24', 'dev', 'eno1'],
      ['-4', 'addr', 'replace', '198.51.100.7/25', 'dev', 'eno2'],
      ['-4', 'route', 'replace', 'default', 'via', '192.0.2.1', 'dev', 'eno1'],
    ]);
  });

  it('a VLAN on top of a NIC', () => {
    const p = plan({
      links: [
        { id: 'p', type: 'phy', ethernet_mac_address: MAC0 },
        { id: 'v', type: 'vlan', vlan_link: 'p', vlan_id: 42, vlan_mac_address: MAC0 },
      ],
      networks: [{ id: 'n', type: 'ipv6', link: 'v', ip_address: 'fd00:42::5/64' }],
    });
    expect(p.commands).toEqual([
      ['link', 'set', 'dev', 'eno1', 'up'],
      ['link', 'add', 'link', 'eno1', 'name', 'eno1.42', 'type', 'vlan', 'id', '42'],
      ['link', 'set', 'dev', 'eno1.42', 'address', MAC0],
      ['link', 'set', 'dev', 'eno1.42', 'up'],
      ['-6', 'addr', 'replace', 'fd00:42::5/64', 'dev', 'eno1.42'],
    ]);
  });

  it('a VLAN child sharing the MAC never takes the physical link', () => {
    const p = plan(
      { links: [{ id: 'p', type: 'phy', ethernet_mac_address: MAC0 }], networks: [] },
      [{ ifname: 'eno1.42', mac: MAC0, wired: false }, { ifname: 'eno1', mac: MAC0, wired: true }],
    );
    expect(p.interfaces).toEqual({ p: 'eno1' });
  });

  it('DHCP, SLAAC, unknown MACs and bonds become warnings, not commands', () => {
    const p = plan({
      links: [
        { id: 'p', type: 'phy', ethernet_mac_address: MAC0 },
        { id: 'gone', type: 'phy', ethernet_mac_address: '02:00:00:00:00:09' },
        { id: 'b', type: 'bond', bond_links: ['p'], bond_mode: '802.3ad' },
      ],
      networks: [
        { id: 'd', type: 'ipv4_dhcp', link: 'p' },
        { id: 's', type: 'ipv6_slaac', link: 'p' },
        { id: 'g', type: 'ipv4', link: 'gone', ip_address: '192.0.2.9/24' },
        { id: 'bn', type: 'ipv4', link: 'b', ip_address: '192.0.2.8/24' },
      ],
    });
    expect(p.commands).toEqual([['link', 'set', 'dev', 'eno1', 'up']]);
    expect(p.acceptRa).toEqual(['eno1']);
    expect(p.warnings).toHaveLength(5);
    expect(p.warnings.join('\n')).toMatch(/no wired interface with MAC 02:00:00:00:00:09/);
    expect(p.warnings.join('\n')).toMatch(/bonds are not supported/);
    expect(p.warnings.join('\n')).toMatch(/ipv4_dhcp needs a DHCP client/);
  });

  it('writes resolv.conf text', () => {
    expect(resolvConf(['192.0.2.53', 'fd00::53'])).toBe(
      '# written by metal-agent from network_data.json\nnameserver 192.0.2.53\nnameserver fd00::53\n',
    );
  });
});

describe('network_data.json is parsed strictly', () => {
  const link = { id: 'l', type: 'phy', ethernet_mac_address: MAC0 };
  const bad: Array<[string, unknown, RegExp]> = [
    ['not an object', [], /\(top\): must be an object/],
    ['links not a list', { links: {} }, /links: must be a list/],
    ['bad MAC', { links: [{ id: 'l', type: 'phy', ethernet_mac_address: 'zz:00:00:00:00:00' }] }, /links\[0\]\.ethernet_mac_address/],
    ['missing MAC', { links: [{ id: 'l', type: 'phy' }] }, /links\[0\]\.ethernet_mac_address: is required$/],
    ['empty MAC', { links: [{ id: 'l', type: 'phy', ethernet_mac_address: '' }] }, /ethernet_mac_address: must be a non-empty string/],
    ['vlan without vlan_id', { links: [link, { id: 'v', type: 'vlan', vlan_link: 'l' }] }, /links\[1\]\.vlan_id: is required for a vlan link/],
    ['route without gateway', { links: [link], networks: [{ type: 'ipv4', link: 'l', ip_address: '192.0.2.1/24', routes: [{ network: '0.0.0.0', netmask: '0.0.0.0' }] }] }, /networks\[0\]\.routes\[0\]\.gateway: is required/],
    ['network type not a string', { links: [link], networks: [{ type: 4, link: 'l' }] }, /networks\[0\]\.type: unknown network type 4/],
    ['id too long', { links: [{ ...link, id: 'x'.repeat(256) }] }, /links\[0\]\.id: must be a non-empty string/],
    ['duplicate link id', { links: [link, link] }, /duplicate link id/],
    ['mtu out of range', { links: [{ ...link, mtu: 10 }] }, /mtu: must be an integer/],
    ['vlan id out of range', { links: [link, { id: 'v', type: 'vlan', vlan_link: 'l', vlan_id: 5000 }] }, /vlan_id/],
    ['vlan_link dangling', { links: [{ id: 'v', type: 'vlan', vlan_link: 'x', vlan_id: 5 }] }, /vlan_link: names no link/],
    ['network on unknown link', { links: [link], networks: [{ type: 'ipv4', link: 'nope', ip_address: '192.0.2.1/24' }] }, /networks\[0\]\.link: names no link/],
    ['unknown network type', { links: [link], networks: [{ type: 'ipv5', link: 'l' }] }, /unknown network type/],
    ['IPv6 address in an ipv4 network', { links: [link], networks: [{ type: 'ipv4', link: 'l', ip_address: 'fd00::1/64' }] }, /must be an IPv4 address/],
    ['no netmask, no prefix', { links: [link], networks: [{ type: 'ipv6', link: 'l', ip_address: 'fd00::1' }] }, /netmask: is required/],
    ['non-contiguous netmask', { links: [link], networks: [{ type: 'ipv4', link: 'l', ip_address: '192.0.2.1', netmask: '255.0.255.0' }] }, /contiguous/],
    ['IPv4 netmask on IPv6', { links: [link], networks: [{ type: 'ipv6', link: 'l', ip_address: 'fd00::1', netmask: '255.255.255.0' }] }, /contiguous IPv6 netmask/],
    ['contradicting prefix', { links: [link], networks: [{ type: 'ipv4', link: 'l', ip_address: '192.0.2.1/24', netmask: '255.255.0.0' }] }, /contradicts/],
    ['prefix too long', { links: [link], networks: [{ type: 'ipv4', link: 'l', ip_address: '192.0.2.1/33' }] }, /bad prefix length/],
    ['route with host bits', { links: [link], networks: [{ type: 'ipv4', link: 'l', ip_address: '192.0.2.1/24', routes: [{ network: '10.0.0.1', netmask: '255.0.0.0', gateway: '192.0.2.254' }] }] }, /host bits set/],
    ['route gateway of the other family', { links: [link], networks: [{ type: 'ipv4', link: 'l', ip_address: '192.0.2.1/24', routes: [{ network: '0.0.0.0', netmask: '0.0.0.0', gateway: 'fd00::1' }] }] }, /gateway: must be an IPv4 address/],
    ['DNS not an address', { services: [{ type: 'dns', address: 'dns.example.com' }] }, /services\[0\]\.address: must be a unicast IP address/],
    ['DNS multicast', { services: [{ type: 'dns', address: 'ff02::1' }] }, /must be a unicast IP address/],
    ['shell in an address', { links: [link], networks: [{ type: 'ipv4', link: 'l', ip_address: '192.0.2.1;reboot', netmask: '24' }] }, /must be an IPv4 address/],
    ['address with a zone', { links: [link], networks: [{ type: 'ipv6', link: 'l', ip_address: 'fe80::1%eth0/64' }] }, /must be an IPv6 address/],
  ];
  for (const [what, doc, error] of bad) {
    it(`refuses: ${what}`, () => {
      expect(() => parseNetworkData(doc)).toThrow(NetworkDataError);
      expect(() => parseNetworkData(doc)).toThrow(error);
    });
  }

  it('accepts numeric strings where OpenStack writes them and ignores unknown keys', () => {
    const d = parseNetworkData({
      links: [{ id: 'l', type: 'phy', ethernet_mac_address: MAC0, mtu: '1500', vif_id: 'x' }],
      networks: [{ id: 'n', type: 'ipv6', link: 'l', ip_address: 'fd00::5', netmask: '64', network_id: 'abc' }],
    });
    expect(d.links[0]).toMatchObject({ mtu: 1500, mac: MAC0 });
    expect(d.networks[0]).toMatchObject({ address: 'fd00::5', prefix: 64 });
  });

  it('reads a null value as an absent key', () => {
    const d = parseNetworkData({
      links: [{ id: 'l', type: 'phy', ethernet_mac_address: MAC0, mtu: null }, { id: 'v', type: 'vlan', vlan_link: 'l', vlan_id: '7', vlan_mac_address: null }],
      networks: [{ id: 'n', type: 'ipv4', link: 'v', ip_address: '192.0.2.5/24', netmask: null, routes: null, services: null }],
      services: null,
    });
    expect(d.links[1]).toEqual({ id: 'v', kind: 'vlan', type: 'vlan', vlanLink: 'l', vlanId: 7, mtu: undefined });
    expect(d.networks[0]).toMatchObject({ address: '192.0.2.5', prefix: 24, routes: [], dns: [] });
    expect(() => parseNetworkData({ links: [{ id: 'l', type: 'phy', ethernet_mac_address: null }] })).toThrow(/ethernet_mac_address: is required/);
  });
});
