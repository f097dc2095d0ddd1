import { describe, expect, it } from 'vitest';
import { isReportedDisk, toBlockDevice, type LsblkRow } from '../../src/hardware/block-devices.ts';
import { parseCpuFlags, parseLscpu } from '../../src/hardware/cpu.ts';
import { memTotalBytes, physicalMbFromDmidecode } from '../../src/hardware/memory.ts';
import { frameFromTcpdumpHex, lldpPduOfFrame, parseLldpTlvs } from '../../src/hardware/lldp.ts';
import { parseLan6Addresses, parseLanPrintAddress } from '../../src/hardware/bmc.ts';
import { addressesFromIpJson, isVlanName } from '../../src/hardware/interfaces.ts';

// Parsers of the inventory, fed with real output of the tools (trimmed).

const noLoops = { includeLoop: false, ignoreEmpty: true };

describe("IPA's disk filter", () => {
  const row = (p: Partial<LsblkRow>): LsblkRow => ({ kname: 'sda', type: 'disk', size: 1 << 30, ...p });
  it('keeps whole disks and RAID volumes', () => {
    expect(isReportedDisk(row({}), noLoops)).toBe(true);
    expect(isReportedDisk(row({ kname: 'md0', type: 'raid1' }), noLoops)).toBe(true);
    expect(isReportedDisk(row({ kname: 'nvme0n1' }), noLoops)).toBe(true);
  });
  it('drops partitions, cdroms, LVM, floppies, RAM disks, zram and empty devices', () => {
    expect(isReportedDisk(row({ kname: 'sda1', type: 'part' }), noLoops)).toBe(false);
    expect(isReportedDisk(row({ kname: 'sr0', type: 'rom' }), noLoops)).toBe(false);
    expect(isReportedDisk(row({ kname: 'dm-0', type: 'lvm' }), noLoops)).toBe(false);
    expect(isReportedDisk(row({ kname: 'fd0' }), noLoops)).toBe(false);
    expect(isReportedDisk(row({ kname: 'ram0' }), noLoops)).toBe(false);
    expect(isReportedDisk(row({ kname: 'zram0' }), noLoops)).toBe(false);
    expect(isReportedDisk(row({ size: 0 }), noLoops)).toBe(false);
    expect(isReportedDisk(row({ size: 0 }), { includeLoop: false, ignoreEmpty: false })).toBe(true);
  });
  it('drops loops unless asked, and loops without a backing file always', () => {
    expect(isReportedDisk(row({ kname: 'loop999', type: 'loop' }), noLoops)).toBe(false);
    expect(isReportedDisk(row({ kname: 'loop999', type: 'loop' }), { includeLoop: true, ignoreEmpty: true })).toBe(false);
  });
  it("maps lsblk's JSON (new booleans and old strings) to IPA's fields", () => {
    // A sample lsblk row mapped in memory: nothing opens /dev/sdz.
    const d = toBlockDevice(
      { kname: 'sdz', model: 'QEMU HARDDISK   ', size: '1073741824', rota: '1', type: 'disk', serial: 'QM0001', wwn: '0x5000', 'log-sec': 512, 'phy-sec': 4096, tran: 'sata', 'maj:min': null },
      new Map([['/dev/sdz', '/dev/disk/by-path/pci-0000:00:1f.2-ata-1']]),
    );
    expect(d).toMatchObject({
      name: '/dev/sdz', model: 'QEMU HARDDISK', size: 1073741824, rotational: true, serial: 'QM0001', wwn: '0x5000',
      by_path: '/dev/disk/by-path/pci-0000:00:1f.2-ata-1', logical_sectors: 512, physical_sectors: 4096, tran: 'sata',
      hctl: null, vendor: null, wwn_with_extension: null, wwn_vendor_extension: null,
    });
    expect(toBlockDevice({ kname: 'vdz', model: null, size: 5, rota: false }, new Map())).toMatchObject({ model: '', rotational: false, serial: null });
  });
});

