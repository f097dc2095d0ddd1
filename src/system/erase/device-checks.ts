import { log } from '../../log.ts';
import { linkTarget } from '../../hardware/sysfs.ts';
import { isReadOnly } from '../../hardware/block-devices.ts';
import { output } from '../exec.ts';

// Disks IPA never erases: the virtual media device the ramdisk came from,
// members of a software RAID (erased through the array), and read-only
// disks (skipped or refused, per agent_erase_skip_read_only).

const VIRTUAL_MEDIA_LABEL = '/dev/disk/by-label/ir-vfd-dev';

export function isVirtualMediaDevice(device: string, labelLink = VIRTUAL_MEDIA_LABEL): boolean {
  return linkTarget(labelLink) === device;
}

/** True when lsblk sees a linux_raid_member signature on the disk or its partitions; also when unsure. */
export async function isLinuxRaidMember(device: string): Promise<boolean> {
  try {
    return (await output('lsblk', ['--fs', '--noheadings', device])).includes('linux_raid_member');
  } catch (err) {
    log.warn({ device, err: (err as Error).message }, 'could not determine if the disk is a RAID member; not erasing it');
    return true;
  }
}

export { isReadOnly };
