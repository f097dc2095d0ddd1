import { burninDisk } from '../src/hardware/burnin.ts';
import type { StepDescriptor } from './types.ts';

// Offered only where fio is installed. Destroys data: every disk goes through the guard.
export const step: StepDescriptor = {
  name: 'burnin_disk',
  interface: 'deploy',
  priority: { clean: 0, service: 0 },
  abortable: true,
  rebootRequested: false,
  description:
    'fio read/write with crc32c verification on every disk, ' +
    'agent_burnin_fio_disk_loops loops (default 4) or agent_burnin_fio_disk_runtime seconds.',
  appliesTo: { tools: ['fio'] },
  async run(ctx) {
    await burninDisk(ctx.node.driver_info ?? {}, await ctx.disks(), ctx.guard, ctx.signal);
    return null;
  },
};
