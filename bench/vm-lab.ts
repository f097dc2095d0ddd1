// What the VM benches (boot-phases.ts, min-memory.ts) share: a real Ironic
// (21.4, the host's package: the quickest to start) in a VM network
// namespace with fast track on, a node enrolled per VM, and the VM's console
// read line by line with the host time each line was first seen.
import { execa } from 'execa';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { startIronicRelease } from '../test/helpers/ironic-release.ts';
import type { Ironic } from '../test/helpers/ironic.ts';
import { createVmNetwork, type VmNetwork } from '../test/e2e/qemu-network.ts';
import { startVm, type Vm } from '../test/e2e/qemu.ts';

export interface Lab {
  net: VmNetwork;
  ironic: Ironic;
  dir: string;
  stop(): Promise<void>;
}

export async function startLab(tag: string): Promise<Lab> {
  const dir = mkdtempSync(join(tmpdir(), `metal-agent-${tag}-`));
  const net = await createVmNetwork(tag);
  try {
    const ironic = await startIronicRelease('21.4', {
      netns: net.ns.name,
      hostIp: net.hostIp,
      port: 6385,
      heartbeatTimeoutSec: 30,
      // Cleaning erases metadata only (a full erase under TCG takes the whole budget); after
      // cleaning the same agent deploys (fast track); after standby.power_off the fake power
      // interface never reads "off", so Ironic's wait for it is cut short.
      fastTrack: true,
      extraConf:
        '[deploy]\nerase_devices_priority = 0\n' +
        '[agent]\npost_deploy_get_power_state_retries = 1\npost_deploy_get_power_state_retry_interval = 2\n',
    });
    return {
      net, ironic, dir,
      async stop() {
        await ironic.stop();
        await net.destroy();
        rmSync(dir, { recursive: true, force: true });
      },
    };
  } catch (err) {
    await net.destroy();
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
}

/** Enrolls a node for `mac` and starts its automated cleaning (clean wait: the agent's lookup is answered at once). */
export async function enrollForCleaning(lab: Lab, mac: string, name: string): Promise<string> {
  const uuid = await lab.ironic.enroll(mac, { name });
  await lab.ironic.waitForState(uuid, ['clean wait'], 120);
  return uuid;
}

/** Boots the ramdisk for the node: a 6 GiB sparse disk (IPA's root disk rule wants > 4 GiB). */
export async function bootNode(lab: Lab, mac: string, memoryMiB: number): Promise<Vm> {
  const disk = join(lab.dir, `disk-${mac.replace(/:/g, '')}.raw`);
  await execa('truncate', ['-s', '6G', disk]);
  return await startVm({
    network: lab.net,
    mac,
    memoryMiB,
    disks: [{ file: disk, bus: 'virtio', serial: `MEM-${memoryMiB}` }],
    kernelArgs: [`ipa-api-url=http://${lab.net.hostIp}:6385`, `BOOTIF=01-${mac.replace(/:/g, '-')}`],
  });
}

export interface ConsoleLine {
  /** Host clock (Date.now()) when the line was first seen in the serial log. */
  hostMs: number;
  text: string;
}

/**
 * Reads the VM's serial log every 50 ms and stamps each new line with the
 * host time it appeared: the agent's JSON lines carry no guest uptime, and the
 * kernel's and the init's do, which ties the two clocks together.
 */
export class ConsoleWatch {
  readonly lines: ConsoleLine[] = [];
  private offset = 0;
  private partial = '';
  private timer?: NodeJS.Timeout;

  constructor(private readonly vm: Vm) {}

  start(): this {
    this.timer = setInterval(() => void this.poll(), 50);
    return this;
  }

  async poll(): Promise<void> {
    const text = await this.vm.serialText().catch(() => '');
    if (text.length <= this.offset) return;
    const now = Date.now();
    const fresh = this.partial + text.slice(this.offset);
    this.offset = text.length;
    const parts = fresh.split('\n');
    this.partial = parts.pop()!;
    for (const p of parts) this.lines.push({ hostMs: now, text: p.replace(/\r/g, '') });
  }

  stop(): void {
    clearInterval(this.timer);
  }

  first(re: RegExp): ConsoleLine | undefined {
    return this.lines.find((l) => re.test(l.text));
  }
}

/** Polls `check` every `everyMs` until it returns a value, or throws after `timeoutMs`. */
export async function pollFor<T>(what: string, check: () => Promise<T | undefined>, timeoutMs: number, everyMs = 250): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const v = await check();
    if (v !== undefined) return v;
    await sleep(everyMs);
  }
  throw new Error(`${what}: not within ${timeoutMs / 1000} s`);
}
