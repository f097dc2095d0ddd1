// `make demo`: the whole life of a bare-metal node, end to end, with the
// agent in its ramdisk in a qemu VM and a real, unmodified-API Ironic 21.4
// driving it through its own CLI (`baremetal`) and a BMC:
//
//   enroll -> manage -> provide (automated cleaning) -> deploy (Debian 12
//   guest image + config drive) -> kexec into the deployed OS (no reset,
//   no power action) -> the guest prints the hostname from its config drive.
//
// Only Ironic powers and boots the VM: the VM is a machine behind the
// project's Redfish BMC emulator (lab/redfish), enrolled on the hardware type
// redfish-kexec (redfish power and management, boot interface
// redfish-virtual-media, deploy interface direct-kexec from the project's
// Ironic plugin, ironic-plugin/). Ironic builds the deploy ISO from
// build/vmlinuz + build/metal-agent.initramfs with the node's network_data (a
// static IPv4 address), inserts it through the BMC's virtual media, sets the
// boot device and powers the machine on. The network has no DHCP server.
// Fast track keeps the agent up after cleaning; direct-kexec ends the deploy
// with standby.run_image, which the agent answers with a kexec, instead of a
// power cycle: the BMC sees no power action during the deploy (docs/demo.md).
//
//   npx tsx scripts/demo.ts [--keep] [--hostname NAME] [--boot-mode bios|uefi]
//        [--result-json FILE] [--serial-log FILE] [--ironic-log FILE] [--bmc-log FILE] [--memory MiB]
//
// --keep leaves everything running after the guest is up and prints how to
// look around; Ctrl-C (any time) removes everything the demo started.
import { existsSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import { sha256File } from '../test/helpers/images.ts';
import { REPO_ROOT } from '../test/helpers/netns.ts';
import { describeEvent, POWER_EVENTS, shellWord, startRedfishLab, type LabMachine, type RedfishLab } from './demo/redfish-lab.ts';

const { values: opt } = parseArgs({
  options: {
    keep: { type: 'boolean', default: false },
    hostname: { type: 'string', default: 'demo-guest' },
    'boot-mode': { type: 'string', default: 'bios' },
    'result-json': { type: 'string' },
    'serial-log': { type: 'string' },
    'ironic-log': { type: 'string' },
    'bmc-log': { type: 'string' },
    memory: { type: 'string', default: '512' },
    image: { type: 'string', default: join(REPO_ROOT, 'build', 'guest.raw') },
  },
});

const NODE = 'demo-node';
const MACHINE: LabMachine = {
  id: NODE,
  bootMode: opt['boot-mode'] === 'uefi' ? 'UEFI' : 'Legacy',
  mac: '52:54:00:de:00:01',
  ip: '192.0.2.10',
  diskGiB: 8, // sparse; the agent wants >= 4 GiB (IPA's rule)
  memoryMiB: Number(opt.memory),
};
const tty = process.stdout.isTTY;
// --- output ------------------------------------------------------------------
const t0 = Date.now();
const stages: Array<{ name: string; ms: number }> = [];
let progressShown = false;
let lastProgress = '';
let lastProgressAt = 0;

function secs(ms: number): string {
  return `${(ms / 1000).toFixed(1)} s`;
}
function clearProgress(): void {
  if (tty && progressShown) process.stdout.write('\r\x1b[2K');
  progressShown = false;
}
function say(line: string): void {
  clearProgress();
  console.log(line);
}
function progress(line: string): void {
  const text = `   … ${line}`;
  if (tty) {
    const cols = process.stdout.columns || 120;
    process.stdout.write(`\r\x1b[2K${text.slice(0, cols - 1)}`);
    progressShown = true;
  } else if (line !== lastProgress && Date.now() - lastProgressAt > 15_000) {
    console.log(text);
    lastProgressAt = Date.now();
  }
  lastProgress = line;
}
async function stage<T>(name: string, fn: () => Promise<T>): Promise<T> {
  say(`\n▶ ${name}`);
  const start = Date.now();
  const r = await fn();
  const ms = Date.now() - start;
  stages.push({ name, ms });
  say(`✔ ${name} (${secs(ms)})`);
  return r;
}

// --- Ctrl-C ------------------------------------------------------------------
let aborted = false;
function checkAbort(): void {
  if (aborted) throw new Error('interrupted');
}
let wakeKeep: (() => void) | undefined;
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.on(sig, () => {
    if (aborted) {
      say('   (still cleaning up, please wait)');
      return;
    }
    aborted = true;
    say(`\n${sig}: stopping and removing everything the demo started…`);
    wakeKeep?.();
  });
}

