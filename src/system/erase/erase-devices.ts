import type { BlockDevice } from '../../hardware/types.ts';
import type { Guard } from '../safety.ts';
import { eraseBlockDevice, type EraseMethods, type EraseResult } from './erase-block-device.ts';
import { DiskEraseError } from '../../base/errors.ts';
import type { EraseOptions } from './options.ts';

// IPA's erase_devices: every disk through eraseBlockDevice, at most
// disk_erasure_concurrency of them at a time (IPA uses a thread pool of that
// size). All disks are attempted even when one fails; the step then fails
// naming every disk that did.

export interface EraseHooks {
  /** Called synchronously when a disk's erase starts / ends (tests count concurrency with these). */
  onStart?: (device: string) => void;
  onEnd?: (device: string, outcome: EraseResult | Error) => void;
  onProgress?: (message: string) => void;
  signal?: AbortSignal;
  methods?: Partial<EraseMethods>;
}

/** Runs fn over items with at most `limit` in flight, in order of the list. */
export async function forEachLimited<T>(items: readonly T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const item = items[next++]!;
      await fn(item);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, worker));
}

export async function eraseDevices(
  disks: readonly BlockDevice[],
  opts: EraseOptions,
  guard: Guard,
  hooks: EraseHooks = {},
): Promise<Record<string, EraseResult>> {
  const results: Record<string, EraseResult> = {};
  const failures: string[] = [];
  const errors: Error[] = [];
  let finished = 0;
  let running = 0;
  const status = () => `${running} running, ${finished}/${disks.length} done`;
  await forEachLimited(disks, opts.concurrency, async (dev) => {
    if (hooks.signal?.aborted) {
      failures.push(`${dev.name}: aborted before it started`);
      return;
    }
    running++;
    hooks.onStart?.(dev.name);
    hooks.onProgress?.(`erase started: ${dev.name} (${status()})`);
    try {
      const r = await eraseBlockDevice(dev, opts, guard, {
        signal: hooks.signal,
        methods: hooks.methods,
        onProgress: (line) => hooks.onProgress?.(`erasing ${dev.name}: ${line} (${status()})`),
      });
      results[dev.name] = r;
      running--;
      finished++;
      hooks.onEnd?.(dev.name, r);
      hooks.onProgress?.(`erase finished: ${dev.name} by ${r.method} (${status()})`);
    } catch (err) {
      running--;
      finished++;
      failures.push(`${dev.name}: ${(err as Error).message}`);
      errors.push(err as Error);
      hooks.onEnd?.(dev.name, err as Error);
      hooks.onProgress?.(`erase failed: ${dev.name} (${status()})`);
    }
  });
  // One failing disk keeps its own error class (Ironic shows it); several are summarised.
  if (failures.length === 1 && errors.length === 1) throw errors[0];
  if (failures.length) {
    throw new DiskEraseError(`Failed to erase ${failures.length} of ${disks.length} device(s): ${failures.join('; ')}`);
  }
  return results;
}
