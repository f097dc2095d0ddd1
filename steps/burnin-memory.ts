import { burninMemory } from '../src/hardware/burnin.ts';
import type { StepDescriptor } from './types.ts';

// Offered only where stress-ng is installed.
export const step: StepDescriptor = {
  name: 'burnin_memory',
  interface: 'deploy',
  priority: { clean: 0, service: 0 },
  abortable: true,
  rebootRequested: false,
  description:
    'stress-ng vm stressor: agent_burnin_vm_vm workers over agent_burnin_vm_vm-bytes (default 98%) ' +
    'for agent_burnin_vm_timeout seconds.',
  appliesTo: { tools: ['stress-ng'] },
  async run(ctx) {
    await burninMemory(ctx.node.driver_info ?? {}, ctx.signal);
    return null;
  },
};
