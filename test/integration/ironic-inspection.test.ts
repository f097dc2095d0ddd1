import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startAgent, type AgentProcess } from '../helpers/agent-process.ts';
import { startIronicRelease, type IronicRelease, type ReleaseIronic } from '../helpers/ironic-release.ts';
import { createLoopDisk, giveDiskAPartition, metadataLeft, type LoopDisk } from '../helpers/loop-disk.ts';
import { filesWith } from '../helpers/files-with.ts';

// In-band inspection through Ironic's own `agent` inspect interface (29.0 and
// 39.0; 21.4 has none), against real conductors, with our agent as the ramdisk
// (a process on this machine, as in the other integration tests):
//
//   - a node enrolled with inspect_interface=agent, pxe boot, fake power, and
//     two ports: this machine's NIC (pxe_enabled false) and a stale one (pxe_enabled true);
//   - an inspection rule matching the agent's inventory (boot.pxe_interface);
//   - `baremetal node inspect`: Ironic writes the node's PXE config with
//     ipa-inspection-callback-url (and ipa-api-url: fast track); the agent
//     starts with that kernel command line, POSTs its data to
//     /v1/continue_inspection, takes the lookup-shaped answer (node, config,
//     token) and heartbeats without a lookup;
//   - the node ends manageable: pxe_enabled moved to the NIC the agent booted
//     from, cpu_arch, memory_mb, local_gb (and cpus on 39.0) from the agent's
//     data, root_disk (the agent's pick) in the stored inspection data, the rule applied;
//   - `baremetal node provide` cleans it through the same agent process (fast
//     track: no reboot, no new lookup) to available.
//   - 39.0 only, [auto_discovery]enabled: that node deleted, an agent whose MAC
//     Ironic does not know POSTs its data, and Ironic enrolls a new node with a
//     port created for that MAC (PXE-enabled: the booting NIC).
//
// The agent reports only NICs with a /sys device (IPA's rule): veths have
// none and this kernel has no VLANs, so the booting NIC is this machine's own.

// dmi-decode is left out: this machine has no SMBIOS tables (dmidecode exits 1), and a
// failed collector fails the inspection (Ironic's ramdisk-error hook), as with IPA.
const COLLECTORS = 'default,logs,pci-devices,lldp,numa-topology';
/** IPA never picks a root disk under 4 GiB: the loop disk is a sparse 5 GiB. */
const DISK_MIB = 5 * 1024;

/** This machine's first NIC with a device: what the agent reports and boots from. */
function hostNic(): { name: string; mac: string } {
  for (const name of readdirSync('/sys/class/net').sort()) {
    if (existsSync(`/sys/class/net/${name}/device`)) return { name, mac: readFileSync(`/sys/class/net/${name}/address`, 'utf8').trim() };
  }
  throw new Error('no NIC with a /sys device on this machine');
}

interface Lab {
  ironic: ReleaseIronic;
  disk: LoopDisk;
  dir: string;
  agents: AgentProcess[];
}

