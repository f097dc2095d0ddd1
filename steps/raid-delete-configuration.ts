import { deleteSoftwareRaid, keptVolumeNames } from '../src/system/raid/index.ts';
import { defineStep } from './define.ts';

// IPA's raid.delete_configuration: every software RAID array goes, with the
// md superblocks of its members and the partition tables create_configuration made.

export const step = defineStep({
  name: 'delete_configuration',
  interface: 'raid',
  priority: { clean: 0 },
  abortable: true,
  description:
    "Removes every software RAID array (mdadm --stop), zeroes the md superblocks of its members and any left on the disks, and wipes the partition tables of the member disks. Arrays whose volume_name is in the node's skip_block_devices are kept, with their disks.",
  async run(ctx) {
    const result = await deleteSoftwareRaid(
      { guard: ctx.guard, disks: () => ctx.disks(), progress: (m) => ctx.progress(m) },
      keptVolumeNames(ctx.node),
    );
    ctx.progress(`deleted ${result.deleted.length} software RAID array(s), kept ${result.kept.length}`);
    return null;
  },
});
