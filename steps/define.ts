import type { StepDescriptor } from './types.ts';

// Every step file used to spell out the whole descriptor, most of it the same
// in each (interface 'deploy', not abortable, no reboot). defineStep() fills
// in those defaults so a step file states only what is particular to it.
// The defaults are IPA's own (its clean_step/deploy_step decorators: abortable
// False, reboot_requested False) and the interface every step of ours uses.

/** A step as written in its file: the descriptor, less what has a default. */
export type StepSpec = Omit<StepDescriptor, 'interface' | 'abortable' | 'rebootRequested'> &
  Partial<Pick<StepDescriptor, 'interface' | 'abortable' | 'rebootRequested'>>;

export function defineStep(spec: StepSpec): StepDescriptor {
  return { interface: 'deploy', abortable: false, rebootRequested: false, ...spec };
}
