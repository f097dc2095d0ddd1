import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startAgent, type AgentProcess } from '../helpers/agent-process.ts';
import { inspectorPort, startInspector, type Inspector } from '../helpers/inspector.ts';
import { startIronicRelease, type ReleaseIronic } from '../helpers/ironic-release.ts';
import { createLoopDisk, giveDiskAPartition, metadataLeft, type LoopDisk } from '../helpers/loop-disk.ts';
import { filesWith } from '../helpers/files-with.ts';

// In-band inspection on Ironic 21.4 (OpenStack 2023.1), which has no `agent`
// inspect interface: it goes through ironic-inspector 11.1 (Debian 12's
// package, lab/ironic/inspector-start.sh), with our agent as the ramdisk (a
// process on this machine, as in the other integration tests):
//
//   - a node enrolled with inspect_interface=inspector, pxe boot, fake power,
//     and two ports: this machine's NIC (pxe_enabled false: inspector finds the
//     node by its ports' MACs) and a stale one (pxe_enabled true);
//   - `baremetal node inspect`: Ironic (managing boot) writes the node's PXE
//     config with ipa-inspection-callback-url=<inspector>/v1/continue and tells
//     inspector to wait for the node (manage_boot=False);
//   - the agent starts with that kernel command line (the collectors come
//     from [inspector]extra_kernel_params),
//     POSTs its data to inspector, whose default processing hooks
//     (ramdisk_error, root_disk_selection, scheduler, validate_interfaces,
//     capabilities, pci_devices) fill the node;
//   - Ironic's periodic check sees inspector finished and the node ends
//     manageable, with cpus, cpu_arch, local_gb, the boot mode
//     ([capabilities]boot_mode on) and CPU capabilities set, pxe_enabled turned on for the NIC the agent booted from,
//     and inspector's processed data copied into Ironic's inventory store;
//   - fast track ([deploy]fast_track, inspector's [processing]power_off off):
//     the command line also holds ipa-api-url, so after inspector's answer
//     ({"uuid": ...}, not a lookup) the agent looks the node up and heartbeats,
//     and `baremetal node provide` cleans it through the same agent process.
//
// Ironic 21.4 refuses a loopback callback URL, so inspector listens on this
// machine's NIC address (what a ramdisk on the provisioning network would reach).

// dmi-decode is left out: this machine has no SMBIOS tables (dmidecode exits 1), and a
// failed collector fails the inspection (inspector's ramdisk_error hook), as with IPA.
const COLLECTORS = 'default,logs,pci-devices,lldp,numa-topology';
/** IPA never picks a root disk under 4 GiB: the loop disk is a sparse 5 GiB. */
const DISK_MIB = 5 * 1024;
const STALE_MAC = '52:54:00:a0:17:21';

/** This machine's first NIC with a device, and its IPv4 address: what the agent reports and boots from. */
async function hostNic(): Promise<{ name: string; mac: string; ipv4: string }> {
  for (const name of readdirSync('/sys/class/net').sort()) {
    if (!existsSync(`/sys/class/net/${name}/device`)) continue;
    const mac = readFileSync(`/sys/class/net/${name}/address`, 'utf8').trim();
    const { stdout } = await execa('ip', ['-j', '-4', 'addr', 'show', 'dev', name, 'scope', 'global']);
    const ipv4 = (JSON.parse(stdout) as Array<{ addr_info: Array<{ local: string }> }>)[0]?.addr_info[0]?.local;
    if (ipv4) return { name, mac, ipv4 };
  }
  throw new Error('no NIC with a /sys device and an IPv4 address on this machine');
}

