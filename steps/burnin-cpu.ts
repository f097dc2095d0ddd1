import { burninCpu } from '../src/hardware/burnin.ts';
import { onPath } from '../src/hardware/sysfs.ts';
import type { StepDescriptor } from './types.ts';

// Offered only where stress-ng is installed (an absent phase is not offered).
export const step: StepDescriptor = {
  name: 'burnin_cpu',
  interface: 'deploy',
  priority: onPath('stress-ng') ? { clean: 0, service: 0 } : {},
  abortable: true,
  rebootRequested: false,
  description: 'stress-ng on agent_burnin_cpu_cpu CPUs (0 = all) for agent_burnin_cpu_timeout seconds (default 24 h).',
  appliesTo: { note: 'needs stress-ng in the ramdisk' },
  async run(ctx) {
    await burninCpu(ctx.node.driver_info ?? {}, ctx.signal);
    return null;
  },
};
