import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startIronic, type Ironic } from '../helpers/ironic.ts';
import { createVmNetwork, type VmNetwork } from './qemu-network.ts';
import { startVm, type Vm } from './qemu.ts';

// Issue 5, "Show it" 3, with the whole agent: a virtual-media style boot on a
// network with no DHCP server and no router advertisements. The VM boots our
// ramdisk with `boot_method=vmedia` and a CD-ROM labelled config-2 holding
// openstack/latest/network_data.json (a static IPv6 address for the NIC with
// the node's MAC), as Ironic's Redfish virtual media puts it on the boot ISO.
// The agent applies it, reaches Ironic at its IPv6 address, looks up,
// heartbeats, and a real Ironic cleans the node to `available` through the
// agent's static address.

const MAC = '52:54:00:5e:0d:01';
const HOST6 = 'fd00:253::1';
const NODE6 = 'fd00:253::10';
const LIMIT_MS = 600_000; // TCG on 2 shared cores: a bound, not a speed check

describe('Ironic 21.4: virtual media boot with a static IPv6 address from network_data.json (no DHCP, no RA)', () => {
  let net: VmNetwork;
  let ironic: Ironic;
  let vm: Vm;
  let uuid: string;
  const dir = mkdtempSync(join(tmpdir(), 'metal-agent-vmedia-'));

  beforeAll(async () => {
    const cd = join(dir, 'config-2');
    mkdirSync(join(cd, 'openstack', 'latest'), { recursive: true });
    writeFileSync(
      join(cd, 'openstack', 'latest', 'network_data.json'),
      JSON.stringify({
        links: [{ id: 'port-0', type: 'phy', ethernet_mac_address: MAC }],
        networks: [{ id: 'v6', type: 'ipv6', link: 'port-0', ip_address: NODE6, netmask: 'ffff:ffff:ffff:ffff::' }],
        services: [],
      }),
    );
    const iso = join(dir, 'vmedia.iso');
    await execa('genisoimage', ['-quiet', '-V', 'config-2', '-r', '-J', '-o', iso, cd]);

    net = await createVmNetwork('vmed', { dhcp: false });
    await net.ns.ip(['addr', 'add', `${HOST6}/64`, 'dev', net.bridge, 'nodad']);
    ironic = await startIronic({
      netns: net.ns.name,
      hostIp: HOST6,
      port: 6385,
      heartbeatTimeoutSec: 30,
      extraConf: '[deploy]\nerase_devices_priority = 0\n',
    });
    uuid = await ironic.enroll(MAC);
    vm = await startVm({
      network: net,
      mac: MAC,
      memoryMiB: 512,
      disks: [{ sizeMiB: 1024, bus: 'virtio', serial: 'VMEDIA-0' }],
      kernelArgs: ['boot_method=vmedia', `ipa-api-url=http://[${HOST6}]:6385`, `BOOTIF=01-${MAC.replace(/:/g, '-')}`],
      // The BMC's virtual CD-ROM (q35's AHCI port 1).
      extraQemuArgs: ['-drive', `file=${iso},media=cdrom,if=none,id=cd0,readonly=on`, '-device', 'ide-cd,drive=cd0,bus=ide.1'],
    });
  }, 300_000);

  afterAll(async () => {
    await vm?.stop();
    await ironic?.stop();
    await net?.destroy();
    rmSync(dir, { recursive: true, force: true });
  }, 120_000);

  it('applies the static address, looks up, heartbeats and is cleaned to available through it', async () => {
    const agentUrls = new Set<string>();
    const node = await ironic.waitForState(uuid, ['available', 'clean failed'], LIMIT_MS / 1000, {
      onNode: (n) => void (n.driver_internal_info?.agent_url && agentUrls.add(n.driver_internal_info.agent_url)),
    });
    const serial = await vm.serialText();
    expect(node.last_error ?? null, serial.slice(-4000)).toBeNull();
    expect(node.provision_state).toBe('available');
    expect(serial).toMatch(/"found":true[^\n]*"msg":"virtual media network_data.json"/);
    expect(serial).toMatch(/lookup succeeded/);
    // Ironic reached the agent at the address network_data.json gave it.
    expect([...agentUrls].length).toBeGreaterThan(0);
    for (const u of agentUrls) expect(u).toMatch(new RegExp(`^https://\\[${NODE6.replace(/:/g, ':')}\\]:\\d+$`));
    // The agent's network came up on the static address (there is no DHCP or RA to give another).
    expect(serial).toMatch(/"address":"fd00:253::10"[^\n]*"staticConfig":true[^\n]*"msg":"network ready"/);
  }, LIMIT_MS);
});
