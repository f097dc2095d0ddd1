import type { StepDescriptor } from './types.ts';
import { step as eraseDevicesMetadata } from './erase-devices-metadata.ts';

// Every step the agent offers. Adding a step: one file in steps/, one line here.
export const ALL_STEPS: readonly StepDescriptor[] = [eraseDevicesMetadata];
