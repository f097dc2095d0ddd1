// `make demo`: the whole life of a bare-metal node, end to end, with the
// agent in its ramdisk in a qemu VM and a real, unmodified-API Ironic 21.4
// driving it through its own CLI (`baremetal`):
//
//   enroll -> manage -> provide (automated cleaning) -> deploy (Debian 12
//   guest image + config drive) -> kexec into the deployed OS (no reset) ->
//   the guest prints the hostname from its config drive.
//
// Network: a namespace with a bridge, SLAAC only (radvd, no DHCP server); the
// ramdisk boots with `ipa-api-url=mdns` and finds Ironic over mDNS. Ironic
// runs there with mDNS and fast track on, and the project's Ironic plugin
// (ironic-plugin/, loaded through Ironic's entry points): the node's deploy
// interface `direct-kexec` ends the deploy with standby.run_image, which the
// agent answers with a kexec, instead of a power cycle (docs/demo.md).
//
//   npx tsx scripts/demo.ts [--keep] [--hostname NAME] [--result-json FILE]
//        [--serial-log FILE] [--ironic-log FILE] [--api-url http|mdns] [--memory MiB]
//
// --keep leaves everything running after the guest is up and prints how to
// look around; Ctrl-C (any time) removes everything the demo started.
import { createReadStream, existsSync } from 'node:fs';
import { copyFile, writeFile } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import { dirname, join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import { startIronic, type Ironic } from '../test/helpers/ironic.ts';
import { REPO_ROOT } from '../test/helpers/netns.ts';
import { DEFAULT_INITRD, DEFAULT_KERNEL, startVm, type Vm } from '../test/e2e/qemu.ts';
import { createSlaacNetwork, type SlaacNetwork } from './demo/lab.ts';

const { values: opt } = parseArgs({
  options: {
    keep: { type: 'boolean', default: false },
    hostname: { type: 'string', default: 'demo-guest' },
    'result-json': { type: 'string' },
    'serial-log': { type: 'string' },
    'ironic-log': { type: 'string' },
    'api-url': { type: 'string', default: 'mdns' },
    memory: { type: 'string', default: '512' },
    image: { type: 'string', default: join(REPO_ROOT, 'build', 'guest.raw') },
  },
});

const MAC = '52:54:00:de:00:01';
const NODE = 'demo-node';
const PORT = 6385;
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
async function sha256(path: string): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(path)) h.update(chunk as Buffer);
  return h.digest('hex');
}

function describeNode(n: Record<string, any>): string {
  const dii = n.driver_internal_info ?? {};
  const step = n.clean_step?.step ?? n.deploy_step?.step;
  const parts = [`provision_state=${n.provision_state}${n.target_provision_state ? `→${n.target_provision_state}` : ''}`];
  if (step) parts.push(`step=${step}`);
  if (dii.agent_status_message) parts.push(`agent: ${dii.agent_status_message}`);
  else if (dii.agent_url) parts.push(`agent at ${dii.agent_url}`);
  else parts.push('no agent yet');
  return parts.join(' | ');
}

