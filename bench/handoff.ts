// Deploy wall time ending in a kexec handoff vs the same deploy ending in a
// reboot through the firmware (issues 7 and 16), measured in one run, in qemu
// (TCG) through a real Ironic 21.4 with fast track and a real BMC: the
// project's Redfish emulator (lab/redfish), through the demo's lab
// (scripts/demo/redfish-lab.ts). Only Ironic powers and boots the machines.
//
//   npx tsx bench/handoff.ts [--image build/guest-root.img] [--memory 512]
//        [--boot-mode bios|uefi] [--only reboot|kexec] [--serial-dir DIR (keeps each console log)]
//
// Both variants start from the same point: the node cleaned to `available`
// (Ironic booted the deploy ISO it built through the BMC's virtual media; the
// node's network_data gives a static address, no DHCP), fast track keeping the
// agent up and the machine on; then the same partition image
// (build/guest-root.img, GRUB installed by image.install_bootloader) with a
// config drive. The clock runs from `baremetal node deploy` until the deployed
// OS's init prints its config-drive hostname on the serial console.
// - reboot: hardware type `redfish`, deploy interface `direct` (stock):
//   standby.power_off through the agent (qemu exits, the BMC reads Off), then
//   Ironic powers the machine on through the BMC with the disk as boot device:
//   firmware -> GRUB -> the deployed kernel.
// - kexec: hardware type `redfish-kexec`, deploy interface `direct-kexec`
//   (ironic-plugin/): the deploy ends with standby.run_image and the agent
//   kexecs into the deployed kernel: no firmware, no power action at the BMC.
// Beside the ratio: the firmware's own part of a boot, from the BMC's power-on
// (its event time) to the first kernel line ("Linux version") on the console,
// for the reboot variant's boot from disk (firmware POST + GRUB loading the
// kernel and initrd) and for the cleaning boot from the ISO. A VM's firmware
// takes seconds; a server's POST takes minutes, which this cannot show.
import { copyFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import { sha256File } from '../test/helpers/images.ts';
import { REPO_ROOT } from '../test/helpers/netns.ts';
import { POWER_EVENTS, startRedfishLab, type LabMachine, type RedfishLab } from '../scripts/demo/redfish-lab.ts';

const { values: opt } = parseArgs({
  options: {
    image: { type: 'string', default: join(REPO_ROOT, 'build', 'guest-root.img') },
    memory: { type: 'string', default: '512' },
    'boot-mode': { type: 'string', default: 'bios' },
    only: { type: 'string' },
    'serial-dir': { type: 'string' },
  },
});

type Variant = 'reboot' | 'kexec';
const GUEST_LINE = /metal-guest: hostname=(\S*) cmdline=/;
const LIMIT_MS = 1_800_000;
const bootMode = opt['boot-mode'] === 'uefi' ? 'UEFI' : 'Legacy';

const MACHINES: Record<Variant, LabMachine> = {
  kexec: { id: 'bench-kexec', bootMode, mac: '52:54:00:b1:00:01', ip: '192.0.2.21', diskGiB: 6, memoryMiB: Number(opt.memory) },
  reboot: { id: 'bench-reboot', bootMode, mac: '52:54:00:b1:00:02', ip: '192.0.2.22', diskGiB: 6, memoryMiB: Number(opt.memory) },
};

interface Timing {
  variant: Variant;
  activeMs: number;
  guestMs: number;
  /** BMC power events (power on/off, reset) from the deploy command on. */
  powerEvents: string[];
  /** Agent log lines (their own timestamps) after the deploy command, in ms from it. */
  milestones: Array<[string, number]>;
  /** When the deployed kernel's console lines showed up (host clock), in ms from the deploy command. */
  guestMilestones: Array<[string, number]>;
  /** BMC power on -> first "Linux version" line, per power-on of this machine (host clock). */
  posts: Array<{ boot: string; ms: number }>;
}

/** Console lines of the deployed OS's boot, in order. */
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

/**
 * Watches a machine's console (host clock, 250 ms polls): for each BMC power-on, when the first
 * "Linux version" line after its marker appeared. Returns a stop function giving the results.
 */
function watchPosts(lab: RedfishLab, id: string): () => Array<{ boot: string; ms: number }> {
  const seen: Array<{ boot: string; ms: number }> = [];
  const done = new Set<number>();
  let running = true;
  void (async () => {
    while (running) {
      const ons = lab.events().filter((e) => e.system === id && e.msg === 'power on');
      const text = lab.serialText(id);
      const markers = [...text.matchAll(/\n\[redfish-emulator\] power on (\d+): [^\n]*cd (\S+)\n/g)];
      for (const [i, m] of markers.entries()) {
        if (done.has(i) || !ons[i]) continue;
        const end = markers[i + 1]?.index ?? text.length;
        if (/Linux version \S+/.test(text.slice(m.index!, end))) {
          done.add(i);
          seen.push({ boot: m[2] === 'empty' ? 'disk' : 'virtual CD', ms: Date.now() - Date.parse(String(ons[i]!.time)) });
        }
      }
      await sleep(250);
    }
  })();
  return () => {
    running = false;
    return seen;
  };
}

async function waitFor<T>(what: string, fn: () => Promise<T | undefined> | T | undefined, limitMs: number): Promise<T> {
  const deadline = Date.now() + limitMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out: ${what}`);
    await sleep(250);
  }
}

async function deployOnce(lab: RedfishLab, variant: Variant, imageUrl: string, imageSha: string): Promise<Timing> {
  const m = MACHINES[variant];
  const hostname = `bench-${variant}`;
  const ironic = lab.ironic;
  const posts = watchPosts(lab, m.id);
  const uuid = await lab.enroll(m, variant === 'kexec' ? { driver: 'redfish-kexec', deployInterface: 'direct-kexec' } : { driver: 'redfish', deployInterface: 'direct' });
  await ironic.baremetal(['node', 'manage', uuid, '--wait', '120']);
  await ironic.baremetal(['node', 'provide', uuid]);
  const cleaned = await ironic.waitForState(uuid, ['available', 'clean failed'], LIMIT_MS / 1000);
  if (cleaned.provision_state !== 'available') throw new Error(`${variant}: cleaning failed: ${cleaned.last_error}`);
  // Fast track: the agent heartbeats while the node is available and on.
  await waitFor('agent heartbeating', async () => {
    const n = await ironic.node(uuid);
    return n.driver_internal_info?.agent_url && n.power_state === 'power on' ? n : undefined;
  }, LIMIT_MS);
  await ironic.baremetal([
    'node', 'set', uuid,
    '--instance-info', `image_source=${imageUrl}`,
    '--instance-info', 'image_os_hash_algo=sha256',
    '--instance-info', `image_os_hash_value=${imageSha}`,
    '--instance-info', 'image_disk_format=raw',
    '--instance-info', 'image_type=partition',
    '--instance-info', 'root_gb=2',
  ]);
  const mark = lab.serialText(m.id).length;
  const eventMark = lab.events().length;
  const t0 = Date.now();
  await ironic.baremetal(['node', 'deploy', uuid, '--config-drive', JSON.stringify({ meta_data: { hostname } })]);

  let activeMs = 0;
  const watchActive = (async () => {
    const n = await ironic.waitForState(uuid, ['active', 'deploy failed'], LIMIT_MS / 1000);
    if (n.provision_state !== 'active') throw new Error(`${variant}: deploy failed: ${n.last_error}`);
    activeMs = Date.now() - t0;
  })();
  watchActive.catch(() => undefined);
  const guestMilestones: Array<[string, number]> = [];
  // The reboot variant's console after the deploy holds the ramdisk's end, then a new power-on and the disk boot.
  const guestText = () => {
    const text = lab.serialText(m.id).slice(mark);
    if (variant === 'kexec') return text;
    const on = text.lastIndexOf('[redfish-emulator] power on');
    return on >= 0 ? text.slice(on) : '';
  };
  for (const [name, re] of GUEST_MILESTONES) {
    await waitFor(`${variant}: ${name}`, () => (re.test(guestText()) ? true : undefined), LIMIT_MS);
    guestMilestones.push([name, Date.now() - t0]);
  }
  const line = await waitFor(`${variant}: the guest's line`, () => GUEST_LINE.exec(guestText()) ?? undefined, LIMIT_MS);
  const guestMs = Date.now() - t0;
  await watchActive;
  if (line[1] !== hostname) throw new Error(`${variant}: the guest says hostname=${line[1]}, not ${hostname}`);
  await sleep(500);
  const powerEvents = lab.events().slice(eventMark).filter((e) => e.system === m.id && POWER_EVENTS.has(e.msg)).map((e) => (e.type ? `${e.msg} ${e.type}` : e.msg));
  const milestones = agentMilestones(lab.serialText(m.id).slice(mark), t0);
  const result = { variant, activeMs, guestMs, powerEvents, milestones, guestMilestones, posts: posts() };
  // An idle guest still costs TCG time: Ironic powers it off before the other variant runs.
  await ironic.baremetal(['node', 'power', 'off', uuid]);
  return result;
}

async function main(): Promise<void> {
  const variants = (opt.only ? [opt.only] : ['reboot', 'kexec']) as Variant[];
  const [sha, lab] = await Promise.all([
    sha256File(opt.image!),
    startRedfishLab({ tag: 'bench', machines: variants.map((v) => MACHINES[v]), fastTrack: true }),
  ]);
  let stopping = false;
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.on(sig, () => {
      if (stopping) return;
      stopping = true;
      console.error(`${sig}: removing the lab`);
      void lab.destroy().finally(() => process.exit(130));
    });
  }
  try {
    const imageUrl = lab.serve(opt.image!);
    const fw = bootMode === 'UEFI' ? 'OVMF' : 'SeaBIOS';
    console.log(`deploy wall time, kexec handoff vs reboot through the firmware (qemu TCG, ${fw}, Redfish BMC lab/redfish, Ironic 21.4 fast track, partition image + GRUB)`);
    const results: Timing[] = [];
    const secs = (ms: number) => `${(ms / 1000).toFixed(1)} s`;
    for (const v of variants) {
      const r = await deployOnce(lab, v, imageUrl, sha);
      results.push(r);
      console.log(
        `  ${v.padEnd(6)}  deploy -> node active ${secs(r.activeMs).padStart(8)}   deploy -> deployed OS up ${secs(r.guestMs).padStart(8)}   ` +
          `(BMC power actions during the deploy: ${r.powerEvents.join(', ') || 'none'})`,
      );
      const list = (ms: Array<[string, number]>) => ms.map(([n, t]) => `${n} +${(t / 1000).toFixed(1)} s`).join(', ');
      console.log(`          agent: ${list(r.milestones)}`);
      console.log(`          console: ${list(r.guestMilestones)}`);
      console.log(`          firmware (BMC power on -> first kernel line): ${r.posts.map((p) => `${p.boot} boot ${secs(p.ms)}`).join(', ')}`);
    }
    if (results.length < 2) return;
    const [reboot, kexec] = results as [Timing, Timing];
    const diskPost = reboot.posts.find((p) => p.boot === 'disk');
    console.log(
      `  ratio reboot/kexec (deploy -> deployed OS up): ${(reboot.guestMs / kexec.guestMs).toFixed(2)}x; ` +
        `the VM firmware's own POST + boot loader (power on -> kernel, from disk): ${diskPost ? secs(diskPost.ms) : 'not seen'}`,
    );
    // The image download and write vary by several seconds between runs; from
    // the boot loader on, both variants do the same work except the handoff.
    const ending = (t: Timing) => t.guestMs - (t.milestones.find(([n]) => n === 'boot loader installed')?.[1] ?? NaN);
    console.log(
      `  boot loader installed -> deployed OS up: reboot ${secs(ending(reboot))}, kexec ${secs(ending(kexec))}, ` +
        `ratio ${(ending(reboot) / ending(kexec)).toFixed(2)}x`,
    );
    console.log(`  saved by kexec: ${secs(reboot.guestMs - kexec.guestMs)} (a VM's firmware is quick; a server's POST is minutes)`);
  } finally {
    if (opt['serial-dir']) {
      for (const v of variants) await copyFile(lab.serialLog(MACHINES[v].id), join(opt['serial-dir'], `${v}.log`)).catch(() => undefined);
    }
    if (!stopping) await lab.destroy();
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
