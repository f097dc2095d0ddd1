import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startVm, type Vm } from './qemu.ts';

// Boots the real ramdisk (make kernel ramdisk) in qemu/TCG with 512 MiB, the
// product's smallest node, and checks it the way Ironic would see it: the agent
// is up, sees the node's disks, and answers on the provisioning network.

const BOOT_TIMEOUT_MS = 300_000; // TCG on a loaded 2-core machine; a limit, not a speed check

describe('ramdisk boots in qemu', () => {
  let vm: Vm;

  beforeAll(async () => {
    vm = await startVm({
      memoryMiB: 512,
      disks: [
        { sizeMiB: 2048, bus: 'virtio', serial: 'E2E-VIRTIO' },
        { sizeMiB: 1024, bus: 'nvme', serial: 'E2E-NVME' },
      ],
      // No Ironic here: the agent only serves its API, over plain HTTP.
      kernelArgs: ['ipa-standalone=1', 'ipa-enable-auto-tls=0', 'metal.shell'],
    });
    // One deadline for the whole boot, so a hang fails with the console's tail.
    const deadline = Date.now() + BOOT_TIMEOUT_MS;
    await vm.waitForSerial(/"msg":"API listening"/, deadline - Date.now());
    await vm.waitForSerial(/metal-agent-init: \[[\d.]+\] eth0 has \S+/, Math.max(1000, deadline - Date.now()));
  }, BOOT_TIMEOUT_MS + 60_000);

  afterAll(async () => {
    await vm?.stop();
  }, 60_000);

  it('ran the init and started the agent from the ramdisk', async () => {
    const log = await vm.serialText();
    expect(log).toMatch(/metal-agent-init: \[[\d.]+\] starting \(metal-agent ramdisk, kernel \S+-amd64/);
    expect(log).toMatch(/metal-agent-init: \[[\d.]+\] starting metal-agent \(run 1\)/);
    expect(log).not.toMatch(/metal-agent exited/);
    expect(log).not.toMatch(/Initramfs unpacking failed/);
    // The agent must see / as the ramdisk (its safety guard relaxes only then).
    expect(log).not.toMatch(/not running in a ramdisk/);
  });

  it('got its DHCP reservation on the test network', async () => {
    const m = await vm.waitForSerial(/metal-agent-init: \[[\d.]+\] eth0 has (\S+)\//, 1000);
    expect(m[1]).toBe(vm.ip);
  });

  it('answers GET /v1/status from the provisioning network', async () => {
    const r = await vm.httpGet('/v1/status');
    expect(r.status).toBe(200);
    const body = JSON.parse(r.body) as { started_at: number; version: string };
    expect(typeof body.started_at).toBe('number');
    expect(body.version).toMatch(/^\d+\.\d+/);
  });

  it('sees both target disks with their serials (virtio and NVMe)', async () => {
    const from = (await vm.serialText()).length;
    // Markers are split with "" so the console's echo of the typed line never matches.
    await vm.sendSerial('echo DISKS-""BEGIN; lsblk -d -n -o NAME,SERIAL,TYPE; echo DISKS-""END\n');
    const m = await vm.waitForSerial(/DISKS-BEGIN\r?\n([\s\S]*?)DISKS-END/, 30_000, from);
    const listing = m[1]!;
    expect(listing).toMatch(/vda\s+E2E-VIRTIO\s+disk/);
    expect(listing).toMatch(/nvme0n1\s+E2E-NVME\s+disk/);
  });

  it('runs the tools from tools.ts (dynamic binaries with their libraries)', async () => {
    const from = (await vm.serialText()).length;
    // Full paths: busybox (sh, env) would run its own applet of the same name
    // (partprobe, ip...) instead of the Debian tool the agent execs.
    await vm.sendSerial('for t in qemu-img sgdisk partprobe nvme mkfs.ext4 udevadm lsblk; do p=/usr/sbin/$t; [ -e $p ] || p=/usr/bin/$t; $p --version >/dev/null 2>&1 || $p -V >/dev/null 2>&1 || echo "BRO""KEN $t"; done; echo TOOLS-""DONE\n');
    const m = await vm.waitForSerial(/TOOLS-DONE\r?\n/, 30_000, from);
    const out = (await vm.serialText()).slice(from, from + m.index);
    expect(out).not.toMatch(/BROKEN [a-z]|not found|error while loading shared libraries/);
  });

  // Last: it ends the VM. The agent powers off with busybox poweroff, which
  // only signals PID 1; the init must turn that into a real power-off.
  it('powers off when poweroff is run, as the agent does', async () => {
    await vm.sendSerial('poweroff\n');
    await vm.waitForSerial(/metal-agent-init: \[[\d.]+\] powering off/, 30_000).catch(() => undefined);
    for (let i = 0; i < 600 && vm.alive(); i++) await new Promise((r) => setTimeout(r, 100));
    expect(vm.alive()).toBe(false);
    expect(await vm.serialText()).toMatch(/reboot: Power down/);
  }, 90_000);
});
