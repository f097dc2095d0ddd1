import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Ironic } from '../helpers/ironic.ts';
import { startIronicRelease, type IronicRelease } from '../helpers/ironic-release.ts';
import { metadataLeft } from '../helpers/loop-disk.ts';
import { createVmNetwork, type VmNetwork } from './qemu-network.ts';
import { startVm, type Vm } from './qemu.ts';
import { expectNoLastError } from './qemu-serial.ts';
import { filesWith } from '../helpers/files-with.ts';
import { startInspector, type Inspector } from '../helpers/inspector.ts';

// Issue 6 end to end: a real Ironic on the provisioning network (a namespace),
// a qemu VM that boots our kernel + ramdisk with ipa-api-url on its command
// line; the node goes clean wait -> available with the VM's agent
// heartbeating and really erasing the metadata of the VM's disk. Once per
// Ironic release: the same ramdisk binary serves 21.4, 29.0 and 39.0 (29.0 and
// 39.0 refuse plain-HTTP callbacks, so this is also the ramdisk's auto-TLS on a
// real NIC).
//
// Each VM is first inspected (issue 17, Show it 1 and 2, with SMBIOS: the
// integration tests' host has none): on 29.0 and 39.0 through Ironic's `agent`
// inspect interface, on 21.4 through ironic-inspector 11.1 (lab/ironic/
// inspector-start.sh, run in the VM network's namespace beside Ironic).
// `baremetal node inspect` renders ipa-inspection-callback-url and ipa-api-url
// into the node's PXE config, the VM boots with that command line (plus the
// collectors), the agent posts its inventory (memory.physical_mb from
// dmidecode's type 17 records: the VM's -m), Ironic's hooks fill the node and
// an inspection rule sets extra (29.0, 39.0: Ironic's own rules API); then
// `provide` cleans it through the same agent (fast track: one kernel boot, one
// agent start; on 21.4 inspector answers {uuid}, not a lookup, so the agent
// looks the node up once). The VM has a second
// NIC (qemu user networking) with no port in Ironic: the lookup finds the node
// by the first NIC's port (enrolled, as an operator does), and Ironic's ports
// hook ([inspector]add_ports = all) creates the second NIC's port from the
// agent's inventory.

const LIMIT_MS = 600_000; // TCG on 2 shared cores: a bound, not a speed check

const MEMORY_MIB = 512;
/** The collectors Ironic's [inspector]extra_kernel_params would name; dmi-decode works here (the VM has SMBIOS). */
const COLLECTORS = 'default,logs,pci-devices,lldp,numa-topology,dmi-decode';

/** Each release with the VM's MAC; 21.4 has no `agent` inspect interface and inspects through ironic-inspector. */
const CASES: Array<[IronicRelease, string]> = [
  ['21.4', '52:54:00:e2:e0:01'],
  ['29.0', '52:54:00:e2:e0:29'],
  ['39.0', '52:54:00:e2:e0:39'],
];

/** ironic-inspector's port, inside the VM network's own namespace (nothing else listens there). */
const INSPECTOR_PORT = 5050;

