import { log } from '../../log.ts';
import { DiskEraseError, IncompatibleHardwareError } from '../../base/errors.ts';
import type { BlockDevice } from '../../hardware/types.ts';
import type { Guard } from '../safety.ts';
import { ataSecureErase } from './ata.ts';
import { isLinuxRaidMember, isReadOnly, isVirtualMediaDevice } from './device-checks.ts';
import { isNvme, nvmeSecureErase } from './nvme.ts';
import type { EraseOptions } from './options.ts';
import { overwriteDevice } from './overwrite.ts';

// One disk, IPA's erase_block_device decision list: skip what must not be
// erased, try the device's own secure erase (NVMe format or ATA security
// erase), fall back to overwriting only when allowed.

export type EraseMethod = 'skipped' | 'nvme-secure-erase' | 'ata-secure-erase' | 'overwrite';

export interface EraseResult {
  method: EraseMethod;
  reason?: string;
}

/** The methods, injectable so tests can drive the decision list without real NVMe/ATA disks. */
export interface EraseMethods {
  nvme: (device: string, guard: Guard) => Promise<boolean>;
  ata: (device: string, guard: Guard) => Promise<boolean>;
  overwrite: typeof overwriteDevice;
  isReadOnly: (device: string) => boolean;
  isRaidMember: (device: string) => Promise<boolean>;
  isVirtualMedia: (device: string) => boolean;
}

const defaultMethods: EraseMethods = {
  nvme: nvmeSecureErase,
  ata: ataSecureErase,
  overwrite: overwriteDevice,
  isReadOnly,
  isRaidMember: isLinuxRaidMember,
  isVirtualMedia: (d) => isVirtualMediaDevice(d),
};

export async function eraseBlockDevice(
  dev: BlockDevice,
  opts: EraseOptions,
  guard: Guard,
  extra: { onProgress?: (line: string) => void; signal?: AbortSignal; methods?: Partial<EraseMethods> } = {},
): Promise<EraseResult> {
  const m = { ...defaultMethods, ...extra.methods };
  const device = dev.name;
  if (m.isVirtualMedia(device)) {
    log.info({ device }, 'skipping erase of the virtual media device');
    return { method: 'skipped', reason: 'virtual media' };
  }
  if (await m.isRaidMember(device)) {
    log.info({ device }, 'skipping erase of a RAID member device');
    return { method: 'skipped', reason: 'RAID member' };
  }
  if (m.isReadOnly(device)) {
    if (opts.skipReadOnly) {
      log.info({ device }, 'skipping erase of a read-only device');
      return { method: 'skipped', reason: 'read-only' };
    }
    throw new DiskEraseError(
      `Failed to invoke erase of device ${device} as the device is flagged read-only, ` +
        'and the conductor has not signaled this is a permitted case.',
    );
  }
  // Nothing below may write to a disk the guard does not allow.
  guard.assertWritable(device);

  try {
    if (isNvme(device)) {
      if (opts.nvmeSecureErase && (await m.nvme(device, guard))) return { method: 'nvme-secure-erase' };
    } else if (opts.ataSecureErase && (await m.ata(device, guard))) {
      return { method: 'ata-secure-erase' };
    }
  } catch (err) {
    if (!(err instanceof DiskEraseError)) throw err;
    if (!opts.continueIfSecureEraseFailed) {
      throw new IncompatibleHardwareError(`Failed to invoke secure erase, fallback to shred is not enabled: ${err.message}`);
    }
    log.warn({ device, err: err.message }, 'secure erase failed; falling back to overwriting');
  }

  try {
    await m.overwrite(device, guard, {
      iterations: opts.iterations,
      zeroize: opts.zeroize,
      onProgress: extra.onProgress,
      signal: extra.signal,
    });
  } catch (err) {
    log.error({ device, err: (err as Error).message }, 'overwriting the device failed');
    throw new IncompatibleHardwareError(`Unable to erase block device ${device}: ${(err as Error).message}`);
  }
  return { method: 'overwrite' };
}
