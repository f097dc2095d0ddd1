import { mkdtempSync, rmSync } from 'node:fs';
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

// Issue 6 end to end: a real Ironic on the provisioning network (a namespace),
// a qemu VM that boots our kernel + ramdisk with ipa-api-url on its command
// line; the node goes clean wait -> available with the VM's agent
// heartbeating and really erasing the metadata of the VM's disk. Once per
// Ironic release: the same ramdisk binary serves 21.4 and 29.0 (which refuses
// plain-HTTP callbacks, so this is also the ramdisk's auto-TLS on a real NIC).

const LIMIT_MS = 600_000; // TCG on 2 shared cores: a bound, not a speed check

for (const [release, MAC] of [['21.4', '52:54:00:e2:e0:01'], ['29.0', '52:54:00:e2:e0:29']] as Array<[IronicRelease, string]>) describe(`Ironic ${release}: a VM booted from the ramdisk is cleaned`, () => {
  let net: VmNetwork;
  let ironic: Ironic;
  let vm: Vm;
  let uuid: string;
  const dir = mkdtempSync(join(tmpdir(), 'metal-agent-e2e-'));
  const disk = join(dir, 'disk.raw');

  beforeAll(async () => {
    // The VM's disk, with a partition table for cleaning to remove.
    await execa('truncate', ['-s', '1G', disk]);
    await execa('sgdisk', ['-n', '1:2048:+64M', '-t', '1:8300', disk]);
    expect(await metadataLeft(disk)).not.toEqual([]);
    net = await createVmNetwork(`e2ec${release.replace('.', '')}`);
    // Full-disk erase (erase_devices, priority 10) of a VM disk under TCG would
    // take the whole budget; operators turn it off the same way.
    ironic = await startIronicRelease(release, { netns: net.ns.name, hostIp: net.hostIp, port: 6385, extraConf: '[deploy]\nerase_devices_priority = 0\n', heartbeatTimeoutSec: 30 });
    uuid = await ironic.enroll(MAC);
    vm = await startVm({
      network: net,
      mac: MAC,
      memoryMiB: 512,
      disks: [{ file: disk, bus: 'virtio', serial: 'E2E-CLEAN' }],
      kernelArgs: [`ipa-api-url=http://${net.hostIp}:6385`, `BOOTIF=01-${MAC.replace(/:/g, '-')}`],
    });
  }, LIMIT_MS);

  afterAll(async () => {
    await vm?.stop();
    await ironic?.stop();
    await net?.destroy();
    rmSync(dir, { recursive: true, force: true });
  }, 120_000);

  it('goes clean wait -> available, and the VM disk has no partition table left', async () => {
    const node = await ironic.waitForState(uuid, ['available', 'clean failed'], LIMIT_MS / 1000);
    await expectNoLastError(expect, node, () => vm.serialText());
    expect(node.provision_state).toBe('available');
    expect(await metadataLeft(disk)).toEqual([]);
    const serial = await vm.serialText();
    expect(serial).toMatch(/erasing metadata on \/dev\/vda/);
    expect(serial).toMatch(/lookup succeeded/);
    // The agent called back over https, with its own certificate (29.0 refuses anything else).
    expect(serial).toMatch(/"callbackUrl":"https:\/\/[^"]+","tls":true/);
  }, LIMIT_MS);
});