// Concurrent: the three releases (each its own network, Ironic and VM) run side by side; within
// one, inspection comes before cleaning (it.sequential). One after another they took 166 s.
for (const [release, MAC] of CASES) describe.concurrent(`Ironic ${release}: a VM booted from the ramdisk is inspected${release === '21.4' ? ' (ironic-inspector)' : ''}, then cleaned`, () => {
  const viaInspector = release === '21.4';
  let inspector: Inspector | undefined;
  /** The second NIC's MAC: a port that only inspection creates. */
  const SECOND_MAC = MAC.replace(/:e0:/, ':e1:');
  let net: VmNetwork;
  let ironic: Ironic;
  let vm: Vm;
  let uuid: string;
  const dir = mkdtempSync(join(tmpdir(), 'metal-agent-e2e-'));
  const disk = join(dir, 'disk.raw');
  /** Ironic's REST API from inside the namespace (curl): rules, the stored inventory, ports. */
  const api = async (method: string, path: string, body?: unknown): Promise<any> => {
    const version = viaInspector ? '1.82' : '1.96';
    const args = ['netns', 'exec', net.ns.name, 'curl', '-fsS', '-X', method, '-H', `X-OpenStack-Ironic-API-Version: ${version}`, '-H', 'Content-Type: application/json'];
    if (body !== undefined) args.push('--data', JSON.stringify(body));
    const { stdout } = await execa('ip', [...args, `${ironic.url}${path}`]);
    return stdout ? JSON.parse(stdout) : undefined;
  };

  beforeAll(async () => {
    // The VM's disk, with a partition table for cleaning to remove. Inspection needs
    // a root disk candidate: IPA (and the agent) never pick a disk under 4 GiB.
    await execa('truncate', ['-s', '5G', disk]);
    await execa('sgdisk', ['-n', '1:2048:+64M', '-t', '1:8300', disk]);
    expect(await metadataLeft(disk)).not.toEqual([]);
    net = await createVmNetwork(`e2ec${release.replace('.', '')}`);
    // Full-disk erase (erase_devices, priority 10) of a VM disk under TCG would
    // take the whole budget; operators turn it off the same way.
    ironic = await startIronicRelease(release, {
      netns: net.ns.name, hostIp: net.hostIp, port: 6385, extraConf:
        '[deploy]\nerase_devices_priority = 0\n' +
        (viaInspector
          ? `[inspector]\nendpoint_override = http://${net.hostIp}:${INSPECTOR_PORT}\nstatus_check_period = 5\n`
          : '[inspector]\nadd_ports = all\n'),
      heartbeatTimeoutSec: 30,
      // After inspection the agent goes on heartbeating, and cleaning uses it without a reboot.
      fastTrack: true,
    });
    if (viaInspector) {
      inspector = await startInspector({
        ironicUrl: ironic.url, hostIp: net.hostIp, port: INSPECTOR_PORT, netns: net.ns.name,
        extraConf: '[processing]\npower_off = false\nadd_ports = all\n',
      });
    }
    uuid = await ironic.enroll(MAC, { provide: false, name: 'e2e-insp' });
    await ironic.baremetal(['node', 'set', uuid, '--inspect-interface', viaInspector ? 'inspector' : 'agent']);
    const enrolled = (await api('GET', `/v1/ports?node_uuid=${uuid}&fields=address`)).ports.map((p: { address: string }) => p.address);
    expect(enrolled, 'before inspection only the booting NIC has a port').toEqual([MAC]);
    if (!viaInspector) await api('POST', '/v1/inspection_rules', {
      description: 'metal-agent e2e: mark nodes with 512 MiB installed (SMBIOS)',
      priority: 50,
      conditions: [{ op: 'matches', args: { value: '{inventory[memory][physical_mb]}', regex: `^${MEMORY_MIB}$` } }],
      actions: [{ op: 'set-attribute', args: { path: '/extra/inspected_by_rule', value: 'physical_mb={inventory[memory][physical_mb]} system={inventory[system_vendor][product_name]}' } }],
    });
    await ironic.baremetal(['node', 'inspect', uuid]);
    await ironic.waitForState(uuid, ['inspect wait', 'inspect failed'], 60);
    // The kernel command line Ironic rendered for the inspection ramdisk, as the VM boots it.
    const [config] = filesWith(join(ironic.stateDir, 'tftp'), 'ipa-inspection-callback-url=');
    expect(config, 'Ironic wrote no PXE config with ipa-inspection-callback-url').toBeDefined();
    const append = readFileSync(config!, 'utf8').split('\n').find((l) => l.includes('ipa-inspection-callback-url='))!;
    // initrd= is pxelinux's (qemu loads the initrd itself).
    const rendered = append.trim().replace(/^append\s+/, '').split(/\s+/).filter((a) => !a.startsWith('initrd='));
    const kernelArgs = [...rendered, `ipa-inspection-collectors=${COLLECTORS}`, 'ipa-lldp-timeout=2'];
    expect(kernelArgs).toContain(viaInspector ? `ipa-inspection-callback-url=${inspector!.url}/v1/continue` : `ipa-inspection-callback-url=${ironic.url}/v1/continue_inspection`);
    expect(kernelArgs).toContain(`ipa-api-url=${ironic.url}`);
    vm = await startVm({
      network: net,
      mac: MAC,
      memoryMiB: MEMORY_MIB,
      disks: [{ file: disk, bus: 'virtio', serial: 'E2E-CLEAN' }],
      kernelArgs: [...kernelArgs, `BOOTIF=01-${MAC.replace(/:/g, '-')}`],
      // A NIC Ironic has no port for (user networking, isolated from the host: restrict=on).
      extraQemuArgs: ['-netdev', 'user,id=n1,restrict=on', '-device', `virtio-net-pci,netdev=n1,mac=${SECOND_MAC}`],
    });
  }, LIMIT_MS);

  afterAll(async () => {
    await vm?.stop();
    await inspector?.stop();
    await ironic?.stop();
    await net?.destroy();
    rmSync(dir, { recursive: true, force: true });
  }, 120_000);

  it.sequential(`inspect: the VM agent posts its data -> manageable, memory_mb from SMBIOS, ports (one created), cpu_arch, local_gb, root_disk${viaInspector ? '' : ', the rule applied'}`, async () => {
    const node = await ironic.waitForState(uuid, ['manageable', 'inspect failed'], LIMIT_MS / 1000);
    await expectNoLastError(expect, node, () => vm.serialText());
    expect(node.provision_state).toBe('manageable');
    const inv = await api('GET', `/v1/nodes/${uuid}/inventory`);
    // Installed RAM: dmidecode's type 17 records in the VM (qemu -m), not MemTotal.
    expect(inv.inventory.memory.physical_mb).toBe(MEMORY_MIB);
    expect(inv.inventory.memory.total).toBeLessThan(MEMORY_MIB * 2 ** 20);
    expect(Number(node.properties.memory_mb)).toBe(MEMORY_MIB);
    expect(node.properties.cpu_arch).toBe('x86_64');
    // The 5 GiB disk is the root disk; Ironic keeps 1 GiB back for partitioning.
    expect(inv.plugin_data.root_disk.name).toBe('/dev/vda');
    expect(inv.plugin_data.root_disk.serial).toBe('E2E-CLEAN');
    expect(Number(node.properties.local_gb)).toBe(4);
    expect(inv.inventory.system_vendor.product_name).toMatch(/QEMU|Standard PC/);
    expect(inv.plugin_data.error ?? null).toBeNull();
    // The enrolled port of the booting NIC stays PXE-enabled; the second NIC's port is created by inspection.
    const ports = ((await api('GET', `/v1/ports?node_uuid=${uuid}&fields=address,pxe_enabled`)).ports as Array<{ address: string; pxe_enabled: boolean }>)
      .map((p) => ({ address: p.address, pxe_enabled: p.pxe_enabled }))
      .sort((a, b) => a.address.localeCompare(b.address));
    expect(ports).toEqual([
      { address: MAC, pxe_enabled: true },
      { address: SECOND_MAC, pxe_enabled: false },
    ]);
    const serial = await vm.serialText();
    if (viaInspector) {
      // Inspector's own record: finished, no error (its hooks filled the node through Ironic's API).
      const status = await inspector!.get(`/v1/introspection/${uuid}`);
      expect([status.finished, status.error]).toEqual([true, null]);
      expect(serial).toMatch(new RegExp(`"node":"${uuid}".*"msg":"inspection data sent"`));
    } else {
      expect(node.extra.inspected_by_rule).toBe(`physical_mb=${MEMORY_MIB} system=${inv.inventory.system_vendor.product_name}`);
      expect(serial).toMatch(/"lookupShaped":true.*"msg":"inspection data sent"/);
    }
    console.log(
      `Ironic ${release} (VM): inspected ${uuid}: memory_mb=${node.properties.memory_mb} (physical_mb ${inv.inventory.memory.physical_mb}, MemTotal ${inv.inventory.memory.total} B) ` +
        `cpu_arch=${node.properties.cpu_arch} local_gb=${node.properties.local_gb} root_disk=${inv.plugin_data.root_disk.name} (${inv.plugin_data.root_disk.serial}) ` +
        `ports=${JSON.stringify(ports)} ${viaInspector ? 'through ironic-inspector 11.1' : `rule: extra.inspected_by_rule="${node.extra.inspected_by_rule}"`}`,
    );
    await ironic.baremetal(['node', 'provide', uuid]);
  }, LIMIT_MS);

  it.sequential('goes clean wait -> available, and the VM disk has no partition table left', async () => {
    const node = await ironic.waitForState(uuid, ['available', 'clean failed'], LIMIT_MS / 1000);
    await expectNoLastError(expect, node, () => vm.serialText());
    expect(node.provision_state).toBe('available');
    expect(await metadataLeft(disk)).toEqual([]);
    const serial = await vm.serialText();
    expect(serial).toMatch(/erasing metadata on \/dev\/vda/);
    // Fast track: the VM that was inspected, one kernel boot, one agent start; no lookup where the
    // inspection answer held the token (agent interface), one where it did not (inspector's {uuid}).
    expect(vm.alive()).toBe(true);
    expect(serial.match(/Linux version /g)).toHaveLength(1);
    expect(serial.match(/"msg":"API listening"/g)).toHaveLength(1);
    expect(serial.match(/lookup succeeded/g) ?? []).toHaveLength(viaInspector ? 1 : 0);
    console.log(`Ironic ${release} (VM): ${uuid} cleaned by the agent that inspected it: one kernel boot, one agent start, qemu up ${(vm.elapsedMs() / 1000).toFixed(0)} s`);
    // The agent called back over https, with its own certificate (29.0 and 39.0 refuse anything else).
    expect(serial).toMatch(/"callbackUrl":"https:\/\/[^"]+","tls":true/);
  }, LIMIT_MS);
});
