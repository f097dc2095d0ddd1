import { copyFileSync, mkdtempSync, rmSync, statSync, truncateSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSlaacNetwork, type SlaacNetwork } from '../../scripts/demo/lab.ts';
import { startIronic, type Ironic } from '../helpers/ironic.ts';
import { REPO_ROOT } from '../helpers/netns.ts';
import { DEFAULT_INITRD, DEFAULT_KERNEL, OVMF_VARS_TEMPLATE, startVm, type Vm, type VmOptions } from './qemu.ts';

// Issue 16, "Show it" 3: the deploy ISO (ramdisk-build/iso.sh, what `make iso`
// runs) boots with nothing but its own kernel command line (ipa-api-url=mdns) to
// an agent that a real Ironic 21.4 records heartbeats from. The firmware boots
// the ISO (no -kernel/-initrd): as a CD-ROM under SeaBIOS (isolinux) and under
// OVMF (El Torito EFI image = esp.sh's GRUB), and written to a USB stick under
// OVMF (the ISO's MBR/GPT ESP entry). One SLAAC-only network (no DHCP, radvd)
// with Ironic publishing itself over mDNS, one node per boot, each enrolled and
// in `clean wait`, the state in which Ironic accepts a lookup.

const LIMIT_MS = 600_000; // per boot, TCG on 2 shared cores: a bound, not a speed check
const DISK_MIB = 5120; // >= 4 GiB: a root disk the agent takes without waiting for another

