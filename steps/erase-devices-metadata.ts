import { destroyDiskMetadata } from '../src/system/disk-metadata.ts';
import { withoutKeptRaid } from '../src/system/raid/index.ts';
import { DiskEraseError, OperationAbortedError } from '../src/base/errors.ts';
import { defineStep } from './define.ts';

export const step = defineStep({
  name: 'erase_devices_metadata',
  priority: { clean: 99, service: 0 },
  abortable: true,
  description: 'Removes partition tables and filesystem/RAID signatures from every local disk (both ends of each disk).',
  async run(ctx) {
    const disks = await withoutKeptRaid(ctx.node, await ctx.disks());
    const failures: string[] = [];
    let done = 0;
    for (const disk of disks) {
      if (ctx.signal.aborted) throw new OperationAbortedError('aborted');
      ctx.progress(`erasing metadata on ${disk.name} (${done + 1}/${disks.length})`);
      try {
        await destroyDiskMetadata(disk.name, ctx.guard);
      } catch (err) {
        failures.push(`${disk.name}: ${(err as Error).message}`);
      }
      done++;
    }
    if (failures.length) throw new DiskEraseError(`failed to erase metadata: ${failures.join('; ')}`);
    ctx.progress(`erased metadata on ${disks.length} disk(s)`);
    return null;
  },
});
