import type { StepDescriptor } from './types.ts';
import {
  burninCpuStep as burninCpu,
  burninDiskStep as burninDisk,
  burninMemoryStep as burninMemory,
  burninNetworkStep as burninNetwork,
} from './burnin.ts';
import { step as eraseDevices } from './erase-devices.ts';
import { step as eraseDevicesExpress } from './erase-devices-express.ts';
import { step as eraseDevicesMetadata } from './erase-devices-metadata.ts';
import { step as erasePstore } from './erase-pstore.ts';
import { step as verifyRootDevice } from './verify-root-device.ts';
import { step as writeImage } from './write-image.ts';
import { step as kexecHandoff } from './kexec-handoff.ts';
import { step as addKernelParameters } from './add-kernel-parameters.ts';
import { step as raidDeleteConfiguration } from './raid-delete-configuration.ts';
import { step as raidCreateConfiguration } from './raid-create-configuration.ts';
import { step as raidApplyConfiguration } from './raid-apply-configuration.ts';

// The face of steps/ for the rest of the agent: the steps, their registry and their types.
export { StepRegistry, HARDWARE_MANAGER, hardwareManagerVersions } from './registry.ts';
export type { HardwareFacts, StepContext, StepPhase } from './types.ts';

// Every step the agent offers. Adding a step: one file in steps/, one line here.
export const ALL_STEPS: readonly StepDescriptor[] = [
  writeImage,
  addKernelParameters,
  kexecHandoff,
  eraseDevicesMetadata,
  eraseDevices,
  eraseDevicesExpress,
  erasePstore,
  burninCpu,
  burninMemory,
  burninDisk,
  burninNetwork,
  verifyRootDevice,
  raidDeleteConfiguration,
  raidCreateConfiguration,
  raidApplyConfiguration,
];
