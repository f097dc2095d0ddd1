import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, it } from 'vitest';
import { sha256File } from '../helpers/images.ts';
import { startIronic, type Ironic } from '../helpers/ironic.ts';
import { REPO_ROOT } from '../helpers/netns.ts';
import { createPxeNetwork, PXE_HOST_IP, PXE_HTTP_PORT, startIpmiNode, type IpmiNode, type PxeNetwork } from './ipmi-pxe-lab.ts';
import { DEFAULT_INITRD, DEFAULT_KERNEL } from './qemu.ts';
import { namespaceFileServer } from './qemu-network.ts';

// Issue 16, "Show it" 1: Ironic boots the node. Ironic 21.4's `ipmi` hardware
// type powers qemu nodes through a real IPMI BMC (ipmi_sim, lab/bmc), and the
// firmware network-boots what Ironic's `ipxe` boot interface rendered: dnsmasq
// hands qemu's iPXE ROM the URL of Ironic's boot.ipxe (lab/pxe), which chains
// the node's config, which loads our kernel and ramdisk with the kernel
// parameters Ironic chose. No fast track: Ironic powers the node off at the end
// of cleaning, on again for the deploy (the firmware boots the agent again),
// and after the image is written reboots it (agent soft power off, then IPMI
// power on) into the deployed OS, which the firmware finds on the disk:
// SeaBIOS through iPXE's `sanboot` of the netboot-fallback config Ironic keeps
// ([pxe]enable_netboot_fallback, since ipmi_sim cannot set a boot device), OVMF
// by its next boot option after that config exits. Both firmwares run at once,
// one node each, on one Ironic and one network. The harness starts only the
// BMCs, dnsmasq and the HTTP servers; it never starts or stops a VM.
//
// The image is build/guest-root.img, a partition image: build/guest.raw has no
// boot loader (it is made for kexec), so no firmware could boot it; with a
// partition image the agent installs the image's own GRUB (MBR under SeaBIOS,
// ESP + NVRAM entry under OVMF).

const LIMIT_MS = 2_400_000; // TCG on 2 shared cores, two VMs at once: a hang bound, not a speed check
const ROOT_IMG = join(REPO_ROOT, 'build', 'guest-root.img');
const GUEST_LINE = /metal-guest: hostname=(\S*) cmdline=([^\r\n]*)/;
const POWER_ON = /=== bmc: power on (\d+)/g;

// The kernel parameters our ramdisk wants on top of what Ironic adds itself
// (ipa-api-url, BOOTIF=${mac}, ipa-global-request-id...): the agent's log on
// the serial console, which this test reads.
const EXTRA_CONF = `
[pxe]
kernel_append_params = console=ttyS0,115200 printk.time=1
enable_netboot_fallback = true
[deploy]
erase_devices_priority = 0
[ipmi]
min_command_interval = 1
`;

const NODES = [
  { firmware: 'uefi', mac: '52:54:00:ab:16:01', lanPort: 16401, linkPort: 16411 },
  { firmware: 'bios', mac: '52:54:00:ab:16:02', lanPort: 16402, linkPort: 16412 },
] as const;

/** The console text from the last "=== bmc: power on N" line on, and that N. */
function lastBoot(text: string): { n: number; text: string } {
  const all = [...text.matchAll(POWER_ON)];
  const last = all[all.length - 1];
  return last ? { n: Number(last[1]), text: text.slice(last.index) } : { n: 0, text: '' };
}

