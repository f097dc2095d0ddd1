// Software RAID (mdadm) for the raid.* steps: config, plan, create, delete.
export {
  SOFTWARE_RAID_LEVELS,
  keptVolumeNames,
  nodeBootMode,
  nodeTableType,
  parseSoftwareRaidConfig,
  wantsSoftwareRaid,
  type LogicalDisk,
} from './config.ts';
export { planSoftwareRaid, type RaidPlan } from './plan.ts';
export { createSoftwareRaid, planFromConfig, type RaidDeps, type CreateOptions } from './create.ts';
export { deleteSoftwareRaid, type DeleteResult } from './delete.ts';
export { arrayHolders, listArrays, type MdArray } from './mdadm.ts';
export { copyEspToMember, type MemberEsp } from './esp-copy.ts';
export { keptRaidDevices, withoutKeptRaid } from './kept.ts';
