import { log } from '../../log.ts';
import type { BlockDevice } from '../../hardware/types.ts';
import { destroyDiskMetadata } from '../disk-metadata.ts';
import type { Guard } from '../safety.ts';
import { discardDevice, discardReadsZeroes, edgesAreZero } from './discard.ts';
import { isLinuxRaidMember, isReadOnly, isVirtualMediaDevice } from './device-checks.ts';
import { DiskEraseError } from '../../base/errors.ts';
import { isNvme, nvmeSecureErase } from './nvme.ts';
import type { EraseOptions } from './options.ts';

// IPA's erase_devices_express: the fast erase. NVMe disks get their secure
// erase; other disks whose discard is guaranteed to read back as zeroes are
// discarded; the rest only lose their metadata (partition tables and
// signatures), which is what IPA does for every non-NVMe disk. Virtual
// media, RAID members and read-only disks are left alone.

export type ExpressMethod = 'skipped' | 'nvme-secure-erase' | 'discard' | 'metadata';

export interface ExpressMethods {
  nvme: (device: string, guard: Guard) => Promise<boolean>;
  discardReadsZeroes: (device: string) => Promise<boolean>;
  discard: (device: string, guard: Guard) => Promise<void>;
  metadata: (device: string, guard: Guard) => Promise<void>;
  isReadOnly: (device: string) => boolean;
  isRaidMember: (device: string) => Promise<boolean>;
  isVirtualMedia: (device: string) => boolean;
}

const defaults: ExpressMethods = {
  nvme: nvmeSecureErase,
  discardReadsZeroes,
  discard: discardDevice,
  metadata: destroyDiskMetadata,
  isReadOnly,
  isRaidMember: isLinuxRaidMember,
  isVirtualMedia: (d) => isVirtualMediaDevice(d),
};

async function expressOne(dev: BlockDevice, opts: EraseOptions, guard: Guard, m: ExpressMethods): Promise<ExpressMethod> {
  const device = dev.name;
  if (m.isVirtualMedia(device) || (await m.isRaidMember(device)) || m.isReadOnly(device)) return 'skipped';
  guard.assertWritable(device);
  let secureEraseError: Error | undefined;
  try {
    if (isNvme(device) && opts.nvmeSecureErase && (await m.nvme(device, guard))) return 'nvme-secure-erase';
  } catch (err) {
    if (!(err instanceof DiskEraseError)) throw err;
    secureEraseError = err;
    log.error({ device, err: err.message }, 'NVMe secure erase failed; falling back to metadata erase');
  }
  if (!secureEraseError && (await m.discardReadsZeroes(device))) {
    await m.discard(device, guard);
    // The device promised zeroes; check the ends before trusting it.
    if (await edgesAreZero(device, dev.size).catch(() => false)) return 'discard';
    log.warn({ device }, 'discarded blocks do not read back as zeroes; erasing metadata as well');
  }
  await m.metadata(device, guard);
  if (secureEraseError) throw secureEraseError;
  return 'metadata';
}

export async function eraseDevicesExpress(
  disks: readonly BlockDevice[],
  opts: EraseOptions,
  guard: Guard,
  hooks: { onProgress?: (message: string) => void; signal?: AbortSignal; methods?: Partial<ExpressMethods> } = {},
): Promise<Record<string, ExpressMethod>> {
  const m = { ...defaults, ...hooks.methods };
  const results: Record<string, ExpressMethod> = {};
  const failures: string[] = [];
  for (const [i, dev] of disks.entries()) {
    if (hooks.signal?.aborted) throw new DiskEraseError('erase_devices_express aborted');
    hooks.onProgress?.(`express erase of ${dev.name} (${i + 1}/${disks.length})`);
    try {
      results[dev.name] = await expressOne(dev, opts, guard, m);
    } catch (err) {
      failures.push(`"${dev.name}": ${(err as Error).message}`);
    }
  }
  if (failures.length) throw new DiskEraseError(`Failed to erase the device(s): ${failures.join('; ')}`);
  return results;
}