async function api(lab: Lab, method: string, path: string, body?: unknown): Promise<any> {
  const res = await fetch(`${lab.ironic.url}${path}`, {
    method,
    headers: { 'X-OpenStack-Ironic-API-Version': '1.96', 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${text}`);
  return text ? JSON.parse(text) : undefined;
}

async function startLab(release: IronicRelease, extraConf = ''): Promise<Lab> {
  const lab: Partial<Lab> = { agents: [], dir: mkdtempSync(join(tmpdir(), `metal-agent-insp-${release}-`)) };
  try {
    lab.disk = await createLoopDisk(DISK_MIB, `insp${release}`);
    await giveDiskAPartition(lab.disk.device); // for cleaning to erase
    lab.ironic = await startIronicRelease(release, {
      fastTrack: true,
      heartbeatTimeoutSec: 30,
      // Cleaning erases metadata only: a full erase of 5 GiB would only cost time.
      extraConf: `[deploy]\nerase_devices_priority = 0\n${extraConf}`,
    });
    return lab as Lab;
  } catch (err) {
    await stopLab(lab);
    throw err;
  }
}

async function stopLab(lab: Partial<Lab>): Promise<void> {
  for (const a of lab.agents ?? []) await a.stop();
  await lab.ironic?.stop();
  await lab.disk?.destroy();
  if (lab.dir) rmSync(lab.dir, { recursive: true, force: true });
}

/** The agent as an inspection ramdisk, given a kernel command line (what Ironic wrote into the node's PXE config). */
async function startInspectionAgent(lab: Lab, bootMac: string, cmdline: string): Promise<AgentProcess> {
  const file = join(lab.dir, `cmdline-${lab.agents.length}`);
  writeFileSync(file, cmdline);
  const agent = await startAgent({ mac: bootMac, allowedDevices: [lab.disk.device], cmdlineFile: file, standalone: false });
  lab.agents.push(agent);
  return agent;
}

function inspectionSuite(release: IronicRelease, stale: string, discovery: boolean): void {
  const nicMac = hostNic().mac;
  const bootif = `01-${nicMac.replace(/:/g, '-')}`;
  let lab: Lab;
  let uuid: string;
  let agent: AgentProcess;

  describe(`Ironic ${release}: in-band inspection through the agent inspect interface`, () => {
    beforeAll(async () => {
      lab = await startLab(
        release,
        discovery ? '[auto_discovery]\nenabled = true\ndriver = manual-management\n[DEFAULT]\ndefault_inspect_interface = agent\n' : '',
      );
      // Ironic knows a stale PXE port, and this machine's NIC as not PXE-enabled.
      uuid = await lab.ironic.enroll(stale, { provide: false, name: `insp-${release}` });
      await lab.ironic.baremetal(['node', 'set', uuid, '--inspect-interface', 'agent']);
      await lab.ironic.baremetal(['port', 'create', nicMac, '--node', uuid, '--pxe-enabled', 'False']);
      await api(lab, 'POST', '/v1/inspection_rules', {
        description: `metal-agent ${release}: mark nodes whose agent booted from this NIC`,
        priority: 50,
        conditions: [{ op: 'matches', args: { value: '{inventory[boot][pxe_interface]}', regex: bootif } }],
        actions: [{ op: 'set-attribute', args: { path: '/extra/inspected_by_rule', value: 'cpus={inventory[cpu][count]} boot={inventory[boot][pxe_interface]}' } }],
      });
    }, 600_000);

    afterAll(async () => {
      await stopLab(lab ?? {});
    });

    it(`Ironic ${release}: inspect -> the agent posts its data -> manageable, with ports, properties, root disk and the rule applied`, async () => {
      await lab.ironic.baremetal(['node', 'inspect', uuid]);
      await lab.ironic.waitForState(uuid, ['inspect wait', 'inspect failed'], 60);
      // What Ironic rendered for the inspection ramdisk (pxe boot interface, fast track).
      const [config] = filesWith(join(lab.ironic.stateDir, 'tftp'), 'ipa-inspection-callback-url=');
      expect(config, 'Ironic wrote no PXE config with ipa-inspection-callback-url').toBeDefined();
      const append = readFileSync(config!, 'utf8').split('\n').find((l) => l.includes('ipa-inspection-callback-url='))!;
      const cmdline = `${append.trim().replace(/^append\s+/, '')} ipa-inspection-collectors=${COLLECTORS} ipa-lldp-timeout=2`;
      expect(cmdline).toContain(`ipa-inspection-callback-url=${lab.ironic.url}/v1/continue_inspection`);
      expect(cmdline).toContain(`ipa-api-url=${lab.ironic.url}`);
      agent = await startInspectionAgent(lab, nicMac, cmdline);

      const node = await lab.ironic.waitForState(uuid, ['manageable', 'inspect failed'], 180);
      expect(node.last_error ?? null, agent.output().slice(-3000)).toBeNull();
      expect(node.provision_state).toBe('manageable');
      const out = agent.output();
      expect(out).toMatch(/"lookupShaped":true.*"msg":"inspection data sent"/);
      expect(out).toMatch(/"msg":"inspection answer names the node and holds its token: heartbeating without a lookup"/);
      expect(out).not.toMatch(/"msg":"lookup succeeded"/);

      // Properties from the agent's inventory, as the hooks set them.
      const inv = await api(lab, 'GET', `/v1/nodes/${uuid}/inventory`);
      const cpuCount = inv.inventory.cpu.count as number;
      expect(node.properties.cpu_arch).toBe(inv.inventory.cpu.architecture);
      // Installed RAM (SMBIOS). This machine has no SMBIOS tables: physical_mb is null here (IPA: 0), and so is memory_mb.
      expect(node.properties.memory_mb ?? null).toBe(inv.inventory.memory.physical_mb);
      expect(inv.inventory.memory.total).toBeGreaterThan(0);
      // The agent's root disk pick (the smallest disk of 4 GiB or more: the 5 GiB loop disk), less the 1 GiB Ironic keeps for partitioning.
      expect(inv.plugin_data.root_disk.name).toBe(lab.disk.device);
      expect(Number(node.properties.local_gb)).toBe(4); // 29.0 gives it back as a string ('4')
      if (release === '39.0') expect(node.properties.cpus).toBe(cpuCount);
      expect(node.properties.capabilities).toMatch(/boot_mode:(bios|uefi)/);
      // The collectors' data went through (the logs are stored apart, not in plugin_data).
      expect(inv.plugin_data.pci_devices.length).toBeGreaterThan(0);
      expect(inv.plugin_data.numa_topology.ram[0].size_kb).toBeGreaterThan(0);
      expect(Object.keys(inv.plugin_data.lldp_raw)).toContain(hostNic().name);
      expect(inv.plugin_data.error ?? null).toBeNull();

      // pxe_enabled follows the NIC the agent booted from.
      const ports = (await api(lab, 'GET', `/v1/ports?node_uuid=${uuid}&fields=address,pxe_enabled`)).ports as Array<{ address: string; pxe_enabled: boolean }>;
      const byMac = Object.fromEntries(ports.map((p) => [p.address, p.pxe_enabled]));
      expect(byMac).toEqual({ [nicMac]: true, [stale]: false });
      // The rule matched the inventory and set the node's extra.
      expect(node.extra.inspected_by_rule).toBe(`cpus=${cpuCount} boot=${bootif}`);
      console.log(
        `Ironic ${release}: inspected ${uuid}: cpu_arch=${node.properties.cpu_arch} memory_mb=${node.properties.memory_mb} ` +
          `local_gb=${node.properties.local_gb} cpus=${node.properties.cpus ?? '-'} root_disk=${inv.plugin_data.root_disk.name} ` +
          `ports(pxe_enabled)=${JSON.stringify(byMac)} rule: extra.inspected_by_rule="${node.extra.inspected_by_rule}"`,
      );
    }, 300_000);

    it(`Ironic ${release}: provide cleans the inspected node through the same agent process (fast track) to available`, async () => {
      expect(await metadataLeft(lab.disk.device)).not.toEqual([]);
      await lab.ironic.baremetal(['node', 'provide', uuid]);
      const node = await lab.ironic.waitForState(uuid, ['available', 'clean failed'], 180);
      expect(node.last_error ?? null, agent.output().slice(-3000)).toBeNull();
      expect(node.provision_state).toBe('available');
      // One agent process, started once, never looked the node up: the token from the inspection answer did it all.
      expect(lab.agents).toHaveLength(1);
      const out = agent.output();
      expect(out.match(/"msg":"API listening"/g)).toHaveLength(1);
      expect(out).not.toMatch(/"msg":"lookup succeeded"/);
      // Ironic ran the metadata erase through this agent: the partition table and filesystem are gone.
      expect(lab.ironic.log()).toMatch(/erase_devices_metadata/);
      expect(await metadataLeft(lab.disk.device)).toEqual([]);
      console.log(`Ironic ${release}: ${uuid} cleaned by the agent that inspected it (pid ${agent.pid}, no lookup): available`);
    }, 240_000);

    if (discovery) {
      it(`Ironic ${release}: auto-discovery: an agent whose MAC Ironic does not know posts its data, and Ironic enrolls it`, async () => {
        await agent.stop();
        lab.agents.splice(0);
        // Ironic forgets the machine: its NIC's MAC is no port of any node now.
        await lab.ironic.baremetal(['node', 'delete', uuid]);
        // Discovery boots carry the callback URL only (no ipa-api-url): inspect, then wait.
        const stranger = await startInspectionAgent(lab, nicMac, `ipa-inspection-callback-url=${lab.ironic.url}/v1/continue_inspection ipa-inspection-collectors=default,logs`);
        await stranger.waitForLog(/"msg":"inspection data sent"/, 120);
        let port: { node_uuid: string; pxe_enabled: boolean } | undefined;
        for (let i = 0; i < 120 && !port; i++) {
          port = (await api(lab, 'GET', `/v1/ports?address=${nicMac}&fields=address,node_uuid,pxe_enabled`)).ports[0];
          if (!port) await new Promise((r) => setTimeout(r, 500));
        }
        expect(port, stranger.output().slice(-3000)).toBeDefined();
        expect(port!.node_uuid).not.toBe(uuid);
        expect(port!.pxe_enabled).toBe(true);
        let enrolled = await lab.ironic.node(port!.node_uuid);
        for (let i = 0; i < 60 && !enrolled.properties?.cpus; i++) {
          await new Promise((r) => setTimeout(r, 500));
          enrolled = await lab.ironic.node(port!.node_uuid);
        }
        expect(enrolled.provision_state).toBe('enroll');
        expect(enrolled.driver).toBe('manual-management');
        expect(enrolled.properties.cpu_arch).toBeTruthy();
        expect(enrolled.properties.cpus ?? null).toBeGreaterThan(0);
        expect(stranger.output()).toMatch(/"msg":"no ipa-api-url: no lookup and no heartbeats after inspection/);
        console.log(
          `Ironic ${release}: discovered ${port!.node_uuid} (driver ${enrolled.driver}, state ${enrolled.provision_state}, ` +
            `cpu_arch ${enrolled.properties.cpu_arch}, cpus ${enrolled.properties.cpus}) with a PXE port for ${nicMac}`,
        );
      }, 180_000);
    }
  });
}

inspectionSuite('29.0', '52:54:00:a0:17:29', false);
inspectionSuite('39.0', '52:54:00:a0:17:39', true);
