import type { ResultPromise } from 'execa';
import { existsSync } from 'node:fs';
import { mkdtemp, open, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import { REPO_ROOT } from '../helpers/netns.ts';
import { createVmNetwork, type VmNetwork } from './qemu-network.ts';
import { qmp, readText, waitForLog, writeSerial } from './qemu-serial.ts';

// Boots the ramdisk (build/vmlinuz + build/metal-agent.initramfs) in qemu under
// TCG, inside a test network namespace: a "bare-metal node" for e2e tests.
// The namespace side is the provisioning network, so a test can run Ironic
// there (at network.hostIp) and pass ipa-api-url in kernelArgs.
//
// CLI: npx tsx test/e2e/qemu.ts [--memory 512] [--disk 2048:virtio] [--disk 1024:nvme]
//        [--append 'ipa-standalone=1 ipa-enable-auto-tls=0'] [--shell] [--kernel F] [--initrd F]

export type DiskBus = 'virtio' | 'nvme' | 'sata' | 'scsi';

export interface DiskSpec {
  /** Size of a new sparse raw file; ignored when `file` is given. */
  sizeMiB?: number;
  /** An existing raw image to attach (the VM may write to it). */
  file?: string;
  bus?: DiskBus;
  /** Serial number the guest sees (lsblk SERIAL, root device hints). */
  serial?: string;
}

export interface VmOptions {
  kernel?: string;
  initrd?: string;
  memoryMiB?: number;
  cpus?: number;
  /** Network to join; a private one is created (and destroyed by stop) when absent. */
  network?: VmNetwork;
  mac?: string;
  disks?: DiskSpec[];
  /** Appended to the kernel command line (ipa-api-url=..., BOOTIF=..., metal.shell). */
  kernelArgs?: string[];
  /** 'tcg' by default: the product must work on machines without KVM. */
  accel?: 'tcg' | 'kvm';
  /** true (default): a guest reboot ends qemu, which a test sees as exit. */
  noReboot?: boolean;
  /**
   * UEFI (OVMF) with this file as its NVRAM: a copy of OVMF_VARS_TEMPLATE
   * that keeps the boot entries the agent made for the next run. SeaBIOS when absent.
   */
  uefiVars?: string;
  /** No -kernel/-initrd: the firmware boots from the disks, as a node does after a deploy. */
  bootFromDisk?: boolean;
  /** Anything else for qemu (more NICs, -boot order...). */
  extraQemuArgs?: string[];
}

/** Debian's ovmf package: firmware code (read-only) and the NVRAM template each VM copies. */
/**
 * TCG's translation cache in MiB. QEMU's default (1 GiB) is never full, so
 * every guest page that ever held executed code stays "code" to the emulator
 * for the whole run, and the first store to it later takes the
 * self-modifying-code slow path byte by byte (~13 ms a page). After
 * install_bootloader has run grub-install and grub-mkconfig (hundreds of
 * short processes), the pages they free come back that way: copying a 15 MB
 * kernel + initrd took 14-70 s (sampled vCPU RIPs: clear_page_erms's
 * `rep stosb`), 0.2-0.6 s with a cache small enough to be flushed now and
 * then. An emulator artifact: real hardware writes a page in well under a
 * microsecond.
 */
const TCG_TB_MIB = 256;

export const OVMF_CODE = '/usr/share/OVMF/OVMF_CODE_4M.fd';
export const OVMF_VARS_TEMPLATE = '/usr/share/OVMF/OVMF_VARS_4M.fd';

export interface Vm {
  mac: string;
  /** IPv4 address the VM gets by DHCP (a reservation made before boot). */
  ip: string;
  network: VmNetwork;
  workDir: string;
  serialLog: string;
  diskFiles: string[];
  /** Milliseconds since qemu was started. */
  elapsedMs(): number;
  serialText(): Promise<string>;
  waitForSerial(re: RegExp, timeoutMs: number, fromOffset?: number): Promise<RegExpExecArray>;
  /** Types into the serial console (a shell answers only with metal.shell). */
  sendSerial(text: string): Promise<void>;
  qmp(execute: string, args?: Record<string, unknown>): Promise<unknown>;
  /** GET from the namespace side (curl); https uses no certificate check. */
  httpGet(path: string, opts?: { https?: boolean; port?: number; timeoutSec?: number }): Promise<{ status: number; body: string }>;
  alive(): boolean;
  stop(): Promise<void>;
}

// BUILD=dir in make (METAL_AGENT_BUILD here) points tests at another build tree.
const BUILD_DIR = process.env.METAL_AGENT_BUILD ?? join(REPO_ROOT, 'build');
export const DEFAULT_KERNEL = join(BUILD_DIR, 'vmlinuz');
export const DEFAULT_INITRD = join(BUILD_DIR, 'metal-agent.initramfs');

let vmCounter = 0;

function diskArgs(disks: DiskSpec[], files: string[]): string[] {
  const args: string[] = [];
  let scsiBus = false;
  disks.forEach((d, i) => {
    const serial = d.serial ?? `MAI-DISK-${i}`;
    args.push('-drive', `file=${files[i]},format=raw,if=none,id=d${i},cache=unsafe,discard=unmap`);
    switch (d.bus ?? 'virtio') {
      case 'virtio':
        args.push('-device', `virtio-blk-pci,drive=d${i},serial=${serial}`);
        break;
      case 'nvme':
        args.push('-device', `nvme,drive=d${i},serial=${serial}`);
        break;
      case 'sata':
        // q35's own AHCI controller has six ports: ide.0 .. ide.5.
        args.push('-device', `ide-hd,drive=d${i},bus=ide.${i % 6},serial=${serial}`);
        break;
      case 'scsi':
        if (!scsiBus) args.push('-device', 'virtio-scsi-pci,id=scsi0');
        scsiBus = true;
        args.push('-device', `scsi-hd,drive=d${i},bus=scsi0.0,serial=${serial}`);
        break;
    }
  });
  return args;
}

/**
 * Runs a shell command on the VM's serial console (the ramdisk gives one with
 * metal.shell) and returns what it printed. The markers are split in the typed
 * line so the console's echo of it never matches.
 */
export async function serialShell(vm: Vm, cmd: string, timeoutMs = 60_000): Promise<string> {
  const tag = `T${Date.now()}`;
  const from = (await vm.serialText()).length;
  await vm.sendSerial(`echo ${tag}-""B; ${cmd}; echo ${tag}-""E\n`);
  const m = await vm.waitForSerial(new RegExp(`${tag}-B\\r?\\n([\\s\\S]*?)${tag}-E`), timeoutMs, from);
  return m[1]!.replace(/\r/g, '');
}

/** POSTs one agent command (plain http, ?wait=true) from the VM's network namespace; the parsed reply. */
export async function agentCommand(vm: Vm, name: string, params: unknown): Promise<any> {
  const url = `http://${vm.ip}:9999/v1/commands/?wait=true`;
  const r = await vm.network.ns.exec('curl', ['-sS', '-m', '300', '-X', 'POST', url, '-d', JSON.stringify({ name, params })]);
  return JSON.parse(r.stdout);
}

export async function startVm(opts: VmOptions = {}): Promise<Vm> {
  // E2E_KERNEL / E2E_INITRD boot another build (e.g. a quick zstd-fast one).
  const kernel = opts.kernel ?? process.env['E2E_KERNEL'] ?? DEFAULT_KERNEL;
  const initrd = opts.initrd ?? process.env['E2E_INITRD'] ?? DEFAULT_INITRD;
  for (const f of opts.bootFromDisk ? [] : [kernel, initrd]) {
    if (!existsSync(f)) throw new Error(`${f} is missing: run \`make kernel ramdisk\` first`);
  }
  for (const f of opts.uefiVars ? [OVMF_CODE, opts.uefiVars] : []) {
    if (!existsSync(f)) throw new Error(`${f} is missing (UEFI firmware: Debian's ovmf package)`);
  }
  const workDir = await mkdtemp(join(tmpdir(), 'mai-vm-'));
  const ownNetwork = !opts.network;
  const network = opts.network ?? (await createVmNetwork('vm'));
  let qemu: ResultPromise | undefined;
  try {
    const n = vmCounter++;
    const mac = opts.mac ?? `52:54:00:${hex(process.pid >> 8)}:${hex(process.pid)}:${hex(n)}`;
    const ip = await network.reserve(mac);
    const tap = await network.addTap();

    const disks = opts.disks ?? [{ sizeMiB: 1024 }];
    const diskFiles: string[] = [];
    for (const [i, d] of disks.entries()) {
      if (d.file) {
        diskFiles.push(resolve(d.file));
        continue;
      }
      const file = join(workDir, `disk${i}.raw`);
      const fh = await open(file, 'w');
      await fh.truncate((d.sizeMiB ?? 1024) * 1024 * 1024); // sparse
      await fh.close();
      diskFiles.push(file);
    }

    const serialLog = join(workDir, 'serial.log');
    const serialSock = join(workDir, 'serial.sock');
    const qmpSock = join(workDir, 'qmp.sock');
    // ipa-disk-wait-attempts=1: the VMs' disks are there at boot and most are smaller than
    // the 4 GiB a default root disk needs; the agent would wait 27 s for one at every start.
    const append = ['console=tty0', 'console=ttyS0,115200', 'printk.time=1', 'panic=-1', 'ipa-disk-wait-attempts=1', ...(opts.kernelArgs ?? [])];
    const args = [
      '-nodefaults', '-display', 'none',
      '-machine', 'q35',
      '-accel', (opts.accel ?? 'tcg') === 'tcg' ? `tcg,tb-size=${TCG_TB_MIB}` : 'kvm',
      '-cpu', 'max',
      '-m', String(opts.memoryMiB ?? 512),
      '-smp', String(opts.cpus ?? 1),
      ...(opts.uefiVars
        ? ['-drive', `if=pflash,format=raw,unit=0,readonly=on,file=${OVMF_CODE}`, '-drive', `if=pflash,format=raw,unit=1,file=${opts.uefiVars}`]
        : []),
      ...(opts.bootFromDisk ? [] : ['-kernel', kernel, '-initrd', initrd, '-append', append.join(' ')]),
      '-chardev', `socket,id=ser0,path=${serialSock},server=on,wait=off,logfile=${serialLog}`,
      '-serial', 'chardev:ser0',
      '-qmp', `unix:${qmpSock},server=on,wait=off`,
      '-netdev', `tap,id=n0,ifname=${tap},script=no,downscript=no`,
      '-device', `virtio-net-pci,netdev=n0,mac=${mac}`,
      '-device', 'virtio-rng-pci', // entropy for TLS keys without waiting
      ...(opts.noReboot === false ? [] : ['-no-reboot']),
      ...diskArgs(disks, diskFiles),
      ...(opts.extraQemuArgs ?? []),
    ];
    const started = Date.now();
    qemu = network.ns.spawn('qemu-system-x86_64', args);
    let exited = false;
    void qemu.then(() => (exited = true));
    const proc = qemu;

    const vm: Vm = {
      mac, ip, network, workDir, serialLog, diskFiles,
      elapsedMs: () => Date.now() - started,
      serialText: () => readText(serialLog),
      waitForSerial: (re, timeoutMs, fromOffset) =>
        waitForLog(serialLog, re, { timeoutMs, fromOffset, isAlive: () => !exited }),
      sendSerial: (text) => writeSerial(serialSock, text),
      qmp: (execute, qargs) => qmp(qmpSock, execute, qargs),
      async httpGet(path, o = {}) {
        const url = `${o.https ? 'https' : 'http'}://${ip}:${o.port ?? 9999}${path}`;
        const r = await network.ns.exec('curl', ['-sS', '-k', '-m', String(o.timeoutSec ?? 10), '-w', '\n%{http_code}', url]);
        if (r.exitCode !== 0) throw new Error(`GET ${url}: ${r.stderr.trim()}`);
        const cut = r.stdout.lastIndexOf('\n');
        return { status: Number(r.stdout.slice(cut + 1)), body: r.stdout.slice(0, cut) };
      },
      alive: () => !exited,
      async stop() {
        if (!exited) {
          await vm.qmp('quit').catch(() => undefined);
          for (let i = 0; i < 50 && !exited; i++) await sleep(100);
          if (!exited) proc.kill('SIGKILL');
          await proc;
        }
        if (ownNetwork) await network.destroy();
        await rm(workDir, { recursive: true, force: true });
      },
    };
    // qemu creates its sockets right after start; wait so sendSerial/qmp work at once.
    for (let i = 0; i < 100 && !existsSync(qmpSock) && !exited; i++) await sleep(50);
    if (exited) throw new Error(`qemu exited at once: ${String((await proc).stderr)}`);
    return vm;
  } catch (err) {
    if (qemu && qemu.exitCode === null) {
      qemu.kill('SIGKILL');
      await qemu;
    }
    if (ownNetwork) await network.destroy();
    await rm(workDir, { recursive: true, force: true });
    throw err;
  }
}

function hex(n: number): string {
  return (n & 0xff).toString(16).padStart(2, '0');
}

// --- CLI ---------------------------------------------------------------------
async function cli(): Promise<void> {
  const { values } = parseArgs({
    options: {
      memory: { type: 'string', default: '512' },
      disk: { type: 'string', multiple: true, default: ['2048:virtio'] },
      append: { type: 'string', default: 'ipa-standalone=1 ipa-enable-auto-tls=0' },
      shell: { type: 'boolean', default: false },
      kvm: { type: 'boolean', default: false },
      kernel: { type: 'string', default: DEFAULT_KERNEL },
      initrd: { type: 'string', default: DEFAULT_INITRD },
    },
  });
  const vm = await startVm({
    kernel: values.kernel,
    initrd: values.initrd,
    memoryMiB: Number(values.memory),
    disks: values.disk.map((d) => {
      const [size, bus] = d.split(':');
      return { sizeMiB: Number(size), bus: (bus ?? 'virtio') as DiskBus };
    }),
    kernelArgs: [...values.append.split(/\s+/).filter(Boolean), ...(values.shell ? ['metal.shell'] : [])],
    accel: values.kvm ? 'kvm' : 'tcg',
  });
  console.log(`VM up: mac ${vm.mac}, ip ${vm.ip} in namespace ${vm.network.ns.name}; serial log ${vm.serialLog}`);
  console.log(`  e.g. ip netns exec ${vm.network.ns.name} curl http://${vm.ip}:9999/v1/status ; Ctrl-C stops it`);
  let stopping = false;
  const stop = () => {
    if (stopping) return;
    stopping = true;
    void vm.stop().then(() => process.exit(0));
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
  const m = await vm.waitForSerial(/API listening/, 600_000).catch((e: Error) => e);
  console.log(m instanceof Error ? m.message : `agent listening after ${(vm.elapsedMs() / 1000).toFixed(1)} s`);
}

if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  cli().catch((err: unknown) => {
    console.error(err);
    process.exit(1);
  });
}