describe('cpu and memory parsers', () => {
  const lscpu = 'Architecture:            x86_64\nCPU(s):                  8\nModel name:              Intel(R) Xeon(R) CPU E5-2680 v4 @ 2.40GHz\nCPU MHz:                 1200.000\nCPU max MHz:             3300.0000\n';
  it('lscpu: max frequency preferred over the current one', () => {
    const info = parseLscpu(lscpu);
    expect(info['cpu max mhz']).toBe('3300.0000');
    expect(info['model name']).toBe('Intel(R) Xeon(R) CPU E5-2680 v4 @ 2.40GHz');
    expect(info['cpu(s)']).toBe('8');
  });
  it('flags from the first flags line', () => {
    expect(parseCpuFlags('processor\t: 0\nflags\t\t: fpu vme de\nflags\t\t: other\n')).toEqual(['fpu', 'vme', 'de']);
    expect(parseCpuFlags('Features\t: fp asimd\n')).toEqual([]);
  });
  it('MemTotal in bytes, SMBIOS memory devices summed in MiB', () => {
    expect(memTotalBytes('MemTotal:       24684084 kB\nMemFree: 1 kB\n')).toBe(24684084 * 1024);
    const dmi = [
      'Handle 0x1100, DMI type 17, 40 bytes\nMemory Device\n\tSize: 16 GB\n\tLocator: DIMM A1',
      'Handle 0x1101, DMI type 17, 40 bytes\nMemory Device\n\tSize: No Module Installed\n\tLocator: DIMM A2',
      'Handle 0x1102, DMI type 17, 40 bytes\nMemory Device\n\tSize: 8192 MB\n\tLocator: DIMM B1',
    ].join('\n\n');
    expect(physicalMbFromDmidecode(dmi)).toBe(16384 + 8192);
    expect(physicalMbFromDmidecode('# No SMBIOS nor DMI entry point found, sorry.\n')).toBeNull();
  });
});

describe('network parsers', () => {
  it('VLAN names and first addresses from ip -j', () => {
    expect(isVlanName('eth0.100')).toBe(true);
    expect(isVlanName('eth0')).toBe(false);
    const m = addressesFromIpJson(JSON.stringify([
      { ifname: 'eth0', addr_info: [{ family: 'inet6', local: 'fd00::2' }, { family: 'inet', local: '192.0.2.2' }, { family: 'inet', local: '192.0.2.3' }] },
      { ifname: 'eth1', addr_info: [] },
    ]));
    expect(m.get('eth0')).toEqual({ v4: '192.0.2.2', v6: 'fd00::2' });
    expect(m.get('eth1')).toEqual({ v4: null, v6: null });
  });

  it('LLDP: raw TLVs from a tcpdump hex dump of a real frame', () => {
    // chassis id (MAC 00:11:22:33:44:55), port id (ifname "Gi1/0/1"), TTL 120, end
    const dump = [
      '\t0x0000:  0180 c200 000e 0011 2233 4455 88cc 0207',
      '\t0x0010:  0400 1122 3344 5504 0805 4769 312f 302f',
      '\t0x0020:  3106 0200 7800 00',
    ].join('\n');
    const pdu = lldpPduOfFrame(frameFromTcpdumpHex(dump));
    expect(pdu).not.toBeNull();
    expect(parseLldpTlvs(pdu!)).toEqual([
      [1, '04001122334455'],
      [2, '054769312f302f31'],
      [3, '0078'],
    ]);
    expect(lldpPduOfFrame(Buffer.from('0180c200000e001122334455080045', 'hex'))).toBeNull();
  });

  it('BMC addresses from ipmitool output', () => {
    expect(parseLanPrintAddress('Set in Progress         : Set Complete\nIP Address Source       : Static Address\nIP Address              : 10.0.0.5\nSubnet Mask             : 255.255.255.0\n')).toBe('10.0.0.5');
    expect(parseLanPrintAddress('Set in Progress : Set Complete\n')).toBeNull();
    const lan6 = 'IPv6 Dynamic Address 0:\n    Source/Type: SLAAC\n    Address: 2001:db8::5/64\n    Status: active\nIPv6 Dynamic Address 1:\n    Source/Type: DHCPv6\n    Address: ::/128\n    Status: active\n';
    expect(parseLan6Addresses(lan6, true)).toBe('2001:db8::5');
    expect(parseLan6Addresses(lan6.replace('active', 'disabled').replace('2001:db8::5/64', '::/64'), true)).toBeNull();
  });
});
