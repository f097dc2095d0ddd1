import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { inspectionReply } from '../../src/conductor/client.ts';
import { collectInspectionData, collectorNames, numaTopology, parseDmi, pciDevices } from '../../src/hardware/inspection-collectors.ts';
import type { Inventory } from '../../src/hardware/inventory.ts';

// The inspection collectors (IPA's names and shapes) on a fake sysfs, and
// what the agent reads from an inspection answer.

const root = mkdtempSync(join(tmpdir(), 'mai-sys-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
const put = (path: string, text: string) => {
  mkdirSync(dirname(join(root, path)), { recursive: true });
  writeFileSync(join(root, path), text);
};

put('bus/pci/devices/0000:00:01.0/vendor', '0x8086\n');
put('bus/pci/devices/0000:00:01.0/device', '0x7000\n');
put('bus/pci/devices/0000:00:01.0/class', '0x060100\n');
put('bus/pci/devices/0000:00:01.0/revision', '0x00\n');
put('bus/pci/devices/0000:00:01.0/numa_node', '-1\n');
put('bus/pci/devices/0000:00:02.0/vendor', 'garbage\n'); // no "x": skipped, as IPA does
put('devices/system/node/node0/meminfo', 'Node 0 MemTotal:       16337764 kB\nNode 0 MemFree: 1 kB\n');
put('devices/system/node/node0/cpu0/topology/core_id', '0\n');
put('devices/system/node/node0/cpu1/topology/core_id', '1\n');
put('devices/system/node/node0/cpu2/topology/core_id', '0\n');
put('class/net/eth0/device/numa_node', '0\n');
put('class/net/eth0/address', '52:54:00:12:34:56\n');
mkdirSync(join(root, 'class/net/veth0'), { recursive: true });

const DMI = `# dmidecode 3.4
Getting SMBIOS data from sysfs.

Handle 0x0000, DMI type 0, 24 bytes
BIOS Information
\tVendor: SeaBIOS
\tVersion: 1.16.2-debian-1.16.2-1
\tCharacteristics:
\t\tBIOS characteristics not supported
\t\tTargeted content distribution is supported
\tBIOS Revision: 0.0

Handle 0x0400, DMI type 4, 42 bytes
Processor Information
\tSocket Designation: CPU 0
\tType: Central Processor
\tFlags:
\t\tFPU (Floating-point unit on-chip)

Handle 0x1000, DMI type 16, 23 bytes
Physical Memory Array
\tLocation: Other
\tNumber Of Devices: 1

Handle 0x1100, DMI type 17, 40 bytes
Memory Device
\tSize: 24 GB
\tType: RAM
`;

describe('inspection collectors', () => {
  it('pci-devices: ids without 0x, bus, numa node; unreadable devices skipped', () => {
    expect(pciDevices(root)).toEqual([
      { vendor_id: '8086', product_id: '7000', class: '060100', revision: '00', bus: '0000:00:01.0', numa_node_id: '-1' },
    ]);
  });

  it('numa-topology: RAM per node, cores with their thread siblings, NICs with a device', () => {
    expect(numaTopology(root)).toEqual({
      ram: [{ numa_node: 0, size_kb: 16337764 }],
      cpus: [
        { cpu: 0, numa_node: 0, thread_siblings: [0, 2] },
        { cpu: 1, numa_node: 0, thread_siblings: [1] },
      ],
      nics: [{ name: 'eth0', numa_node: 0 }],
    });
    expect(() => numaTopology(join(root, 'nowhere'))).toThrow(/no NUMA node/);
  });

  it('dmi-decode: BIOS, processors and memory sections, list values kept', () => {
    const dmi = parseDmi(DMI);
    expect(dmi.bios).toMatchObject({ Vendor: 'SeaBIOS', 'BIOS Revision': '0.0' });
    expect(dmi.bios.Characteristics).toEqual(['BIOS characteristics not supported', 'Targeted content distribution is supported']);
    expect(dmi.cpu).toHaveLength(1);
    expect(dmi.cpu[0]).toMatchObject({ 'Socket Designation': 'CPU 0', Flags: ['FPU (Floating-point unit on-chip)'] });
    expect(dmi.memory).toMatchObject({ 'Number Of Devices': '1', devices: [{ Size: '24 GB', Type: 'RAM' }] });
  });

  it('runs the named collectors in turn; a failing or unknown one ends up in error, the others still run', async () => {
    const inventory = {
      interfaces: [],
      cpu: { model_name: 'x', frequency: '', count: 2, architecture: 'x86_64', flags: [] },
      disks: [],
      memory: { total: 1, physical_mb: 1024 },
      bmc_address: null,
      bmc_v6address: null,
      system_vendor: { product_name: '', serial_number: '', manufacturer: '' },
      boot: { current_boot_mode: 'bios', pxe_interface: '01-52-54-00-12-34-56' },
      hostname: 'h',
    } as unknown as Inventory;
    const data = await collectInspectionData(collectorNames(' default, logs ,pci-devices,numa-topology,extra-hardware,nonsense'), {
      inventory: async () => inventory,
      logs: async () => 'bG9ncw==',
      lldpTimeoutSec: 1,
      sysRoot: root,
    });
    expect(data.inventory).toEqual(inventory);
    expect(data.boot_interface).toBe('01-52-54-00-12-34-56');
    expect(data.configuration).toMatchObject({ collectors: ['default', 'logs', 'pci-devices', 'numa-topology', 'extra-hardware', 'nonsense'] });
    expect(data.logs).toBe('bG9ncw==');
    expect(data.pci_devices).toHaveLength(1);
    expect((data.numa_topology as { ram: unknown[] }).ram).toHaveLength(1);
    expect(data.error).toMatch(/^The following errors were encountered:\n\* collector extra-hardware failed: .*hardware-detect.*\n\* collector nonsense failed: unknown collector/);
  });
});

describe('the inspection answer', () => {
  it('Ironic >= 1.84: lookup-shaped (node + config with the token)', () => {
    const body = JSON.stringify({ node: { uuid: 'u-1', properties: {} }, config: { agent_token: 't'.repeat(43), heartbeat_timeout: 30 } });
    const r = inspectionReply(body);
    expect(r.uuid).toBe('u-1');
    expect(r.lookup?.config.agent_token).toBe('t'.repeat(43));
  });

  it('older Ironic and ironic-inspector: only the uuid; anything else: nothing', () => {
    expect(inspectionReply('{"uuid": "u-2"}')).toEqual({ uuid: 'u-2' });
    expect(inspectionReply('not json')).toEqual({});
    expect(inspectionReply('{"node": {"uuid": "u-3"}}')).toEqual({});
  });
});
