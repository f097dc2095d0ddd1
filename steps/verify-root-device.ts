import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { BlockDeviceFailure } from '../src/base/errors.ts';
import { defineStep } from './define.ts';

// A read-only surface scan of the root device: every byte is read once and
// hashed; nothing is written. On an active node (`baremetal node service`) it
// tells whether the deployed disk is still readable end to end, and the
// sha256 lets an operator compare the disk with a known-good copy, without
// touching the deployment.

export const step = defineStep({
  name: 'verify_root_device',
  priority: { clean: 0, service: 0 },
  abortable: true,
  description:
    'Read-only: reads the whole root device once and reports its size, sha256 and read speed; ' +
      'fails on the first read error. Never writes, so it is safe on an active node.',
  async run(ctx) {
    const root = await ctx.rootDevice();
    const started = Date.now();
    const hash = createHash('sha256');
    let bytes = 0;
    let lastReport = started;
    ctx.progress(`verify_root_device: reading ${root.name}`);
    try {
      // 'r' only: the device is never opened for writing.
      const stream = createReadStream(root.name, { flags: 'r', highWaterMark: 4 * 1024 * 1024, signal: ctx.signal });
      for await (const chunk of stream as AsyncIterable<Buffer>) {
        hash.update(chunk);
        bytes += chunk.length;
        if (Date.now() - lastReport > 5000) {
          lastReport = Date.now();
          ctx.progress(`verify_root_device: ${Math.round(bytes / 2 ** 20)} MiB of ${Math.round(root.size / 2 ** 20)} MiB read`);
        }
      }
    } catch (err) {
      if (ctx.signal.aborted) throw new BlockDeviceFailure(`verify_root_device aborted after ${bytes} bytes of ${root.name}`);
      throw new BlockDeviceFailure(`read error on ${root.name} after ${bytes} bytes: ${(err as Error).message}`);
    }
    if (root.size && bytes !== root.size) {
      throw new BlockDeviceFailure(`read ${bytes} bytes of ${root.name}, expected ${root.size}`);
    }
    const seconds = (Date.now() - started) / 1000;
    ctx.progress(`verify_root_device: ${root.name} read in full (${Math.round(bytes / 2 ** 20)} MiB)`);
    return { device: root.name, bytes, sha256: hash.digest('hex'), seconds };
  },
});
