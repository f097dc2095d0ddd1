import { burninCpu } from '../src/hardware/burnin.ts';
import type { StepDescriptor } from './types.ts';

export const step: StepDescriptor = {
  name: 'burnin_cpu',
  interface: 'deploy',
  priority: { clean: 0, service: 0 },
  abortable: true,
  rebootRequested: false,
  description: 'stress-ng on agent_burnin_cpu_cpu CPUs (0 = all) for agent_burnin_cpu_timeout seconds (default 24 h).',
  appliesTo: { tools: ['stress-ng'] },
  async run(ctx) {
    await burninCpu(ctx.node.driver_info ?? {}, ctx.signal);
    return null;
  },
};
