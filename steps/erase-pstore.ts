import { erasePstore } from '../src/system/erase/pstore.ts';
import { defineStep } from './define.ts';

export const step = defineStep({
  name: 'erase_pstore',
  priority: { clean: 0 },
  abortable: true,
  description: "Empties the kernel's persistent store (pstore crash records). Only in a ramdisk: elsewhere the pstore is the host's own.",
  async run(ctx) {
    if (!ctx.guard.opts.inRamdisk) {
      ctx.log.warn('erase_pstore: not running in a ramdisk, leaving this machine\'s pstore alone');
      return { skipped: 'not running in a ramdisk' };
    }
    return { removed: await erasePstore() };
  },
});
