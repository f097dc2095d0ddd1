import type { BlockDevice } from './types.ts';

// After raid.create_configuration the root device is the first array, not a
// member disk: without root device hints IPA's smallest-disk guess could pick
// a member or a second array. Ironic gives no hint for it, so the node's own
// target_raid_config says software RAID is in use.

function wantsSoftwareRaid(node: Record<string, any> | null | undefined): boolean {
  const lds = node?.target_raid_config?.logical_disks;
  return Array.isArray(lds) && lds.some((d) => d && typeof d === 'object' && d.controller === 'software');
}

const mdNumber = (name: string) => Number(/^\/dev\/md(\d+)$/.exec(name)?.[1] ?? NaN);

/**
 * The root array when the node asks for software RAID and arrays exist: the
 * lowest-numbered /dev/mdN (create_configuration makes the first logical
 * disk md0). Null otherwise, and the usual choice applies.
 */
export function softwareRaidRootDevice(node: Record<string, any> | null | undefined, disks: readonly BlockDevice[]): BlockDevice | null {
  if (!wantsSoftwareRaid(node)) return null;
  const arrays = disks.filter((d) => Number.isFinite(mdNumber(d.name))).sort((a, b) => mdNumber(a.name) - mdNumber(b.name));
  return arrays[0] ?? null;
}