describe('Ironic 21.4 boots qemu nodes: ipmi (ipmi_sim) + ipxe (dnsmasq), no fast track, UEFI and BIOS', () => {
  let net: PxeNetwork;
  let ironic: Ironic;
  const nodes: IpmiNode[] = [];
  let imageUrl = '';

  beforeAll(async () => {
    net = await createPxeNetwork('rb');
    ironic = await startIronic({
      netns: net.ns.name,
      hostIp: PXE_HOST_IP,
      port: 6385,
      httpUrl: `http://${PXE_HOST_IP}:${PXE_HTTP_PORT}`,
      heartbeatTimeoutSec: 30,
      extraConf: EXTRA_CONF,
    });
    await net.startPxe(ironic.stateDir);
    for (const n of NODES) nodes.push(await startIpmiNode(net, { name: `mab-${n.firmware}`, ...n }));
    imageUrl = await namespaceFileServer(net.ns, PXE_HOST_IP, 8081)(ROOT_IMG);
  }, 300_000);

  afterAll(async () => {
    for (const n of nodes) await n.stop();
    await ironic?.stop();
    await net?.destroy();
  }, 120_000);

  describe.concurrent('each firmware', () => {
    for (const [i, spec] of NODES.entries()) {
      it(`${spec.firmware === 'uefi' ? 'OVMF' : 'SeaBIOS'}: enroll, clean (power off after), deploy, BMC reboot into the deployed OS`, async ({ expect }) => {
        const node = nodes[i]!;
        const hostname = `real-${spec.firmware}-${process.pid}`;
        const uuid = (
          await ironic.baremetal([
            'node', 'create', '--driver', 'ipmi', '--name', node.name,
            '--power-interface', 'ipmitool', '--management-interface', 'noop',
            '--boot-interface', 'ipxe', '--deploy-interface', 'direct',
            ...Object.entries(node.driverInfo).flatMap(([k, v]) => ['--driver-info', `${k}=${v}`]),
            '--driver-info', `deploy_kernel=file://${DEFAULT_KERNEL}`,
            '--driver-info', `deploy_ramdisk=file://${DEFAULT_INITRD}`,
            '--property', `capabilities=boot_mode:${spec.firmware}`,
            '-f', 'value', '-c', 'uuid',
          ])
        ).trim();
        await ironic.baremetal(['port', 'create', node.mac, '--node', uuid]);
        // manage validates the power interface: Ironic asks the BMC for the power state.
        await ironic.baremetal(['node', 'manage', uuid, '--wait', '300']);
        expect((await ironic.node(uuid)).power_state).toBe('power off');
        expect(node.powerOns()).toBe(0);

        // provide: automated cleaning. Ironic powers the node on through IPMI, the
        // firmware iPXE-boots the agent, the agent erases the disk's metadata, and
        // Ironic powers the node off at the end (no fast track).
        const t0 = Date.now();
        const took = () => `${((Date.now() - t0) / 1000).toFixed(0)} s`;
        await ironic.baremetal(['node', 'provide', uuid]);
        const cleaned = await ironic.waitForState(uuid, ['available', 'clean failed'], LIMIT_MS / 2000, { everyMs: 2000 });
        const cleanConsole = await node.console();
        expect(cleaned.last_error ?? null, cleanConsole.slice(-3000)).toBeNull();
        expect(cleaned.provision_state).toBe('available');
        console.log(`${spec.firmware}: available after ${took()} (cleaning)`);
        expect(cleaned.power_state).toBe('power off');
        expect(await node.bmcPowerStatus()).toBe('Chassis Power is off');
        const afterClean = node.powerOns();
        expect(afterClean).toBeGreaterThanOrEqual(1);
        // What booted was Ironic's iPXE chain, and the agent in it did the cleaning.
        expect(cleanConsole).toMatch(new RegExp(`http://${PXE_HOST_IP}:${PXE_HTTP_PORT}/boot\\.ipxe`));
        expect(cleanConsole).toMatch(new RegExp(`${uuid}/deploy_kernel`));
        // The kernel parameters are Ironic's rendering: its own ipa-api-url beside ours.
        const cmdline = /Command line: ([^\r\n]*)/.exec(cleanConsole)?.[1] ?? '';
        expect(cmdline).toContain(`ipa-api-url=http://${PXE_HOST_IP}:6385`);
        expect(cmdline).toContain('console=ttyS0,115200');
        expect(cmdline).toContain(`BOOTIF=${node.mac}`);
        expect(cleanConsole).toMatch(/lookup succeeded/);
        expect(cleanConsole).toMatch(/erasing metadata on \/dev\/vda/);
        expect(ironic.log()).toMatch(/erase_devices_metadata/);

        // deploy: Ironic powers the node on again, the firmware boots the agent again,
        // the agent writes the image and installs its boot loader, and Ironic reboots
        // the node into it through the BMC.
        await ironic.baremetal([
          'node', 'set', uuid,
          '--instance-info', `image_source=${imageUrl}`,
          '--instance-info', 'image_os_hash_algo=sha256',
          '--instance-info', `image_os_hash_value=${await sha256File(ROOT_IMG)}`,
          '--instance-info', 'image_disk_format=raw',
          '--instance-info', 'image_type=partition',
          '--instance-info', 'root_gb=2',
        ]);
        await ironic.baremetal(['node', 'deploy', uuid, '--config-drive', JSON.stringify({ meta_data: { hostname } })]);
        const deployed = await ironic.waitForState(uuid, ['active', 'deploy failed'], LIMIT_MS / 2000, { everyMs: 2000 });
        expect(deployed.last_error ?? null, (await node.console()).slice(-3000)).toBeNull();
        expect(deployed.provision_state).toBe('active');
        console.log(`${spec.firmware}: active after ${took()}`);
        expect(ironic.log()).toMatch(/install_bootloader/);

        // The deployed OS, from its own disk, after the BMC's last power-on.
        const m = await node.waitForConsole(GUEST_LINE, LIMIT_MS / 4).catch(async (e: Error) => {
          throw new Error(`${e.message}\nconsole:\n${(await node.console()).slice(-3000)}`);
        });
        console.log(`${spec.firmware}: deployed OS on the console after ${took()}`);
        expect(m[1]).toBe(hostname);
        expect(m[2]!.trim().split(/\s+/)[0]).toMatch(/^BOOT_IMAGE=\/boot\/vmlinuz-/); // GRUB from the disk booted it
        const last = lastBoot(await node.console());
        // Two more power-ons than after cleaning: one for the deploy, one after it.
        expect(last.n).toBe(node.powerOns());
        expect(last.n).toBeGreaterThanOrEqual(afterClean + 2);
        expect(last.text).toMatch(GUEST_LINE);
        expect(last.text).not.toMatch(/metal-agent-init/); // the agent did not run in this boot
        expect(last.text).toMatch(/iPXE/); // the firmware went through the network first, as always
        expect((await ironic.node(uuid)).power_state).toBe('power on');
        expect(await node.bmcPowerStatus()).toBe('Chassis Power is on');
      }, LIMIT_MS);
    }
  });
});
