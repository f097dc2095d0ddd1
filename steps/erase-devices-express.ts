import { eraseDevicesExpress } from '../src/system/erase/erase-express.ts';
import { withoutKeptRaid } from '../src/system/raid/index.ts';
import { eraseOptionsFromNode } from '../src/system/erase/options.ts';
import { defineStep } from './define.ts';

export const step = defineStep({
  name: 'erase_devices_express',
  priority: { clean: 0 },
  abortable: true,
  description:
    'Fast erase: NVMe secure erase where supported; other disks are discarded when they guarantee zeroes after discard ' +
    '(ATA RZAT, NVMe DLFEAT), otherwise only their metadata (partition tables, signatures) is removed.',
  async run(ctx) {
    const results = await eraseDevicesExpress(await withoutKeptRaid(ctx.node, await ctx.disks()), eraseOptionsFromNode(ctx.node), ctx.guard, {
      onProgress: ctx.progress,
      signal: ctx.signal,
    });
    return results;
  },
});
