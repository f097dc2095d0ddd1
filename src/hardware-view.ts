import type { AgentConfig } from './config.ts';
import { listBlockDevices, waitForDisks } from './hardware/block-devices.ts';
import { onPath, readTrimmed } from './hardware/sysfs.ts';
import { rootDeviceHintsOf, selectRootDevice } from './hardware/root-device-hints.ts';
import { softwareRaidRootDevice } from './hardware/raid-root.ts';
import type { BlockDevice } from './hardware/types.ts';
import type { InventoryOptions } from './hardware/inventory.ts';
import type { Guard } from './system/safety.ts';
import type { HardwareFacts } from '../steps/index.ts';

// The agent's view of the machine: the disks it may touch (all of them in a
// ramdisk, the allowed ones elsewhere), the root device for a node, and the
// inventory. Steps and commands ask here instead of listing hardware themselves.
// It is built once the config is final (virtual media and mDNS overrides
// applied), so ipa-collect-lldp from parameters.txt reaches the inventory.

/** The settings the view reads. */
export type HardwareSettings = Pick<Readonly<AgentConfig>, 'diskWaitAttempts' | 'diskWaitDelay' | 'collectLldp'> &
  Partial<Pick<Readonly<AgentConfig>, 'bootif' | 'lldpTimeout' | 'cmdlineText'>>;

/** Where the view reads the machine from (tests hand in fakes). */
export interface HardwareProbes {
  /** Every disk of the machine. */
  listDisks(): Promise<BlockDevice[]>;
  /** The SMBIOS system manufacturer, the inventory's system_vendor.manufacturer ("" when unknown). */
  systemManufacturer(): string;
  /** The whole inventory (LLDP included when asked: up to 30 s). */
  collectInventory(opts: InventoryOptions): Promise<unknown>;
}

const machine: HardwareProbes = {
  listDisks: () => listBlockDevices(),
  // The kernel's copy of the SMBIOS string dmidecode reads for the inventory: one file, no fork.
  systemManufacturer: () => readTrimmed('/sys/class/dmi/id/sys_vendor') ?? '',
  collectInventory: async (opts) => (await import('./hardware/inventory.ts')).collectInventory(opts),
};

export class HardwareView {
  private readonly probes: HardwareProbes;

  constructor(
    private readonly guard: Guard,
    private readonly config: HardwareSettings,
    probes: Partial<HardwareProbes> = {},
  ) {
    this.probes = { ...machine, ...probes };
  }

  async disks(): Promise<BlockDevice[]> {
    return this.guard.filterDisks(await this.probes.listDisks());
  }

  /**
   * IPA's wait for the root disk at start (ipa-disk-wait-attempts, every
   * ipa-disk-wait-delay seconds): in a ramdisk, disks behind slow drivers
   * (RAID, some NVMe) can appear after the agent starts, and an agent that
   * looked up before them would inspect or deploy without them. Returns the
   * disk, or null after the last attempt (IPA only warns; a deploy then fails
   * with a precise error). Outside a ramdisk the agent touches only the
   * --allowed-devices, which exist already: no wait.
   */
  async waitForRootDisk(): Promise<BlockDevice | null> {
    if (!this.guard.opts.inRamdisk) return null;
    return waitForDisks({ attempts: this.config.diskWaitAttempts, delaySec: this.config.diskWaitDelay, list: () => this.disks() });
  }

  async rootDevice(node: Record<string, any>): Promise<BlockDevice> {
    const disks = await this.disks();
    const hints = rootDeviceHintsOf(node);
    // Software RAID from the node's target_raid_config: the first array is the root unless hints say otherwise.
    const array = hints ? null : softwareRaidRootDevice(node, disks);
    return array ?? selectRootDevice(disks, hints);
  }

  /** What get_*_steps filters steps by: cheap sources only, never the whole inventory. */
  async facts(): Promise<HardwareFacts> {
    return { vendor: this.probes.systemManufacturer(), disks: await this.disks(), hasTool: (t) => onPath(t) };
  }

  /** Set from the lookup's agent_skip_bmc_detect: the conductor knows the BMC, do not probe it. */
  skipBmcDetect = false;

  async inventory(): Promise<unknown> {
    return this.probes.collectInventory({
      collectLldp: this.config.collectLldp,
      lldpTimeoutSec: this.config.lldpTimeout,
      // BOOTIF as the config has it (kernel command line, or --bootif); from /proc/cmdline only
      // when the config did not come from a command line at all.
      ...(this.config.cmdlineText !== undefined ? { bootif: this.config.bootif ?? null } : {}),
      listDisks: this.probes.listDisks,
      skipBmcDetect: this.skipBmcDetect,
    });
  }

  async inspectionPayload(): Promise<unknown> {
    const { inspectionPayload } = await import('./hardware/inventory.ts');
    return inspectionPayload((await this.inventory()) as Parameters<typeof inspectionPayload>[0]);
  }
}