// --- helpers -----------------------------------------------------------------
function describeNode(n: Record<string, any>): string {
  const dii = n.driver_internal_info ?? {};
  const step = n.clean_step?.step ?? n.deploy_step?.step;
  const parts = [`provision_state=${n.provision_state}${n.target_provision_state ? `→${n.target_provision_state}` : ''}`, `power=${n.power_state}`];
  if (step) parts.push(`step=${step}`);
  if (dii.agent_status_message) parts.push(`agent: ${dii.agent_status_message}`);
  else if (dii.agent_url) parts.push(`agent at ${dii.agent_url}`);
  else parts.push('no agent yet');
  return parts.join(' | ');
}

async function main(): Promise<number> {
  if (!existsSync(opt.image!)) throw new Error(`${opt.image} is missing: run \`make ramdisk guest-image\` (make demo does)`);
  let lab: RedfishLab | undefined;
  let result: Record<string, unknown> = { ok: false };
  let exitCode = 1;
  let poweredOnAt = 0;
  try {
    say('metal-agent demo: a qemu VM (TCG) behind a Redfish BMC, booted and deployed by a real Ironic 21.4 through `baremetal`');

    // 1. The lab: network without DHCP, Ironic (fast track), its HTTP server, the BMC.
    let imageUrl = '';
    let imageSha = '';
    await stage('lab: network without DHCP, Ironic (fast track), HTTP server, Redfish BMC', async () => {
      let started: RedfishLab;
      [started, imageSha] = await Promise.all([
        startRedfishLab({ tag: 'demo', machines: [MACHINE], fastTrack: true, check: checkAbort }),
        sha256File(opt.image!),
      ]);
      lab = started;
      imageUrl = started.serve(resolve(opt.image!));
      say(`   namespace ${started.net.ns.name}: bridge ${started.net.bridge} ${started.net.hostIp}/24, no DHCP server`);
      say(`   Ironic API ${started.ironic.url} (state ${started.ironic.stateDir}); its http_root and the image served at ${imageUrl.replace(/[^/]*$/, '')}`);
      say(`   image ${imageUrl} sha256 ${imageSha.slice(0, 16)}…`);
      say(`   Redfish BMC ${started.bmcUrl}/redfish/v1 (lab/redfish): machine ${MACHINE.id}, ${MACHINE.bootMode}, ${MACHINE.memoryMiB} MiB, ${MACHINE.diskGiB} GiB disk, off`);
      started.onEvent((e) => {
        if (e.system !== MACHINE.id) return;
        if (e.msg === 'power on') poweredOnAt = Date.now();
        const text = describeEvent(e);
        if (text) say(`   bmc: ${text}`);
      });
    });
    const l = lab!;
    const ironic = l.ironic;
    const bm = async (args: string[]): Promise<string> => {
      checkAbort();
      say(`   $ baremetal ${args.map(shellWord).join(' ')}`);
      return ironic.baremetal(args);
    };

    // 2. Enroll: hardware type redfish-kexec, the BMC's address and credentials, network_data.
    const uuid = await stage('enroll', async () => {
      checkAbort();
      return l.enroll(MACHINE, { driver: 'redfish-kexec', deployInterface: 'direct-kexec', echo: (line) => say(`   ${line}`) });
    });

    // 3. Manage: Ironic reads the power state through the BMC.
    await stage('manage', async () => {
      await bm(['node', 'manage', NODE, '--wait', '120']);
    });

    const waitState = async (targets: string[], fail: string[], limitSec: number, check?: () => void) => {
      const deadline = Date.now() + limitSec * 1000;
      for (;;) {
        checkAbort();
        const n = await ironic.node(uuid);
        progress(`${describeNode(n)}${poweredOnAt ? ` | VM on for ${secs(Date.now() - poweredOnAt)}` : ''}`);
        if (targets.includes(n.provision_state)) return n;
        if (fail.includes(n.provision_state)) throw new Error(`node went ${n.provision_state}: ${n.last_error}; serial:\n${l.serialText(MACHINE.id).slice(-3000)}`);
        check?.();
        if (Date.now() > deadline) throw new Error(`node still ${n.provision_state} after ${limitSec} s: ${describeNode(n)}`);
        await sleep(1000);
      }
    };

    // 4. Provide: automated cleaning; Ironic builds the ISO, inserts it, powers the machine on.
    let qemuPid: number | null = null;
    await stage('provide: automated cleaning to available (Ironic boots the VM from virtual media)', async () => {
      await bm(['node', 'provide', NODE]);
      await waitState(['available'], ['clean failed', 'error'], 1200);
      const n = await ironic.node(uuid);
      const m = await l.machine(MACHINE.id);
      qemuPid = m.qemuPid;
      say(`   agent ${n.driver_internal_info?.agent_url} kept heartbeating in available (fast track); BMC: ${m.powerState}, qemu pid ${m.qemuPid}`);
    });

    // 5. Deploy (direct-kexec: the deploy ends with the agent's kexec_handoff step and standby.run_image).
    const serialMark = l.serialText(MACHINE.id).length;
    const bootsBefore = l.serialText(MACHINE.id).match(/Linux version \S+/g) ?? [];
    const eventMark = l.events().length;
    const powerDuringDeploy = () => l.events().slice(eventMark).filter((e) => e.system === MACHINE.id && POWER_EVENTS.has(e.msg));
    const noPowerAction = () => {
      const p = powerDuringDeploy();
      if (p.length) throw new Error(`the BMC saw a power action during the deploy: ${JSON.stringify(p)}; serial:\n${l.serialText(MACHINE.id).slice(-3000)}`);
    };
    const deployStart = Date.now();
    // Milestones on the serial console (agent log, then the guest), timed from `baremetal node deploy`.
    const milestones: Array<{ what: string; ms: number }> = [];
    const watch = [
      { what: 'agent: image written, sha256 verified', re: /"progress":"write_image: done/ },
      { what: 'agent: kexec_handoff armed (direct-kexec)', re: /"progress":"kexec_handoff: loaded/ },
      { what: 'agent: standby.run_image received (direct-kexec)', re: /"command":"standby\.run_image"[^\n]*"command started"/ },
      { what: 'agent: kexec -e into the deployed kernel', re: /handing off to the deployed OS with kexec/ },
      { what: 'guest: kernel booting (same qemu run)', re: /Linux version \S+/ },
      { what: 'guest: init read the config drive', re: /metal-guest: hostname=/ },
    ];
    const mark = (what: string) => {
      const ms = Date.now() - deployStart;
      milestones.push({ what, ms });
      say(`   +${secs(ms).padStart(8)}  ${what}`);
    };
    let watching = true;
    const watcher = (async () => {
      while (watching && watch.length) {
        const text = l.serialText(MACHINE.id).slice(serialMark);
        while (watch.length && watch[0]!.re.test(text)) mark(watch.shift()!.what);
        await sleep(300);
      }
    })();
    const active = await stage('deploy: image + config drive, to active', async () => {
      await bm([
        'node', 'set', NODE,
        '--instance-info', `image_source=${imageUrl}`,
        '--instance-info', 'image_os_hash_algo=sha256',
        '--instance-info', `image_os_hash_value=${imageSha}`,
        '--instance-info', 'image_disk_format=raw',
      ]);
      await bm(['node', 'deploy', NODE, '--config-drive', JSON.stringify({ meta_data: { hostname: opt.hostname } })]);
      const n = await waitState(['active'], ['deploy failed', 'error'], 1800, noPowerAction);
      mark('ironic: node active');
      return n;
    });

    // 6. The kexec'd guest.
    const guest = await stage('guest console line (kexec timing: milestones below)', async () => {
      const deadline = Date.now() + 900_000;
      const re = /metal-guest: hostname=(\S*) cmdline=([^\r\n]*)/;
      for (;;) {
        checkAbort();
        const text = l.serialText(MACHINE.id).slice(serialMark);
        const m = re.exec(text);
        if (m) return { hostname: m[1]!, cmdline: m[2]!.trim(), line: m[0] };
        noPowerAction();
        // The ramdisk's init restarts an agent that exited: the handoff did not happen.
        if (/starting metal-agent \(run \d+\)/.test(text)) throw new Error(`the agent exited and was restarted instead of kexec'ing; serial:\n${text.slice(-3000)}`);
        if (Date.now() > deadline) throw new Error(`no guest console line; serial:\n${text.slice(-3000)}`);
        const kexec = /kexec[^\r\n]*/i.exec(text)?.[0];
        const linux = /Linux version (\S+)/.exec(text)?.[1];
        progress(linux ? `guest kernel ${linux} booting` : kexec ? kexec.slice(0, 100) : 'waiting for the handoff');
        await sleep(500);
      }
    });
    const deployMs = Date.now() - deployStart;
    await sleep(400);
    watching = false;
    await watcher;
    say(`   guest console: ${guest.line}`);
    const serial = l.serialText(MACHINE.id);
    const boots = serial.match(/Linux version \S+/g) ?? [];
    const machine = await l.machine(MACHINE.id);
    const final = await ironic.node(uuid);
    const bmcDuringDeploy = l.events().slice(eventMark).filter((e) => e.system === MACHINE.id).map((e) => e.msg);
    const powerOns = l.events().filter((e) => e.system === MACHINE.id && e.msg === 'power on').length;
    const sameQemu = machine.qemuPid !== null && machine.qemuPid === qemuPid;
    say(`   kernels booted since the BMC powered the VM on: ${boots.map((b) => b.slice(14)).join(' → ')}; BMC: ${machine.powerState}, ` +
      `qemu pid ${machine.qemuPid} (${sameQemu ? 'the same process as after cleaning' : `after cleaning it was ${qemuPid}`})`);
    say(`   BMC during the deploy: ${bmcDuringDeploy.join(', ') || 'nothing'}; power actions: ${powerDuringDeploy().length}; power-ons in the whole run: ${powerOns}`);
    say(`   deploy wall time (baremetal node deploy → node active and guest up): ${secs(deployMs)}`);

    result = {
      ok: final.provision_state === 'active' && guest.hostname === opt.hostname && powerDuringDeploy().length === 0 && sameQemu,
      node: {
        uuid,
        provision_state: final.provision_state,
        driver: final.driver,
        boot_interface: final.boot_interface,
        deploy_interface: final.deploy_interface,
        power_interface: final.power_interface,
        management_interface: final.management_interface,
        power_state: final.power_state,
        last_error: final.last_error ?? null,
      },
      activeAt: active.provision_updated_at ?? null,
      guest,
      kernelsBooted: boots.map((b) => b.slice(14)),
      kernelsBeforeDeploy: bootsBefore.map((b) => b.slice(14)),
      bmc: { powerState: machine.powerState, qemuPidAfterCleaning: qemuPid, qemuPidAtEnd: machine.qemuPid, eventsDuringDeploy: bmcDuringDeploy, powerOns },
      deployMs,
      stages,
      milestones,
    };

    say('\nstage timings');
    const w = Math.max(...stages.map((s) => s.name.length));
    for (const s of stages) say(`  ${s.name.padEnd(w)}  ${secs(s.ms).padStart(9)}`);
    say(`  ${'total'.padEnd(w)}  ${secs(Date.now() - t0).padStart(9)}`);
    say('\ndeploy milestones (from `baremetal node deploy`)');
    const mw = Math.max(...milestones.map((m) => m.what.length));
    for (const m of [...milestones].sort((a, b) => a.ms - b.ms)) say(`  ${m.what.padEnd(mw)}  ${('+' + secs(m.ms)).padStart(9)}`);
    say(result.ok ? `\nDEMO OK: node ${NODE} active, guest says hostname=${guest.hostname}, no power action during the deploy` : '\nDEMO FAILED');
    exitCode = result.ok ? 0 : 1;

    if (opt.keep && !aborted) {
      const env = `OS_ENDPOINT=${ironic.url} OS_AUTH_TYPE=none OS_BAREMETAL_API_VERSION=1.78`;
      say(`\nThe lab stays up (--keep). Explore it from another terminal:`);
      say(`  ip netns exec ${l.net.ns.name} env ${env} baremetal node list`);
      say(`  ip netns exec ${l.net.ns.name} env ${env} baremetal node show ${NODE}`);
      say(`  ip netns exec ${l.net.ns.name} curl -s -u ${l.username}:${l.password} ${l.bmcUrl}/redfish/v1/Systems/${MACHINE.id}   # the BMC`);
      say(`  tail -f ${l.serialLog(MACHINE.id)}                    # the VM's console`);
      say(`  less ${join(ironic.stateDir, 'ironic.log')}`);
      say(`Ctrl-C removes everything.`);
      await new Promise<void>((res) => (wakeKeep = res));
    }
  } catch (err) {
    clearProgress();
    console.error(`\nDEMO FAILED: ${(err as Error).message}`);
    result = { ...result, ok: false, error: (err as Error).message, stages };
    exitCode = aborted ? 130 : 1;
  } finally {
    clearProgress();
    const l = lab as RedfishLab | undefined;
    if (opt['serial-log'] && l) await writeFile(opt['serial-log'], l.serialText(MACHINE.id), 'latin1').catch(() => undefined);
    if (opt['ironic-log'] && l) await writeFile(opt['ironic-log'], l.ironic.log()).catch(() => undefined);
    if (opt['bmc-log'] && l) await writeFile(opt['bmc-log'], l.events().map((e) => JSON.stringify(e)).join('\n') + '\n').catch(() => undefined);
    if (opt['result-json']) await writeFile(opt['result-json'], JSON.stringify(result, null, 2) + '\n');
    say('\ncleaning up: BMC and VM, Ironic, HTTP server, namespace, temp files');
    await l?.destroy().catch((e: Error) => say(`   lab: ${e.message}`));
    say('done.');
  }
  return exitCode;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