describe('Ironic 21.4: in-band inspection through ironic-inspector 11.1', () => {
  let nic: { name: string; mac: string; ipv4: string };
  let ironic: ReleaseIronic | undefined;
  let inspector: Inspector | undefined;
  let disk: LoopDisk | undefined;
  let agent: AgentProcess | undefined;
  let dir: string;
  let uuid: string;

  async function api(path: string): Promise<any> {
    const res = await fetch(`${ironic!.url}${path}`, { headers: { 'X-OpenStack-Ironic-API-Version': '1.82' } });
    const text = await res.text();
    if (!res.ok) throw new Error(`GET ${path}: ${res.status} ${text}`);
    return JSON.parse(text);
  }

  beforeAll(async () => {
    nic = await hostNic();
    dir = mkdtempSync(join(tmpdir(), 'metal-agent-insp-21.4-'));
    disk = await createLoopDisk(DISK_MIB, 'insp214');
    await giveDiskAPartition(disk.device); // for cleaning to erase
    const port = await inspectorPort(nic.ipv4);
    ironic = await startIronicRelease('21.4', {
      // Fast track: Ironic adds ipa-api-url to the inspection command line, and the inspected node is
      // cleaned by the same agent without a reboot.
      fastTrack: true,
      heartbeatTimeoutSec: 30,
      // status_check_period: how often the conductor asks inspector whether the node is done (default 60 s).
      // extra_kernel_params: what Ironic adds to the inspection ramdisk's command line (the collectors).
      extraConf:
        `[inspector]\nendpoint_override = http://${nic.ipv4}:${port}\nstatus_check_period = 5\n` +
        `extra_kernel_params = ipa-inspection-collectors=${COLLECTORS} ipa-lldp-timeout=2\n` +
        // Cleaning erases metadata only: a full erase of 5 GiB would only cost time.
        `[deploy]\nerase_devices_priority = 0\n`,
    });
    inspector = await startInspector({ ironicUrl: ironic.url, hostIp: nic.ipv4, port, extraConf: '[capabilities]\nboot_mode = true\n[processing]\npower_off = false\n' });
    // Ironic knows a stale PXE port, and this machine's NIC as not PXE-enabled.
    uuid = await ironic.enroll(STALE_MAC, { provide: false, name: 'insp-21.4' });
    await ironic.baremetal(['node', 'set', uuid, '--inspect-interface', 'inspector']);
    await ironic.baremetal(['port', 'create', nic.mac, '--node', uuid, '--pxe-enabled', 'False']);
  }, 300_000);

  afterAll(async () => {
    await agent?.stop();
    await inspector?.stop();
    await ironic?.stop();
    await disk?.destroy();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('inspect -> the agent posts its data to inspector -> manageable, with properties, capabilities and ports from the agent', async () => {
    // Before: nothing known of the hardware, the NIC's port not PXE-enabled.
    const before = await ironic!.node(uuid);
    expect([before.properties.cpu_arch, before.properties.cpus, before.properties.local_gb, before.properties.capabilities]).toEqual([undefined, undefined, undefined, undefined]);
    const portsBefore = (await api(`/v1/ports?node_uuid=${uuid}&fields=address,pxe_enabled`)).ports as Array<{ address: string; pxe_enabled: boolean }>;
    expect(Object.fromEntries(portsBefore.map((p) => [p.address, p.pxe_enabled]))).toEqual({ [nic.mac]: false, [STALE_MAC]: true });

    await ironic!.baremetal(['node', 'inspect', uuid]);
    await ironic!.waitForState(uuid, ['inspect wait', 'inspect failed'], 60);
    // What Ironic rendered for the inspection ramdisk (pxe boot interface, Ironic managing boot).
    const [config] = filesWith(join(ironic!.stateDir, 'tftp'), 'ipa-inspection-callback-url=');
    expect(config, `Ironic wrote no PXE config with ipa-inspection-callback-url; node: ${JSON.stringify((await ironic!.node(uuid)).last_error)}`).toBeDefined();
    const append = readFileSync(config!, 'utf8').split('\n').find((l) => l.includes('ipa-inspection-callback-url='))!;
    const rendered = append.trim().replace(/^append\s+/, '');
    expect(rendered).toContain(`ipa-inspection-callback-url=${inspector!.url}/v1/continue`);
    expect(rendered).toContain(`ipa-inspection-collectors=${COLLECTORS}`);
    expect(rendered).toContain(`ipa-api-url=${ironic!.url}`); // fast track: inspect, then look up and heartbeat
    // Inspector was told to wait for this node (Ironic boots it).
    const started = await inspector!.get(`/v1/introspection/${uuid}`);
    expect(started.finished).toBe(false);

    const file = join(dir, 'cmdline');
    writeFileSync(file, rendered);
    agent = await startAgent({ mac: nic.mac, allowedDevices: [disk!.device], cmdlineFile: file, standalone: false });

    const node = await ironic!.waitForState(uuid, ['manageable', 'inspect failed'], 150);
    expect(node.last_error ?? null, `${agent.output().slice(-3000)}\n${inspector!.log().slice(-3000)}`).toBeNull();
    expect(node.provision_state).toBe('manageable');
    const out = agent.output();
    // Inspector 11.1 answers {"uuid": ...}: the agent logs the node it names.
    expect(out).toMatch(new RegExp(`"node":"${uuid}".*"msg":"inspection data sent"`));
    // Not a lookup-shaped answer: the agent looks the node up (fast track allows it in manageable) and heartbeats.
    await agent.waitForLog(/"msg":"lookup succeeded"/, 60);

    // Inspector's own record: finished, no error; the processed data it keeps.
    const status = await inspector!.get(`/v1/introspection/${uuid}`);
    expect(status.finished).toBe(true);
    expect(status.error).toBeNull();
    const data = await inspector!.get(`/v1/introspection/${uuid}/data`);
    const inv = data.inventory;

    // scheduler hook: cpus, cpu_arch, memory_mb (from inventory.memory.physical_mb: installed RAM,
    // read from SMBIOS; this machine has none, the agent says null, and the hook leaves memory_mb unset).
    expect(node.properties.cpu_arch).toBe(inv.cpu.architecture);
    expect(Number(node.properties.cpus)).toBe(inv.cpu.count);
    expect(node.properties.cpus).toBeTruthy();
    if (inv.memory.physical_mb) expect(Number(node.properties.memory_mb)).toBe(inv.memory.physical_mb);
    else expect(node.properties.memory_mb ?? null).toBeNull();
    expect(inv.memory.total).toBeGreaterThan(0);
    // root_disk_selection hook: the agent's root disk pick (the smallest disk of 4 GiB or more: the
    // 5 GiB loop disk), less the 1 GiB inspector keeps for partitioning.
    expect(data.root_disk.name).toBe(disk!.device);
    expect(node.properties.local_gb).toBe('4');
    // capabilities hook: the boot mode the agent reports ([capabilities]boot_mode, on here), and the
    // capabilities inspector's default cpu_flags map names from the agent's CPU flags.
    const caps = Object.fromEntries((node.properties.capabilities as string).split(',').map((c) => c.split(':') as [string, string]));
    const flagCaps: Record<string, string> = { vmx: 'cpu_vt', svm: 'cpu_vt', aes: 'cpu_aes', pse: 'cpu_hugepages', pdpe1gb: 'cpu_hugepages_1g', smx: 'cpu_txt' };
    const expectedCaps: Record<string, string> = { boot_mode: inv.boot.current_boot_mode };
    for (const f of inv.cpu.flags as string[]) if (flagCaps[f]) expectedCaps[flagCaps[f]] = 'true';
    expect(Object.keys(expectedCaps).length).toBeGreaterThan(1);
    expect(caps).toEqual(expectedCaps);
    // validate_interfaces: the PXE NIC is the one the agent booted from.
    expect(data.boot_interface).toBe(`01-${nic.mac.replace(/:/g, '-')}`);
    expect(data.macs).toEqual([nic.mac]);
    // The collectors' data went through, and inspector stored the agent's logs.
    expect(data.pci_devices.length).toBeGreaterThan(0);
    expect(data.numa_topology.ram[0].size_kb).toBeGreaterThan(0);
    expect(Object.keys(data.lldp_raw)).toContain(nic.name);
    expect(data.error ?? null).toBeNull();
    expect(inspector!.ramdiskLogs().length).toBe(1);

    // Ironic copied inspector's processed data into its own inventory store.
    const stored = await api(`/v1/nodes/${uuid}/inventory`);
    expect(stored.inventory.cpu.count).toBe(inv.cpu.count);
    expect(stored.plugin_data.root_disk.name).toBe(disk!.device);

    // The port of the NIC the agent booted from becomes PXE-enabled ([processing]update_pxe_enabled).
    // Inspector 11.1 touches only the ports of the interfaces it kept (add_ports=pxe: the booting
    // one), and keeps the others (keep_ports=all): the stale port stays as it was, unlike Ironic
    // 29.0's ports hook, which turns PXE off on every other port.
    const ports = (await api(`/v1/ports?node_uuid=${uuid}&fields=address,pxe_enabled`)).ports as Array<{ address: string; pxe_enabled: boolean }>;
    const byMac = Object.fromEntries(ports.map((p) => [p.address, p.pxe_enabled]));
    expect(byMac).toEqual({ [nic.mac]: true, [STALE_MAC]: true });
    console.log(
      `Ironic 21.4 + ironic-inspector 11.1: inspected ${uuid}: cpu_arch=${node.properties.cpu_arch} cpus=${node.properties.cpus} ` +
        `memory_mb=${node.properties.memory_mb ?? '(unset: physical_mb null, no SMBIOS here)'} local_gb=${node.properties.local_gb} ` +
        `capabilities=${node.properties.capabilities} root_disk=${data.root_disk.name} ports(pxe_enabled)=${JSON.stringify(byMac)} ` +
        `ramdisk logs stored: ${inspector!.ramdiskLogs().join(',')}`,
    );
  }, 240_000);

  it('provide cleans the inspected node through the same agent process (fast track) to available', async () => {
    expect(await metadataLeft(disk!.device)).not.toEqual([]);
    await ironic!.baremetal(['node', 'provide', uuid]);
    const node = await ironic!.waitForState(uuid, ['available', 'clean failed'], 120);
    expect(node.last_error ?? null, agent!.output().slice(-3000)).toBeNull();
    expect(node.provision_state).toBe('available');
    // One agent process, started once, one lookup (after inspector's answer): no reboot, no new boot.
    const out = agent!.output();
    expect(out.match(/"msg":"API listening"/g)).toHaveLength(1);
    expect(out.match(/"msg":"lookup succeeded"/g)).toHaveLength(1);
    expect(ironic!.log()).toMatch(/erase_devices_metadata/);
    expect(await metadataLeft(disk!.device)).toEqual([]);
    console.log(`Ironic 21.4: ${uuid} cleaned by the agent that inspected it through ironic-inspector (pid ${agent!.pid}, fast track): available`);
  }, 180_000);
});