async function main(): Promise<number> {
  for (const f of [DEFAULT_KERNEL, DEFAULT_INITRD, opt.image]) {
    if (!existsSync(f)) throw new Error(`${f} is missing: run \`make ramdisk guest-image\` (make demo does)`);
  }
  let net: SlaacNetwork | undefined;
  let ironic: Ironic | undefined;
  let vm: Vm | undefined;
  let result: Record<string, unknown> = { ok: false };
  let exitCode = 1;
  try {
    say('metal-agent demo: a qemu VM (TCG) booting our ramdisk, driven by a real Ironic 21.4 through `baremetal`');

    // 1. The lab: SLAAC-only network, image server, Ironic with mDNS + fast track.
    let imageUrl = '';
    let imageSha = '';
    await stage('lab: SLAAC-only network, image server, Ironic (mDNS, fast track)', async () => {
      net = await createSlaacNetwork('demo');
      say(`   namespace ${net.ns.name}: bridge ${net.bridge} ${net.hostIp}/64, radvd (SLAAC), no DHCP server`);
      [imageUrl, imageSha] = await Promise.all([net.serveFile(resolve(opt.image)), sha256(opt.image)]);
      say(`   image ${imageUrl} sha256 ${imageSha.slice(0, 16)}…`);
      checkAbort();
      ironic = await startIronic({
        // The deploy kernel and ramdisk are file:// URLs into build/, wherever this clone is.
        fileUrlPaths: [dirname(DEFAULT_KERNEL), dirname(DEFAULT_INITRD)],
        netns: net.ns.name,
        hostIp: net.hostIp,
        port: PORT,
        mdns: true,
        fastTrack: true,
        heartbeatTimeoutSec: 30,
        // A full-disk erase of the VM's disk under TCG would dominate the run; operators switch it off the same way.
        extraConf: '[deploy]\nerase_devices_priority = 0\n',
      });
      say(`   Ironic API ${ironic.url} (state ${ironic.stateDir}), published over mDNS`);
    });
    const bm = async (args: string[]): Promise<string> => {
      checkAbort();
      say(`   $ baremetal ${args.map((a) => (/[\s{}"]/.test(a) ? `'${a}'` : a)).join(' ')}`);
      return ironic!.baremetal(args);
    };

    // 2. Enroll.
    const uuid = await stage('enroll', async () => {
      const id = (
        await bm([
          'node', 'create', '--name', NODE, '--driver', 'manual-management-kexec',
          '--management-interface', 'noop', '--power-interface', 'fake', '--boot-interface', 'pxe', '--deploy-interface', 'direct-kexec',
          '--driver-info', `deploy_kernel=file://${DEFAULT_KERNEL}`, '--driver-info', `deploy_ramdisk=file://${DEFAULT_INITRD}`,
          '-f', 'value', '-c', 'uuid',
        ])
      ).trim();
      await bm(['port', 'create', MAC, '--node', id]);
      return id;
    });

    // 3. Manage.
    await stage('manage', async () => {
      await bm(['node', 'manage', NODE, '--wait', '60']);
    });

    // 4. Provide: automated cleaning; the VM is "powered on" with the ramdisk.
    const waitState = async (targets: string[], fail: string[], limitSec: number) => {
      const deadline = Date.now() + limitSec * 1000;
      for (;;) {
        checkAbort();
        const n = await ironic!.node(uuid);
        progress(`${describeNode(n)} | VM ${secs(vm?.elapsedMs() ?? 0)}`);
        if (targets.includes(n.provision_state)) return n;
        if (fail.includes(n.provision_state)) throw new Error(`node went ${n.provision_state}: ${n.last_error}`);
        if (vm && !vm.alive()) throw new Error(`the VM stopped (reset or power-off); serial:\n${(await vm.serialText()).slice(-3000)}`);
        if (Date.now() > deadline) throw new Error(`node still ${n.provision_state} after ${limitSec} s: ${describeNode(n)}`);
        await sleep(1000);
      }
    };
    const apiArg = opt['api-url'] === 'http' ? `http://[${net!.hostIp}]:${PORT}` : opt['api-url']!;
    await stage('provide: automated cleaning to available (VM boots the ramdisk)', async () => {
      await bm(['node', 'provide', NODE]);
      vm = await startVm({
        network: net,
        mac: MAC,
        memoryMiB: Number(opt.memory),
        noReboot: true, // a reset (instead of a kexec) ends qemu, and the demo sees it
        disks: [{ sizeMiB: 8192, bus: 'virtio', serial: 'DEMO-DISK-0' }], // sparse; the agent wants >= 4 GiB (IPA's rule),
        // No ipa-kexec=1: the deploy interface direct-kexec arms the handoff itself.
        kernelArgs: [`ipa-api-url=${apiArg}`, `BOOTIF=01-${MAC.replace(/:/g, '-')}`],
      });
      say(`   VM started: qemu -no-reboot (a reset would end it), kernel args ipa-api-url=${apiArg}; serial log ${vm.serialLog}`);
      await waitState(['available'], ['clean failed', 'error'], 1200);
      const n = await ironic!.node(uuid);
      say(`   agent ${n.driver_internal_info?.agent_url} kept heartbeating in available (fast track)`);
    });

    // 5. Deploy (direct-kexec: the deploy ends with the agent's kexec_handoff step and standby.run_image).
    const bootsBefore = (await vm!.serialText()).match(/Linux version \S+/g) ?? [];
    const serialMark = (await vm!.serialText()).length;
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
        const text = (await vm!.serialText()).slice(serialMark);
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
      const n = await waitState(['active'], ['deploy failed', 'error'], 1800);
      mark('ironic: node active');
      return n;
    });

    // 6. The kexec'd guest.
    const guest = await stage('guest console line (kexec timing: milestones below)', async () => {
      const deadline = Date.now() + 900_000;
      const re = /metal-guest: hostname=(\S*) cmdline=([^\r\n]*)/;
      for (;;) {
        checkAbort();
        const text = (await vm!.serialText()).slice(serialMark);
        const m = re.exec(text);
        if (m) return { hostname: m[1]!, cmdline: m[2]!.trim(), line: m[0] };
        if (!vm!.alive()) throw new Error(`the VM ended (a reset with -no-reboot, or a power-off); serial:\n${text.slice(-3000)}`);
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
    const serial = await vm!.serialText();
    const boots = serial.match(/Linux version \S+/g) ?? [];
    const qemuStatus = (await vm!.qmp('query-status')) as { status?: string; running?: boolean } | undefined;
    const final = await ironic!.node(uuid);
    say(`   kernels booted in this one qemu run: ${boots.map((b) => b.slice(14)).join(' → ')}; qemu status ${qemuStatus?.status} (still the first run: -no-reboot)`);
    say(`   deploy wall time (baremetal node deploy → node active and guest up): ${secs(deployMs)}`);

    result = {
      ok: final.provision_state === 'active' && guest.hostname === opt.hostname,
      node: {
        uuid,
        provision_state: final.provision_state,
        driver: final.driver,
        deploy_interface: final.deploy_interface,
        power_interface: final.power_interface,
        power_state: final.power_state,
        last_error: final.last_error ?? null,
      },
      activeAt: active.provision_updated_at ?? null,
      guest,
      kernelsBooted: boots.map((b) => b.slice(14)),
      kernelsBeforeDeploy: bootsBefore.map((b) => b.slice(14)),
      qemuStatus: qemuStatus?.status ?? null,
      vmAlive: vm!.alive(),
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
    say(result.ok ? `\nDEMO OK: node ${NODE} active, guest says hostname=${guest.hostname}` : '\nDEMO FAILED');
    exitCode = result.ok ? 0 : 1;

    if (opt.keep && !aborted) {
      const env = `OS_ENDPOINT=${ironic!.url} OS_AUTH_TYPE=none OS_BAREMETAL_API_VERSION=1.78`;
      say(`\nThe lab stays up (--keep). Explore it from another terminal:`);
      say(`  ip netns exec ${net!.ns.name} env ${env} baremetal node list`);
      say(`  ip netns exec ${net!.ns.name} env ${env} baremetal node show ${NODE}`);
      say(`  ip netns exec ${net!.ns.name} env ${env} baremetal port list`);
      say(`  tail -f ${vm!.serialLog}                    # the guest's console`);
      say(`  socat - UNIX-CONNECT:${join(vm!.workDir, 'serial.sock')}   # a root shell in the guest`);
      say(`  less ${join(ironic!.stateDir, 'ironic.log')}`);
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
    if (opt['serial-log'] && vm) await copyFile(vm.serialLog, opt['serial-log']).catch(() => undefined);
    if (opt['ironic-log'] && ironic) await writeFile(opt['ironic-log'], ironic.log()).catch(() => undefined);
    if (opt['result-json']) await writeFile(opt['result-json'], JSON.stringify(result, null, 2) + '\n');
    say('\ncleaning up: VM, Ironic, image server, radvd, namespace, temp files');
    await vm?.stop().catch((e: Error) => say(`   VM: ${e.message}`));
    await ironic?.stop().catch((e: Error) => say(`   Ironic: ${e.message}`));
    await net?.destroy().catch((e: Error) => say(`   network: ${e.message}`));
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
