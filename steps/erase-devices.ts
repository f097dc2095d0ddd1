import { eraseDevices } from '../src/system/erase/erase-devices.ts';
import { withoutKeptRaid } from '../src/system/raid/index.ts';
import { eraseOptionsFromNode } from '../src/system/erase/options.ts';
import { defineStep } from './define.ts';

export const step = defineStep({
  name: 'erase_devices',
  priority: { clean: 10 },
  abortable: true,
  description:
    'Erases every local disk: NVMe format with secure erase or ATA security erase where the disk supports it, ' +
    'otherwise (or after a failed secure erase, if the conductor allows it) random shred passes and a final pass of zeroes. ' +
    'Honours agent_erase_devices_iterations/_zeroize, agent_enable_*_secure_erase, agent_continue_if_secure_erase_failed, ' +
    'agent_erase_skip_read_only and disk_erasure_concurrency from driver_internal_info.',
  async run(ctx) {
    const opts = eraseOptionsFromNode(ctx.node);
    const disks = await withoutKeptRaid(ctx.node, await ctx.disks());
    ctx.log.info({ disks: disks.map((d) => d.name), opts }, 'erase_devices');
    const results = await eraseDevices(disks, opts, ctx.guard, {
      onProgress: ctx.progress,
      signal: ctx.signal,
      // Logged so an operator (and a test) can see how many disks were erased at once.
      onStart: (device) => ctx.log.info({ device }, 'disk erase started'),
      onEnd: (device, outcome) => ctx.log.info({ device, ok: !(outcome instanceof Error) }, 'disk erase finished'),
    });
    ctx.progress(`erase_devices finished on ${disks.length} disk(s)`);
    // IPA answers {device: erase output}; ours names the method used.
    return Object.fromEntries(Object.entries(results).map(([k, v]) => [k, v.method]));
  },
});
