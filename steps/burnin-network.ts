import { burninNetwork } from '../src/hardware/burnin.ts';
import type { StepDescriptor } from './types.ts';

// Offered only where fio is installed.
export const step: StepDescriptor = {
  name: 'burnin_network',
  interface: 'deploy',
  priority: { clean: 0, service: 0 },
  abortable: true,
  rebootRequested: false,
  description:
    'fio network test between this node and the partner in agent_burnin_fio_network_config ' +
    '({role: writer|reader, partner}), both directions.',
  appliesTo: { tools: ['fio'] },
  async run(ctx) {
    await burninNetwork(ctx.node.driver_info ?? {}, ctx.signal);
    return null;
  },
};