// Concurrent: the three boots (own MACs, disks and NVRAM files, one Ironic) run side by side; one
// TCG VM uses one core, and one after another they took 269 s of make test.
describe.concurrent('the deploy ISO boots to an agent heartbeating to Ironic 21.4 (mDNS, SLAAC)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'mai-iso-'));
  const iso = join(dir, 'metal-agent.iso');
  let net: SlaacNetwork;
  let ironic: Ironic;
  const vms = new Set<Vm>();

  beforeAll(async () => {
    const esp = join(dir, 'esp.img');
    await execa(join(REPO_ROOT, 'ramdisk-build/esp.sh'), [esp]);
    const built = await execa(join(REPO_ROOT, 'ramdisk-build/iso.sh'), [DEFAULT_KERNEL, DEFAULT_INITRD, esp, iso]);
    console.log(built.stdout);
    console.log(`deploy ISO size: ${statSync(iso).size} bytes (${(statSync(iso).size / 1e6).toFixed(1)} MB)`);

    net = await createSlaacNetwork('iso');
    ironic = await startIronic({
      netns: net.ns.name,
      hostIp: net.hostIp,
      port: 6385,
      mdns: true,
      heartbeatTimeoutSec: 30,
      extraConf: '[deploy]\nerase_devices_priority = 0\n',
    });
  }, 300_000);

  afterAll(async () => {
    for (const vm of vms) await vm.stop();
    await ironic?.stop();
    await net?.destroy();
    rmSync(dir, { recursive: true, force: true });
  }, 120_000);

  /**
   * Enrolls a node for `mac` (automated cleaning: `clean wait`), boots the VM
   * from `boot` and polls `baremetal node show` until Ironic has recorded a
   * heartbeat and the agent's URL. Returns the node's driver_internal_info and
   * the serial console.
   */
  async function bootToHeartbeat(mac: string, boot: VmOptions): Promise<{ info: Record<string, any>; serial: string }> {
    const uuid = await ironic.enroll(mac, { name: `iso-${mac.slice(-2)}` });
    // Maintenance: Ironic records the heartbeat and the agent's URL but takes no action, so the node
    // stays in clean wait; otherwise cleaning can end (and wipe agent_url) between two polls.
    await ironic.baremetal(['node', 'maintenance', 'set', uuid]);
    const disks = [{ sizeMiB: DISK_MIB, serial: `ISO-${mac.slice(-2)}` }];
    const vm = await startVm({ network: net, mac, memoryMiB: 512, bootFromDisk: true, disks, ...boot });
    vms.add(vm);
    try {
      const deadline = Date.now() + LIMIT_MS;
      for (;;) {
        const fields = ['provision_state', 'driver_internal_info', 'last_error'];
        const node = await ironic.baremetalJson(['node', 'show', uuid, '--fields', ...fields]);
        const info = (node.driver_internal_info ?? {}) as Record<string, any>;
        if (info.agent_last_heartbeat && info.agent_url) {
          const s = (vm.elapsedMs() / 1000).toFixed(0);
          console.log(`${mac}: Ironic recorded a heartbeat ${s} s after qemu started (${node.provision_state})`);
          return { info, serial: await vm.serialText() };
        }
        if (!vm.alive() || Date.now() > deadline || node.provision_state === 'clean failed') {
          const serial = await vm.serialText();
          const why = `state ${node.provision_state}, last_error ${node.last_error}, VM alive ${vm.alive()}`;
          throw new Error(`no heartbeat recorded (${why}):\n${serial.slice(-4000)}`);
        }
        await new Promise((r) => setTimeout(r, 3000));
      }
    } finally {
      await vm.stop();
      vms.delete(vm);
    }
  }

  function expectAgentFoundIronic(info: Record<string, any>, serial: string): void {
    // Only the ISO's own command line reached the kernel (isolinux adds initrd=, GRUB BOOT_IMAGE=).
    const isoLine = 'ipa-api-url=mdns boot_method=vmedia console=tty0 console=ttyS0,115200n8';
    expect(serial).toMatch(new RegExp(`Command line: (BOOT_IMAGE=/vmlinuz )?(initrd=/initrd )?${isoLine}\\s`));
    expect(serial).toMatch(/"msg":"conductor discovered over mDNS"/);
    // The agent reported the address SLAAC gave it on the provisioning network.
    expect(info.agent_url).toMatch(/^https?:\/\/\[fd00:de:1:[0-9a-f:]+\]:9999$/);
    expect(typeof info.agent_last_heartbeat).toBe('string');
  }

  const cdrom = ['-drive', `file=${iso},media=cdrom,if=none,id=cd0,readonly=on`, '-device', 'ide-cd,drive=cd0,bus=ide.1,bootindex=0'];

  it('as a CD-ROM under SeaBIOS (isolinux)', async () => {
    const { info, serial } = await bootToHeartbeat('52:54:00:15:0c:01', { extraQemuArgs: cdrom });
    expect(serial).toMatch(/ISOLINUX \d/);
    expectAgentFoundIronic(info, serial);
  }, LIMIT_MS + 60_000);

  it('as a CD-ROM under OVMF (El Torito EFI image, GRUB)', async () => {
    const vars = join(dir, 'cd-vars.fd');
    copyFileSync(OVMF_VARS_TEMPLATE, vars);
    const { info, serial } = await bootToHeartbeat('52:54:00:15:0c:02', { uefiVars: vars, extraQemuArgs: cdrom });
    expect(serial).toMatch(/BdsDxe: starting Boot\d+ "UEFI QEMU DVD-ROM/);
    expect(serial).toMatch(/GNU GRUB/);
    expectAgentFoundIronic(info, serial);
  }, LIMIT_MS + 60_000);

  it('written to a USB stick, under OVMF (the ESP partition entry, GRUB finds the ISO filesystem)', async () => {
    // dd of=/dev/sdX: the ISO at the start of a larger device.
    const stick = join(dir, 'stick.raw');
    copyFileSync(iso, stick);
    truncateSync(stick, 256 * 1024 * 1024);
    const vars = join(dir, 'stick-vars.fd');
    copyFileSync(OVMF_VARS_TEMPLATE, vars);
    const { info, serial } = await bootToHeartbeat('52:54:00:15:0c:03', {
      uefiVars: vars,
      extraQemuArgs: [
        '-device', 'qemu-xhci',
        '-drive', `file=${stick},format=raw,if=none,id=stick,readonly=on`, '-device', 'usb-storage,drive=stick,bootindex=0',
      ],
    });
    expect(serial).toMatch(/BdsDxe: starting Boot\d+ "UEFI QEMU QEMU USB HARDDRIVE/);
    expect(serial).toMatch(/GNU GRUB/);
    expectAgentFoundIronic(info, serial);
  }, LIMIT_MS + 60_000);
});
