import { existsSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { execa } from 'execa';
import { startIronic, type Ironic } from '../../test/helpers/ironic.ts';
import { REPO_ROOT } from '../../test/helpers/netns.ts';
import { createVmNetwork, type VmNetwork } from '../../test/e2e/qemu-network.ts';

// A lab where only Ironic powers and boots the nodes, shared by `make demo`
// (scripts/demo.ts) and bench/handoff.ts: a namespace with a bridge and NO
// DHCP server, a real Ironic 21.4 there, an HTTP server for Ironic's
// http_root (the ISOs it builds) and the deploy images, and the project's
// Redfish BMC emulator (lab/redfish) owning one qemu machine per node. Nodes
// are enrolled on a redfish hardware type with redfish power and management
// and redfish-virtual-media boot: Ironic builds the deploy ISO from
// deploy_kernel + deploy_ramdisk (+ the ESP image for UEFI, isolinux for BIOS)
// with the node's network_data (a static IPv4 address) in it, inserts it
// through the BMC, sets the boot device and powers the machine on. The
// harness never starts, resets or stops a machine itself (only destroy(),
// through the emulator's own shutdown).

export const BUILD = process.env.METAL_AGENT_BUILD ?? join(REPO_ROOT, 'build');
export const KERNEL = join(BUILD, 'vmlinuz');
export const RAMDISK = join(BUILD, 'metal-agent.initramfs');
export const ESP = join(BUILD, 'metal-agent-esp.img');
const EMULATOR = join(REPO_ROOT, 'lab', 'redfish', 'emulator.ts');
const TSX = join(REPO_ROOT, 'node_modules', '.bin', 'tsx');
export const HOST = '192.0.2.1';
export const IRONIC_PORT = 6385;
export const HTTP_PORT = 8630;
const BMC_PORT = 8631;

export interface LabMachine {
  /** Redfish system id (and the node's name). */
  id: string;
  /** Firmware: UEFI (OVMF) or Legacy (SeaBIOS); Ironic sets it from the node's boot_mode capability. */
  bootMode: 'UEFI' | 'Legacy';
  mac: string;
  /** The static IPv4 address the node's network_data gives it (192.0.2.0/24). */
  ip: string;
  diskGiB?: number;
  memoryMiB?: number;
}

export interface BmcEvent {
  time: string;
  msg: string;
  system?: string;
  [k: string]: unknown;
}

export interface RedfishLab {
  net: VmNetwork;
  ironic: Ironic;
  dir: string;
  /** The BMC's Redfish endpoint (reachable inside the namespace, where Ironic runs). */
  bmcUrl: string;
  username: string;
  password: string;
  /** The machine's serial console, appended across its power cycles. */
  serialLog(id: string): string;
  serialText(id: string): string;
  /** Every event the BMC printed so far (power on/off, reset, boot set, media inserted/ejected...). */
  events(): BmcEvent[];
  onEvent(cb: (e: BmcEvent) => void): void;
  /** http://HOST:HTTP_PORT/NAME for a file, served from Ironic's http_root. */
  serve(path: string): string;
  /** Enrolls a machine as a node with its port and network_data; returns the node's uuid. */
  enroll(m: LabMachine, opts: { driver: string; deployInterface: string; echo?: (line: string) => void }): Promise<string>;
  /** The BMC's view of a machine: Redfish PowerState and the pid of the qemu that is the machine now. */
  machine(id: string): Promise<{ powerState: string; qemuPid: number | null }>;
  destroy(): Promise<void>;
}

export function networkData(mac: string, ip: string) {
  return {
    links: [{ id: 'port0', type: 'phy', ethernet_mac_address: mac }],
    networks: [{ id: 'net0', network_id: 'provisioning', type: 'ipv4', link: 'port0', ip_address: ip, netmask: '255.255.255.0' }],
    services: [],
  };
}

/** Quotes an argument the way a reader would type it (for echoed commands). */
export function shellWord(a: string): string {
  return /[\s{}"]/.test(a) ? `'${a}'` : a;
}

export async function startRedfishLab(opts: {
  tag: string;
  machines: LabMachine[];
  fastTrack?: boolean;
  /** More Ironic configuration (appended after the lab's own). */
  extraConf?: string;
  /** Called between steps: throws to abort (Ctrl-C). */
  check?: () => void;
}): Promise<RedfishLab> {
  for (const f of [KERNEL, RAMDISK, ESP]) if (!existsSync(f)) throw new Error(`${f} is missing: run \`make ramdisk\``);
  const dir = await mkdtemp(join(tmpdir(), `mai-${opts.tag}-lab-`));
  const password = `pw-${process.pid}-${Date.now() % 100000}`;
  const bmcUrl = `http://127.0.0.1:${BMC_PORT}`;
  let net: VmNetwork | undefined;
  let ironic: Ironic | undefined;
  let emulator: ReturnType<VmNetwork['ns']['spawn']> | undefined;
  let out = '';
  const events: BmcEvent[] = [];
  const listeners: Array<(e: BmcEvent) => void> = [];

  const destroy = async () => {
    if (emulator && emulator.exitCode === null) {
      emulator.kill('SIGTERM'); // the emulator powers its machines off before it exits
      await Promise.race([emulator, sleep(20_000)]);
    }
    // Whatever qemu is left (an emulator killed hard): by its pid file, only if it is this lab's qemu.
    for (const m of opts.machines) {
      const pidFile = join(dir, 'bmc', `${m.id}-qemu.pid`);
      const pid = existsSync(pidFile) ? Number(readFileSync(pidFile, 'utf8').trim()) : NaN;
      if (!Number.isInteger(pid) || pid <= 1) continue;
      const cmd = existsSync(`/proc/${pid}/cmdline`) ? readFileSync(`/proc/${pid}/cmdline`, 'utf8') : '';
      if (cmd.includes('qemu-system') && cmd.includes(dir)) process.kill(pid, 'SIGKILL');
    }
    await ironic?.stop().catch(() => undefined);
    await net?.destroy().catch(() => undefined);
    await rm(dir, { recursive: true, force: true });
  };

  try {
    net = await createVmNetwork(opts.tag, { dhcp: false });
    opts.check?.();
    ironic = await startIronic({
      netns: net.ns.name,
      hostIp: HOST,
      port: IRONIC_PORT,
      fastTrack: opts.fastTrack ?? false,
      heartbeatTimeoutSec: 30,
      fileUrlPaths: [BUILD],
      extraConf: [
        '[DEFAULT]',
        'isolinux_bin = /usr/lib/ISOLINUX/isolinux.bin', // Debian's path (Ironic's default is Fedora's)
        '[deploy]',
        `http_url = http://${HOST}:${HTTP_PORT}`,
        'erase_devices_priority = 0', // metadata erase only: a full erase of the VM disk under TCG would dominate
        '[redfish]',
        'use_swift = false',
        'kernel_append_params = console=ttyS0,115200 ipa-disk-wait-attempts=1',
        opts.extraConf ?? '',
        '',
      ].join('\n'),
    });
    opts.check?.();
    mkdirSync(join(ironic.stateDir, 'http'), { recursive: true });
    // /usr/bin/python3 itself: a version manager's shim would leave the server behind when stopped.
    net.ns.spawn('/usr/bin/python3', ['-m', 'http.server', '--bind', HOST, '--directory', join(ironic.stateDir, 'http'), String(HTTP_PORT)]);

    const machines = [];
    for (const m of opts.machines) {
      const disk = join(dir, `${m.id}.raw`);
      await execa('truncate', ['-s', `${m.diskGiB ?? 8}G`, disk]); // sparse; the agent wants a root disk over 4 GiB
      machines.push({ id: m.id, bootMode: m.bootMode, disk, mac: m.mac, tap: await net.addTap(), serialLog: join(dir, `${m.id}.serial`), memoryMiB: m.memoryMiB ?? 512 });
      writeFileSync(join(dir, `${m.id}.serial`), '');
    }
    const cfg = join(dir, 'emulator.json');
    writeFileSync(cfg, JSON.stringify({ host: '127.0.0.1', port: BMC_PORT, username: 'admin', password, workDir: join(dir, 'bmc'), machines }));
    emulator = net.ns.spawn(TSX, [EMULATOR, cfg]);
    let partial = '';
    emulator.stdout?.on('data', (d: Buffer) => {
      out += d.toString();
      partial += d.toString();
      let nl: number;
      while ((nl = partial.indexOf('\n')) >= 0) {
        const line = partial.slice(0, nl);
        partial = partial.slice(nl + 1);
        if (!line.startsWith('{')) continue;
        try {
          const e = JSON.parse(line) as BmcEvent;
          events.push(e);
          for (const cb of listeners) cb(e);
        } catch {
          // not an event line
        }
      }
    });
    for (let i = 0; i < 150 && !events.some((e) => e.msg === 'listening'); i++) await sleep(200);
    if (!events.some((e) => e.msg === 'listening')) throw new Error(`the Redfish emulator did not start: ${out.slice(-2000)}`);
  } catch (err) {
    await destroy();
    throw err;
  }

  const lab: RedfishLab = {
    net,
    ironic,
    dir,
    bmcUrl,
    username: 'admin',
    password,
    serialLog: (id) => join(dir, `${id}.serial`),
    serialText: (id) => {
      try {
        return readFileSync(join(dir, `${id}.serial`), 'latin1');
      } catch {
        return '';
      }
    },
    events: () => [...events],
    onEvent: (cb) => void listeners.push(cb),
    serve(path) {
      const link = join(ironic!.stateDir, 'http', basename(path));
      if (!existsSync(link)) symlinkSync(path, link);
      return `http://${HOST}:${HTTP_PORT}/${basename(path)}`;
    },
    async enroll(m, o) {
      const ndFile = join(dir, `${m.id}-network-data.json`);
      writeFileSync(ndFile, JSON.stringify(networkData(m.mac, m.ip)));
      const args = [
        'node', 'create', '--name', m.id, '--driver', o.driver,
        '--power-interface', 'redfish', '--management-interface', 'redfish',
        '--boot-interface', 'redfish-virtual-media', '--deploy-interface', o.deployInterface,
        '--driver-info', `redfish_address=${bmcUrl}`,
        '--driver-info', `redfish_system_id=/redfish/v1/Systems/${m.id}`,
        '--driver-info', 'redfish_username=admin',
        '--driver-info', `redfish_password=${password}`,
        '--driver-info', `deploy_kernel=file://${KERNEL}`,
        '--driver-info', `deploy_ramdisk=file://${RAMDISK}`,
        '--driver-info', `bootloader=file://${ESP}`,
        '--property', `capabilities=boot_mode:${m.bootMode === 'UEFI' ? 'uefi' : 'bios'}`,
        '--network-data', ndFile,
        '-f', 'value', '-c', 'uuid',
      ];
      o.echo?.(`$ baremetal ${args.map((a) => (a.startsWith('redfish_password=') ? 'redfish_password=…' : shellWord(a))).join(' ')}`);
      const uuid = (await ironic!.baremetal(args)).trim();
      o.echo?.(`$ baremetal port create ${m.mac} --node ${uuid}`);
      await ironic!.baremetal(['port', 'create', m.mac, '--node', uuid]);
      return uuid;
    },
    async machine(id) {
      const r = await net!.ns.exec('curl', ['-fsS', '-m', '10', '-u', `admin:${password}`, `${bmcUrl}/redfish/v1/Systems/${id}`]);
      const powerState = r.exitCode === 0 ? String((JSON.parse(r.stdout) as { PowerState?: string }).PowerState) : `unknown (${r.stderr.trim()})`;
      const pidFile = join(dir, 'bmc', `${id}-qemu.pid`);
      const pid = existsSync(pidFile) ? Number(readFileSync(pidFile, 'utf8').trim()) : NaN;
      const alive = Number.isInteger(pid) && pid > 1 && existsSync(`/proc/${pid}`);
      return { powerState, qemuPid: alive ? pid : null };
    },
    destroy,
  };
  return lab;
}

/** A one-line summary of a BMC event for a console. */
export function describeEvent(e: BmcEvent): string | undefined {
  switch (e.msg) {
    case 'power on': {
      const order = Object.entries((e.bootOrder as Record<string, number>) ?? {}).sort((a, b) => a[1] - b[1]).map(([d]) => d);
      return `power on (${e.mode === 'UEFI' ? 'UEFI: OVMF' : 'Legacy: SeaBIOS'}, boot order ${order.join(' > ')}${e.cd ? `, CD ${String(e.cd).split('/').pop()}` : ''})`;
    }
    case 'power off':
      return `power off (${e.byBmc ? 'by the BMC' : `the guest: ${e.reason ?? 'exit'}`})`;
    case 'reset':
      return `reset ${e.type} (was ${e.powerState})`;
    case 'boot set':
      return `boot override ${JSON.stringify(e.patch)}`;
    case 'media inserted':
      return `virtual CD inserted: ${e.image}`;
    case 'media ejected':
      return 'virtual CD ejected';
    default:
      return undefined;
  }
}

/** The events that change a machine's power: none may happen while a kexec deploy runs. */
export const POWER_EVENTS = new Set(['power on', 'power off', 'reset']);
