import { spawn, type ChildProcess } from 'node:child_process';
import { copyFileSync, createWriteStream, existsSync, openSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { QmpClient, type QmpEvent } from './qmp.ts';

// One emulated server behind the BMC: a qemu VM started at power on and ended
// at power off, the way a BMC switches a real board. What Redfish sets (the
// boot source override, the boot mode, the virtual CD) takes effect the way it
// would on hardware: the override and the firmware at the next power on, the
// CD at once (QMP changes the medium of a running VM).

export const BOOT_TARGETS = ['None', 'Pxe', 'Cd', 'Hdd'] as const;
export const BOOT_ENABLED = ['Disabled', 'Once', 'Continuous'] as const;
export const BOOT_MODES = ['UEFI', 'Legacy'] as const;
export const RESET_TYPES = ['On', 'ForceOff', 'GracefulShutdown', 'ForceRestart', 'GracefulRestart', 'PowerCycle', 'Nmi'] as const;
export type BootTarget = (typeof BOOT_TARGETS)[number];
export type BootEnabled = (typeof BOOT_ENABLED)[number];
export type BootMode = (typeof BOOT_MODES)[number];
export type ResetType = (typeof RESET_TYPES)[number];

export interface MachineSpec {
  /** Redfish Id of the ComputerSystem (and, prefixed "bmc-", of its Manager). */
  id: string;
  /** Boot mode at emulator start: UEFI runs OVMF, Legacy SeaBIOS. Redfish may change it. */
  bootMode: BootMode;
  /** Raw disk image the VM sees as its virtio disk. */
  disk: string;
  mac: string;
  /** Existing tap device (in the emulator's network namespace) for the VM's NIC. */
  tap: string;
  /** The VM's serial console, appended across power cycles. */
  serialLog: string;
  memoryMiB?: number;
}

export const OVMF_CODE = '/usr/share/OVMF/OVMF_CODE_4M.fd';
const OVMF_VARS_TEMPLATE = '/usr/share/OVMF/OVMF_VARS_4M.fd';
/** See test/e2e/qemu.ts: TCG's translation cache kept small for speed after many short processes. */
const TCG_TB_MIB = 256;

export interface Media {
  image: string | null;
  inserted: boolean;
  writeProtected: boolean;
  /** The downloaded copy the VM reads. */
  file?: string;
}

export class Machine {
  boot: { target: BootTarget; enabled: BootEnabled; mode: BootMode };
  readonly cd: Media = { image: null, inserted: false, writeProtected: true };
  private proc?: ChildProcess;
  private qmp?: QmpClient;
  /** Why the running qemu last stopped its guest (QMP SHUTDOWN reason). */
  private shutdownReason?: string;
  /** Set while the BMC itself ends qemu, so that its exit is not taken for a guest reboot. */
  private stopping = false;
  private readonly varsFile: string;
  private readonly qmpSock: string;
  readonly pidFile: string;
  /** Power-on count, for logs and tests. */
  boots = 0;

  constructor(
    readonly spec: MachineSpec,
    private readonly workDir: string,
    private readonly log: (msg: string, extra?: Record<string, unknown>) => void,
  ) {
    this.boot = { target: 'None', enabled: 'Disabled', mode: spec.bootMode };
    // NVRAM survives power cycles (the boot entries the agent writes), as on a board.
    this.varsFile = join(workDir, `${spec.id}-OVMF_VARS.fd`);
    if (!existsSync(this.varsFile)) copyFileSync(OVMF_VARS_TEMPLATE, this.varsFile);
    this.qmpSock = join(workDir, `${spec.id}-qmp.sock`);
    this.pidFile = join(workDir, `${spec.id}-qemu.pid`);
  }

  get powerState(): 'On' | 'Off' {
    return this.proc && this.proc.exitCode === null && this.proc.signalCode === null ? 'On' : 'Off';
  }

  async reset(type: ResetType): Promise<void> {
    this.log('reset', { system: this.spec.id, type, powerState: this.powerState });
    switch (type) {
      case 'On':
        if (this.powerState === 'Off') await this.powerOn();
        return;
      case 'ForceOff':
        await this.forceOff();
        return;
      case 'GracefulShutdown':
        // The ACPI power button; the OS decides (Ironic polls PowerState and falls back to ForceOff).
        if (this.powerState === 'On') await this.qmp?.command('system_powerdown').catch(() => undefined);
        return;
      case 'ForceRestart':
      case 'PowerCycle':
        await this.forceOff();
        await this.powerOn();
        return;
      case 'GracefulRestart':
        if (this.powerState === 'On') {
          await this.qmp?.command('system_powerdown').catch(() => undefined);
          for (let i = 0; i < 1200 && this.powerState === 'On'; i++) await sleep(100);
          await this.forceOff(); // an OS that ignored the button for 2 minutes is reset
        }
        await this.powerOn();
        return;
      case 'Nmi':
        if (this.powerState === 'On') await this.qmp?.command('inject-nmi');
        return;
    }
  }

  async insertMedia(url: string, opts: { inserted: boolean; writeProtected: boolean }): Promise<void> {
    const file = join(this.workDir, `${this.spec.id}-cd.iso`);
    // Downloaded whole before the answer: Ironic powers on right after inserting.
    const res = await fetch(url);
    if (!res.ok || !res.body) throw new Error(`GET ${url}: ${res.status}`);
    await pipeline(Readable.fromWeb(res.body as import('node:stream/web').ReadableStream), createWriteStream(file));
    Object.assign(this.cd, { image: url, inserted: opts.inserted, writeProtected: opts.writeProtected, file });
    this.log('media inserted', { system: this.spec.id, image: url });
    if (this.powerState === 'On' && opts.inserted) {
      await this.qmp?.command('blockdev-change-medium', { id: 'cdrom0', filename: file, format: 'raw', 'read-only-mode': 'read-only' });
    }
  }

  async ejectMedia(): Promise<void> {
    if (this.powerState === 'On') await this.qmp?.command('eject', { id: 'cdrom0', force: true }).catch(() => undefined);
    if (this.cd.file) rmSync(this.cd.file, { force: true });
    Object.assign(this.cd, { image: null, inserted: false, file: undefined });
    this.log('media ejected', { system: this.spec.id });
  }

  private async forceOff(): Promise<void> {
    const proc = this.proc;
    if (!proc || this.powerState === 'Off') return;
    this.stopping = true;
    const exited = new Promise<void>((res) => proc.once('exit', () => res()));
    await this.qmp?.command('quit').catch(() => undefined);
    const killed = await Promise.race([exited.then(() => true), sleep(5000).then(() => false)]);
    if (!killed) {
      proc.kill('SIGKILL');
      await exited;
    }
  }

  /** Boot order for this power on: the override's device first, then disk, CD, network. */
  private bootIndexes(): Record<'Hdd' | 'Cd' | 'Pxe', number> {
    const order: Array<'Hdd' | 'Cd' | 'Pxe'> = ['Hdd', 'Cd', 'Pxe'];
    const t = this.boot.target;
    if (this.boot.enabled !== 'Disabled' && t !== 'None') order.sort((a, b) => Number(b === t) - Number(a === t));
    return Object.fromEntries(order.map((d, i) => [d, i + 1])) as Record<'Hdd' | 'Cd' | 'Pxe', number>;
  }

  private async powerOn(): Promise<void> {
    const idx = this.bootIndexes();
    const uefi = this.boot.mode === 'UEFI';
    const cdFile = this.cd.inserted && this.cd.file ? `,file=${this.cd.file}` : '';
    rmSync(this.qmpSock, { force: true });
    const args = [
      '-nodefaults', '-display', 'none', '-machine', 'q35',
      '-accel', `tcg,tb-size=${TCG_TB_MIB}`, '-cpu', 'max', '-smp', '1', '-m', String(this.spec.memoryMiB ?? 512),
      ...(uefi
        ? ['-drive', `if=pflash,format=raw,unit=0,readonly=on,file=${OVMF_CODE}`, '-drive', `if=pflash,format=raw,unit=1,file=${this.varsFile}`]
        : []),
      '-chardev', `file,id=ser0,path=${this.spec.serialLog},append=on`, '-serial', 'chardev:ser0',
      '-qmp', `unix:${this.qmpSock},server=on,wait=off`,
      '-pidfile', this.pidFile,
      '-netdev', `tap,id=n0,ifname=${this.spec.tap},script=no,downscript=no`,
      '-device', `virtio-net-pci,netdev=n0,mac=${this.spec.mac},bootindex=${idx.Pxe}`,
      '-device', 'virtio-rng-pci',
      '-drive', `file=${this.spec.disk},format=raw,if=none,id=disk0,cache=unsafe,discard=unmap`,
      '-device', `virtio-blk-pci,drive=disk0,serial=RF-${this.spec.id},bootindex=${idx.Hdd}`,
      '-drive', `if=none,id=cd0,media=cdrom,readonly=on${cdFile}`,
      '-device', `ide-cd,drive=cd0,bus=ide.1,id=cdrom0,bootindex=${idx.Cd}`,
      // A guest reboot ends qemu; the exit handler starts it again (the board stays on),
      // which is what lets a one-time override last exactly one boot.
      '-no-reboot',
    ];
    const out = openSync(join(this.workDir, `${this.spec.id}-qemu.log`), 'a');
    writeFileSync(this.spec.serialLog, `\n[redfish-emulator] power on ${++this.boots}: ${this.boot.mode}, ` +
      `boot order ${JSON.stringify(idx)}, cd ${this.cd.inserted ? this.cd.image : 'empty'}\n`, { flag: 'a' });
    const proc = spawn('qemu-system-x86_64', args, { stdio: ['ignore', out, out] });
    this.proc = proc;
    this.stopping = false;
    this.shutdownReason = undefined;
    this.log('power on', { system: this.spec.id, mode: this.boot.mode, bootOrder: idx, cd: this.cd.image });
    proc.once('exit', (code, signal) => this.exited(proc, code, signal));
    if (this.boot.enabled === 'Once') this.boot.enabled = 'Disabled'; // consumed by this boot
    try {
      this.qmp = await QmpClient.connect(this.qmpSock, (e) => this.event(e), () => proc.exitCode === null);
    } catch (err) {
      proc.kill('SIGKILL');
      throw err;
    }
  }

  private event(e: QmpEvent): void {
    if (e.event === 'SHUTDOWN') this.shutdownReason = String(e.data?.reason ?? '');
  }

  private exited(proc: ChildProcess, code: number | null, signal: string | null): void {
    if (this.proc !== proc) return;
    this.qmp?.close();
    this.qmp = undefined;
    const reason = this.shutdownReason;
    this.log('power off', { system: this.spec.id, code, signal, reason: reason ?? null, byBmc: this.stopping });
    if (!this.stopping && reason === 'guest-reset') {
      void this.powerOn().catch((err: unknown) => this.log('restart after guest reset failed', { system: this.spec.id, err: String(err) }));
    }
  }

  /** Ends qemu now (emulator shutdown). */
  async shutdown(): Promise<void> {
    await this.forceOff();
    if (this.cd.file) rmSync(this.cd.file, { force: true });
  }
}
