import { existsSync } from 'node:fs';
import { createSoftwareRaid, nodeBootMode, nodeTableType } from '../src/system/raid/index.ts';
import { defineStep } from './define.ts';

// IPA's raid.create_configuration: the node's target_raid_config with
// "controller": "software" becomes mdadm arrays over partitions of the member disks.

export const step = defineStep({
  name: 'create_configuration',
  interface: 'raid',
  priority: { clean: 0 },
  abortable: true,
  description:
    "Builds the software RAID (mdadm) of the node's target_raid_config (controller software; levels 0, 1, 1+0, 5, 6; size_gb or MAX; physical_disks hints; volume_name): partitions each member (room for an ESP / BIOS boot partition first) and creates /dev/md0, /dev/md1, ... over the partitions; md0 becomes the root device. Refuses, before writing, a config the disks cannot hold and disks that already have partitions.",
  async run(ctx) {
    const node = ctx.node;
    const bootMode = nodeBootMode(node, existsSync('/sys/firmware/efi') ? 'uefi' : 'bios');
    return createSoftwareRaid(
      node.target_raid_config,
      { guard: ctx.guard, disks: () => ctx.disks(), progress: (m) => ctx.progress(m) },
      { nodeUuid: String(node.uuid ?? 'the node'), bootMode, table: nodeTableType(node, bootMode) },
    );
  },
});
