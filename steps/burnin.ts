import { burninCpu, burninDisk, burninMemory, burninNetwork } from '../src/hardware/burnin.ts';
import { defineStep } from './define.ts';
import type { StepContext, StepDescriptor } from './types.ts';

// The four burn-in steps are one pattern (IPA keeps them together too, in
// burnin.py): offered for cleaning and servicing at priority 0, abortable,
// offered only where their tool is installed, and each runs one burn-in of
// src/hardware/burnin.ts with the node's driver_info. So they live in one
// file, each stating its name, tool, description and how it is run.

function burninStep(name: string, tool: string, burn: (ctx: StepContext) => Promise<void>, description: string): StepDescriptor {
  return defineStep({
    name,
    priority: { clean: 0, service: 0 },
    abortable: true,
    description,
    appliesTo: { tools: [tool] },
    async run(ctx) {
      await burn(ctx);
      return null;
    },
  });
}

const driverInfo = (ctx: StepContext) => ctx.node.driver_info ?? {};

export const burninCpuStep = burninStep('burnin_cpu', 'stress-ng', (ctx) => burninCpu(driverInfo(ctx), ctx.signal),
  'stress-ng on agent_burnin_cpu_cpu CPUs (0 = all) for agent_burnin_cpu_timeout seconds (default 24 h).',
);

export const burninMemoryStep = burninStep('burnin_memory', 'stress-ng', (ctx) => burninMemory(driverInfo(ctx), ctx.signal),
  'stress-ng vm stressor: agent_burnin_vm_vm workers over agent_burnin_vm_vm-bytes (default 98%) ' +
    'for agent_burnin_vm_timeout seconds.',
);

// Destroys data: every disk goes through the guard.
export const burninDiskStep = burninStep('burnin_disk', 'fio',
  async (ctx) => burninDisk(driverInfo(ctx), await ctx.disks(), ctx.guard, ctx.signal),
  'fio read/write with crc32c verification on every disk, ' +
    'agent_burnin_fio_disk_loops loops (default 4) or agent_burnin_fio_disk_runtime seconds.',
);

export const burninNetworkStep = burninStep('burnin_network', 'fio', (ctx) => burninNetwork(driverInfo(ctx), ctx.signal),
  'fio network test between this node and the partner in agent_burnin_fio_network_config ' +
    '({role: writer|reader, partner}), both directions.',
);
