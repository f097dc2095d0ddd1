// Disk layout library: what the deploy steps call.
export {
  createPartitionImageLayout,
  makeFilesystem,
  type PartitionImageLayout,
  type CreatedPartition,
  type PartitionImageOptions,
} from './layout.ts';
export {
  planPartitionImageLayout,
  LayoutError,
  DEFAULT_ESP_MIB,
  DEFAULT_BIOS_BOOT_MIB,
  type LayoutOptions,
  type LayoutPlan,
} from './layout-plan.ts';
export { getPartitionUuids, partitionImageUuids, wholeDiskImageUuids, partitionBlockUuid, type PartitionUuids } from './uuids.ts';
export { withPartitionDevice, attachOffsetLoop, detachLoop } from './device.ts';
export {
  readPartitionTable,
  deviceSize,
  diskIdentifier,
  partitionPath,
  notifyKernel,
  type PartitionEntry,
  type PartitionTable,
} from './table.ts';
export { appendPartitionAtEnd, relocateBackupGpt, NoRoomError } from './append.ts';
export { probeFilesystemAt, probePartitionFilesystem, type FilesystemInfo } from './probe.ts';
export { copyFileIntoRange } from './write.ts';
