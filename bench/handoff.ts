// Deploy wall time ending in a kexec handoff vs the same deploy ending in a
// reboot (issue 7), measured in one run, in qemu (TCG) through a real Ironic
// 21.4 with fast track.
//
//   npx tsx bench/handoff.ts [--image build/guest-root.img] [--memory 512]
//        [--only reboot|kexec] [--serial-dir DIR (keeps each VM's console log)]
//
// Both variants start from the same point: a VM booted from our ramdisk
// (SeaBIOS), the node `available` with the agent heartbeating
// (fast track, no cleaning), and deploy the same partition image
// (build/guest-root.img, GRUB installed by image.install_bootloader) with a
// config drive. The clock runs from `baremetal node deploy` until the deployed
// OS's init prints its config-drive hostname on the serial console.
// - reboot: the node's power interface is `fake`, so Ironic ends the deploy
//   as with a BMC: standby.power_off through the agent (qemu exits), then
//   "power on", which this script plays by starting qemu again on the same
//   disk with no kernel: SeaBIOS -> GRUB -> the deployed kernel.
// - kexec: the same `fake` power, but the deploy interface is the project's
//   plugin's `direct-kexec` (ironic-plugin/, hardware type
//   manual-management-kexec): the deploy ends with standby.run_image and the
//   agent kexecs into the deployed kernel: no firmware, no power cycle, the
//   same qemu run.
// A VM's firmware takes a second or two; a server's POST takes minutes, which
// this does not show: the ratio here is a floor for what kexec saves.
import { copyFile, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import { execa } from 'execa';
import { sha256File } from '../test/helpers/images.ts';
import { startIronic, type Ironic } from '../test/helpers/ironic.ts';
import { REPO_ROOT } from '../test/helpers/netns.ts';
import { createVmNetwork, type VmNetwork } from '../test/e2e/qemu-network.ts';
import { startVm, type Vm } from '../test/e2e/qemu.ts';

const { values: opt } = parseArgs({
  options: {
    image: { type: 'string', default: join(REPO_ROOT, 'build', 'guest-root.img') },
    memory: { type: 'string', default: '512' },
    only: { type: 'string' },
    'serial-dir': { type: 'string' },
  },
});

type Variant = 'reboot' | 'kexec';
const GUEST_LINE = /metal-guest: hostname=(\S*) cmdline=/;
const LIMIT_MS = 1_200_000;

interface Timing {
  variant: Variant;
  activeMs: number;
  guestMs: number;
  qemuRuns: number;
  /** Agent log lines (their own timestamps) after the deploy command, in ms from it. */
  milestones: Array<[string, number]>;
  /** When the deployed kernel's console lines showed up (host clock), in ms from the deploy command. */
  guestMilestones: Array<[string, number]>;
}

/** Console lines of the deployed OS's boot, in order (the first one differs: kexec says it, firmware does not). */
const GUEST_MILESTONES: Array<[string, RegExp]> = [
  ['deployed kernel started', /Linux version \S+ \(debian-kernel/],
  ['its /init ran', /Run \/init as init process/],
];

const MILESTONES: Array<[string, RegExp]> = [
  ['image written and verified', /"progress":"write_image: done/],
  ['boot loader installed', /"command":"image.install_bootloader"[^\n]*"status":"SUCCEEDED"/],
  ['standby.power_off received', /"command":"standby.power_off"[^\n]*"command started"/],
  ['standby.run_image received', /"command":"standby.run_image"[^\n]*"command started"/],
  ['kernel staged', /"msg":"deployed kernel staged"/],
  ['kexec -e', /handing off to the deployed OS with kexec/],
];

/** When the agent logged each milestone (pino's epoch ms; the VM's clock comes from the host's RTC). */
function agentMilestones(serial: string, t0: number): Array<[string, number]> {
  const out: Array<[string, number]> = [];
  for (const [name, re] of MILESTONES) {
    const line = serial.split('\n').find((l) => re.test(l));
    const time = line ? Number(/"time":(\d+)/.exec(line)?.[1]) : NaN;
    if (Number.isFinite(time)) out.push([name, time - t0]);
  }
  return out;
}

async function waitFor<T>(what: string, fn: () => Promise<T | undefined>, limitMs: number): Promise<T> {
  const deadline = Date.now() + limitMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out: ${what}`);
    await sleep(250);
  }
}

async function deployOnce(variant: Variant, imageSha: string): Promise<Timing> {
  const mac = variant === 'kexec' ? '52:54:00:b1:00:01' : '52:54:00:b1:00:02';
  const hostname = `bench-${variant}`;
  const dir = await mkdtemp(join(tmpdir(), `metal-bench-handoff-${variant}-`));
  const disk = join(dir, 'disk.raw');
  let net: VmNetwork | undefined;
  let ironic: Ironic | undefined;
  const vms: Vm[] = [];
  try {
    await execa('truncate', ['-s', '6G', disk]);
    net = await createVmNetwork(`ho${variant[0]}`);
    const imageUrl = await net.serveFile(opt.image!);
    ironic = await startIronic({
      netns: net.ns.name,
      hostIp: net.hostIp,
      port: 6385,
      fastTrack: true,
      heartbeatTimeoutSec: 30,
      // The fake power interface never reads "off" after standby.power_off; a BMC would at once.
      extraConf: '[conductor]\nautomated_clean = false\n[agent]\npost_deploy_get_power_state_retries = 1\npost_deploy_get_power_state_retry_interval = 1\n',
    });
    const kexec = variant === 'kexec' ? { driver: 'manual-management-kexec', deployInterface: 'direct-kexec' } : {};
    const uuid = await ironic.enroll(mac, kexec);
    const vm = await startVm({
      network: net,
      mac,
      memoryMiB: Number(opt.memory),
      disks: [{ file: disk, bus: 'virtio', serial: 'BENCH-0' }],
      kernelArgs: [`ipa-api-url=http://${net.hostIp}:6385`, `BOOTIF=01-${mac.replace(/:/g, '-')}`],
    });
    vms.push(vm);
    // Fast track: the agent heartbeats while the node is available.
    await waitFor('agent heartbeating', async () => {
      const n = await ironic!.node(uuid);
      return n.provision_state === 'available' && n.driver_internal_info?.agent_url ? n : undefined;
    }, LIMIT_MS);
    // Fast track needs the node's power state to read "on": the fake power
    // interface says so only after a power-on. Without it the deploy waits for
    // a heartbeat first (~14 s).
    await ironic.baremetal(['node', 'power', 'on', uuid]);
    await ironic.baremetal([
      'node', 'set', uuid,
      '--instance-info', `image_source=${imageUrl}`,
      '--instance-info', 'image_os_hash_algo=sha256',
      '--instance-info', `image_os_hash_value=${imageSha}`,
      '--instance-info', 'image_disk_format=raw',
      '--instance-info', 'image_type=partition',
      '--instance-info', 'root_gb=2',
    ]);
    const mark = (await vm.serialText()).length;
    const t0 = Date.now();
    await ironic.baremetal(['node', 'deploy', uuid, '--config-drive', JSON.stringify({ meta_data: { hostname } })]);

    let activeMs = 0;
    let guestVm = vm;
    const watchActive = (async () => {
      const n = await ironic!.waitForState(uuid, ['active', 'deploy failed'], LIMIT_MS / 1000);
      if (n.provision_state !== 'active') throw new Error(`${variant}: deploy failed: ${n.last_error}`);
      activeMs = Date.now() - t0;
    })();
    if (variant === 'reboot') {
      // The agent powers the VM off; "power on" boots the disk through the firmware.
      await waitFor('the agent powering the VM off', async () => (vm.alive() ? undefined : true), LIMIT_MS);
      guestVm = await startVm({ network: net, mac, memoryMiB: Number(opt.memory), bootFromDisk: true, disks: [{ file: disk, bus: 'virtio', serial: 'BENCH-0' }] });
      vms.push(guestVm);
    }
    const from = variant === 'kexec' ? mark : 0;
    const guestMilestones: Array<[string, number]> = [];
    for (const [name, re] of GUEST_MILESTONES) {
      await guestVm.waitForSerial(re, LIMIT_MS, from);
      guestMilestones.push([name, Date.now() - t0]);
    }
    const m = await guestVm.waitForSerial(GUEST_LINE, LIMIT_MS, from);
    const guestMs = Date.now() - t0;
    await watchActive;
    if (m[1] !== hostname) throw new Error(`${variant}: the guest says hostname=${m[1]}, not ${hostname}`);
    const milestones = agentMilestones((await vm.serialText()).slice(mark), t0);
    return { variant, activeMs, guestMs, qemuRuns: vms.length, milestones, guestMilestones };
  } finally {
    if (opt['serial-dir']) {
      for (const [i, v] of vms.entries()) await copyFile(v.serialLog, join(opt['serial-dir'], `${variant}-${i}.log`)).catch(() => undefined);
    }
    for (const v of vms) await v.stop().catch(() => undefined);
    await ironic?.stop().catch(() => undefined);
    await net?.destroy().catch(() => undefined);
    await rm(dir, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  const sha = await sha256File(opt.image!);
  console.log('deploy wall time, kexec handoff vs reboot (qemu TCG, SeaBIOS, Ironic 21.4 fast track, partition image + GRUB)');
  const results: Timing[] = [];
  const variants = (opt.only ? [opt.only] : ['reboot', 'kexec']) as Variant[];
  for (const v of variants) {
    const r = await deployOnce(v, sha);
    results.push(r);
    console.log(
      `  ${v.padEnd(6)}  deploy -> node active ${(r.activeMs / 1000).toFixed(1).padStart(6)} s   ` +
        `deploy -> deployed OS up ${(r.guestMs / 1000).toFixed(1).padStart(6)} s   (qemu runs: ${r.qemuRuns})`,
    );
    const list = (ms: Array<[string, number]>) => ms.map(([n, t]) => `${n} +${(t / 1000).toFixed(1)} s`).join(', ');
    console.log(`          agent: ${list(r.milestones)}`);
    console.log(`          console: ${list(r.guestMilestones)}`);
  }
  if (results.length < 2) return;
  const [reboot, kexec] = results as [Timing, Timing];
  console.log(`  ratio reboot/kexec (deploy -> deployed OS up): ${(reboot.guestMs / kexec.guestMs).toFixed(2)}x`);
  // The image download and write vary by several seconds between runs; from
  // the boot loader on, both variants do the same work except the handoff.
  const ending = (t: Timing) => t.guestMs - (t.milestones.find(([n]) => n === 'boot loader installed')?.[1] ?? NaN);
  console.log(
    `  boot loader installed -> deployed OS up: reboot ${(ending(reboot) / 1000).toFixed(1)} s, kexec ${(ending(kexec) / 1000).toFixed(1)} s, ` +
      `ratio ${(ending(reboot) / ending(kexec)).toFixed(2)}x`,
  );
  console.log(`  saved by kexec: ${((reboot.guestMs - kexec.guestMs) / 1000).toFixed(1)} s (a VM's firmware is quick; a server's POST is minutes)`);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
