import type { AgentConfig } from './config.ts';
import { listBlockDevices, waitForDisks } from './hardware/block-devices.ts';
import { onPath } from './hardware/sysfs.ts';
import { rootDeviceHintsOf, selectRootDevice } from './hardware/root-device-hints.ts';
import type { BlockDevice } from './hardware/types.ts';
import type { Guard } from './system/safety.ts';
import type { HardwareFacts } from '../steps/index.ts';

// The agent's view of the machine: the disks it may touch (all of them in a
// ramdisk, the allowed ones elsewhere), the root device for a node, and the
// inventory. Steps and commands ask here instead of listing hardware themselves.
export class HardwareView {
  constructor(
    private readonly guard: Guard,
    private readonly config: AgentConfig,
    /** Every disk of the machine (tests hand in a fake). */
    private readonly listDisks: () => Promise<BlockDevice[]> = () => listBlockDevices(),
  ) {}

  async disks(): Promise<BlockDevice[]> {
    return this.guard.filterDisks(await this.listDisks());
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
    return selectRootDevice(await this.disks(), rootDeviceHintsOf(node));
  }

  async facts(): Promise<HardwareFacts> {
    const inv = (await this.inventory().catch(() => undefined)) as { system_vendor?: { manufacturer?: string } } | undefined;
    return { vendor: inv?.system_vendor?.manufacturer ?? '', disks: await this.disks(), hasTool: (t) => onPath(t) };
  }

  async inventory(): Promise<unknown> {
    const { collectInventory } = await import('./hardware/inventory.ts');
    return collectInventory({ collectLldp: this.config.collectLldp });
  }

  async inspectionPayload(): Promise<unknown> {
    const { collectInventory, inspectionPayload } = await import('./hardware/inventory.ts');
    return inspectionPayload(await collectInventory({ collectLldp: this.config.collectLldp }));
  }
}
