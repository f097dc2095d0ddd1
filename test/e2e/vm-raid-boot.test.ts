import { copyFileSync, existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { readRange } from '../helpers/deployed-disk.ts';
import { sha256File } from '../helpers/images.ts';
import { startIronicRelease } from '../helpers/ironic-release.ts';
import { REPO_ROOT } from '../helpers/netns.ts';
import { expectDeployedAndPoweredOff } from './deploy-ended.ts';
import { createVmNetwork } from './qemu-network.ts';
import { OVMF_VARS_TEMPLATE, startVm, type Vm } from './qemu.ts';

// Issue 18, Show it 1: a whole-disk image deployed through a real Ironic
// (29.0) onto a software RAID-1 of a VM's two disks boots from either disk.
// The node gets target_raid_config RAID-1 "controller": "software"; manual
// cleaning runs raid.delete_configuration + raid.create_configuration in our
// ramdisk (fast track: the same agent then deploys); the deploy writes
// build/guest-raid.raw (GPT: ESP + ext4 root, lab/guest-image/build.sh) onto
// /dev/md0 and Ironic calls image.install_bootloader with software_raid: under
// UEFI the image's ESP is copied to an ESP on each member with a boot entry
// each, under BIOS the image's grub-install runs on each member. The agent
// powers the VM off; the test then starts it from its disks three times with
// the firmware alone: both disks, disk 1 removed, disk 2 removed. Each time
// the deployed OS must come up with its root on the md array (degraded,
// [2/1], when a disk is gone: Debian's mdadm initramfs script starts it after
// ~20 s of waiting for the root). OVMF and SeaBIOS run side by side.

const LIMIT_MS = 2_400_000; // TCG on 2 shared cores, two VMs at once: a hang bound, not a speed check
const IMAGE = join(REPO_ROOT, 'build', 'guest-raid.raw');
const DISK_SIZE = '5G'; // sparse; the array must exceed the 4 GiB a root device needs (IPA's rule)
const RAID_CONFIG = { logical_disks: [{ controller: 'software', raid_level: '1', size_gb: 'MAX' }] };
const GUEST_LINE = /metal-guest: hostname=(\S*) cmdline=([^\r\n]*)/;
const ROOT_LINE = /metal-guest: root=(\S*)/;
// The kernel's own line, printed before any user space: the guest init's line can be cut by kernel
// messages (md's degraded-array lines) written to the same console at the same moment.
const KERNEL_CMDLINE = /Kernel command line: ([^\r\n]*)/;
const MDSTAT_LINE = /metal-guest: mdstat ([^\r\n]*)/;

/** The root filesystem's UUID inside the whole-disk image (Ironic's image_rootfs_uuid). */
async function imageRootUuid(image: string): Promise<string> {
  const table = JSON.parse((await execa('sfdisk', ['-J', image])).stdout).partitiontable;
  const root = table.partitions.find((p: { type: string }) => p.type.toUpperCase() === '0FC63DAF-8483-4772-8E79-3D69D8477DE4');
  const offset = root.start * (table.sectorsize ?? 512);
  return (await execa('blkid', ['-p', '-O', String(offset), '-o', 'value', '-s', 'UUID', image])).stdout.trim();
}

const CASES = [
  { firmware: 'uefi' as const, mac: '52:54:00:b1:18:01' },
  { firmware: 'bios' as const, mac: '52:54:00:b1:18:02' },
];

describe.concurrent('Ironic 29.0: whole-disk image on a software RAID-1, booted from either disk', () => {
  for (const { firmware, mac } of CASES) {
    const fwName = firmware === 'uefi' ? 'OVMF (UEFI)' : 'SeaBIOS';
    it(`${fwName}: manual cleaning builds the array, the deploy installs a boot loader on both members, the OS boots with both disks, without disk 1, without disk 2`, async () => {
      const hostname = `raid-${firmware}-${process.pid}`;
      const dir = mkdtempSync(join(tmpdir(), `metal-agent-raid-boot-${firmware}-`));
      const disks = [join(dir, 'a.raw'), join(dir, 'b.raw')];
      const serials = [`RAID-${firmware.toUpperCase()}-A`, `RAID-${firmware.toUpperCase()}-B`];
      const vars = join(dir, 'OVMF_VARS.fd');
      const vms: Vm[] = [];
      const net = await createVmNetwork(`rb${firmware[0]}`);
      let ironic: Awaited<ReturnType<typeof startIronicRelease>> | undefined;
      try {
        for (const d of disks) await execa('truncate', ['-s', DISK_SIZE, d]);
        if (firmware === 'uefi') copyFileSync(OVMF_VARS_TEMPLATE, vars);
        const uefi = firmware === 'uefi' ? { uefiVars: vars } : {};
        ironic = await startIronicRelease('29.0', {
          netns: net.ns.name,
          hostIp: net.hostIp,
          port: 6385,
          bootMode: firmware,
          heartbeatTimeoutSec: 30,
          // The agent that cleaned goes on to deploy (one ramdisk boot under TCG).
          fastTrack: true,
          extraConf: '[conductor]\nautomated_clean = false\n[agent]\npost_deploy_get_power_state_retries = 1\npost_deploy_get_power_state_retry_interval = 2\n',
        });
        const uuid = await ironic.enroll(mac, { provide: false });
        // Two calls: the CLI puts target_raid_config before it patches the interface.
        await ironic.baremetal(['node', 'set', uuid, '--raid-interface', 'agent']);
        await ironic.baremetal(['node', 'set', uuid, '--target-raid-config', JSON.stringify(RAID_CONFIG)]);

        // Manual cleaning: Ironic "powers on" the node (fake power); the VM boots our ramdisk.
        await ironic.baremetal(['node', 'clean', uuid, '--clean-steps', JSON.stringify([
          { interface: 'raid', step: 'delete_configuration' },
          { interface: 'raid', step: 'create_configuration' },
        ])]);
        const ramdiskVm = await startVm({
          network: net,
          mac,
          memoryMiB: 512,
          disks: disks.map((file, i) => ({ file, bus: 'virtio' as const, serial: serials[i] })),
          kernelArgs: [`ipa-api-url=http://${net.hostIp}:6385`, `BOOTIF=01-${mac.replace(/:/g, '-')}`],
          ...uefi,
        });
        vms.push(ramdiskVm);
        const cleaned = await ironic.waitForState(uuid, ['manageable', 'clean failed'], LIMIT_MS / 4000);
        expect(cleaned.last_error ?? null, (await ramdiskVm.serialText()).slice(-4000)).toBeNull();
        expect(cleaned.provision_state).toBe('manageable');
        // Ironic's record of what create_configuration built.
        expect(cleaned.raid_config?.logical_disks?.[0]).toMatchObject({ controller: 'software', raid_level: '1' });

        // Deploy the RAID guest image through the same agent.
        await ironic.baremetal(['node', 'provide', uuid]);
        await ironic.waitForState(uuid, ['available'], 120);
        const rootUuid = await imageRootUuid(IMAGE);
        await ironic.baremetal([
          'node', 'set', uuid,
          '--instance-info', `image_source=${await net.serveFile(IMAGE)}`,
          '--instance-info', 'image_os_hash_algo=sha256',
          '--instance-info', `image_os_hash_value=${await sha256File(IMAGE)}`,
          '--instance-info', 'image_disk_format=raw',
          // No Glance here: Ironic reads the root filesystem's UUID for software RAID from instance_info.
          '--instance-info', `image_rootfs_uuid=${rootUuid}`,
        ]);
        await ironic.baremetal(['node', 'deploy', uuid, '--config-drive', JSON.stringify({ meta_data: { hostname } })]);
        await expectDeployedAndPoweredOff(ironic, uuid, ramdiskVm, LIMIT_MS / 4000);

        // Every member got a boot loader of its own.
        for (const d of disks) {
          const table = JSON.parse((await execa('sfdisk', ['-J', d])).stdout).partitiontable;
          const types = table.partitions.map((p: { type: string }) => p.type.toUpperCase());
          if (firmware === 'uefi') {
            expect(table.label).toBe('gpt');
            expect(types).toContain('C12A7328-F81F-11D2-BA4B-00A0C93EC93B');
          } else {
            expect(table.label).toBe('dos');
            expect(readRange(d, 0, 440).includes(Buffer.from('GRUB ')), `${d}: GRUB's boot.img in the MBR`).toBe(true);
          }
        }

        // "Power on" from the disks, the firmware alone: both disks, then each one alone.
        const boots = [
          { name: 'both disks', which: [0, 1] },
          { name: 'disk 1 removed', which: [1] },
          { name: 'disk 2 removed', which: [0] },
        ];
        for (const boot of boots) {
          const vm = await startVm({
            network: net,
            mac,
            memoryMiB: 512,
            bootFromDisk: true,
            disks: boot.which.map((i) => ({ file: disks[i]!, bus: 'virtio' as const, serial: serials[i] })),
            ...uefi,
          });
          vms.push(vm);
          const m = await vm.waitForSerial(GUEST_LINE, LIMIT_MS / 6).catch(async (e: Error) => {
            throw new Error(`${fwName}, ${boot.name}: ${e.message}\nserial:\n${(await vm.serialText()).slice(-3000)}`);
          });
          const serial = await vm.serialText();
          expect(m[1]).toBe(hostname);
          const cmdline = (KERNEL_CMDLINE.exec(serial)?.[1] ?? '').trim().split(/\s+/);
          expect(cmdline, serial.slice(0, 3000)).toContain(`root=UUID=${rootUuid}`);
          // The root filesystem is a partition of the md array (md127p2: the image's second partition).
          expect(ROOT_LINE.exec(serial)?.[1], serial.slice(-3000)).toMatch(/^md\d+p2$/);
          const mdstat = MDSTAT_LINE.exec(serial)?.[1] ?? '';
          const members = mdstat.match(/vd[a-z]\d+\[\d+\]/g) ?? [];
          expect(mdstat).toMatch(/active (\(auto-read-only\) )?raid1/); // start_ro=1: read-only until the first write
          expect(members).toHaveLength(boot.which.length);
          expect(mdstat).toMatch(boot.which.length === 2 ? /\[2\/2\] \[UU\]/ : /\[2\/1\] \[(U_|_U)\]/);
          // OVMF started an NVRAM entry the agent made for a member disk (one per member, its label
          // ending in the member's name), whichever disk is left: not the firmware's own fallback
          // for the removable-media path, which the member ESP copy also holds.
          const started = /BdsDxe: starting Boot\d+ "[^"]*" from [^\r\n]*/.exec(serial)?.[0];
          if (firmware === 'uefi') expect(started, serial.slice(-3000)).toMatch(/starting Boot\d+ "\S+ vd[a-z]" from HD\(/);
          console.log(`${fwName}, ${boot.name}: deployed OS up after ${(vm.elapsedMs() / 1000).toFixed(1)} s: ${started ? `${started} | ` : ''}${ROOT_LINE.exec(serial)![0]} | ${MDSTAT_LINE.exec(serial)![0]} | ${m[0]}`);
          await vm.stop();
        }
        rmSync(dir, { recursive: true, force: true });
      } finally {
        for (const vm of vms) await vm.stop();
        await ironic?.stop();
        await net.destroy();
        // On failure the disks stay for a look (mdadm --examine, sfdisk); their path is in the log.
        if (existsSync(dir)) console.log(`${fwName}: disks kept in ${dir}`);
      }
    }, LIMIT_MS);
  }
});
