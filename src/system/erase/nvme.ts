import { log } from '../../log.ts';
import { output, run } from '../exec.ts';
import type { Guard } from '../safety.ts';
import { DiskEraseError } from '../../base/errors.ts';

// NVMe secure erase through nvme-cli's Format NVM with a Secure Erase
// Setting: cryptographic erase (ses=2) when the controller supports it,
// user-data erase (ses=1) otherwise; as IPA does.

const OACS_FORMAT_SUPPORTED = 0b10;
const FNA_CRYPTO_ERASE_SUPPORTED = 0b100;

export function isNvme(device: string): boolean {
  return device.startsWith('/dev/nvme');
}

/** Which Secure Erase Setting to use, from `nvme id-ctrl -o json`. */
export function secureEraseSetting(idCtrl: { oacs?: number; fna?: number } | null): 1 | 2 {
  if (!idCtrl || typeof idCtrl.oacs !== 'number') {
    throw new DiskEraseError('nvme-cli did not return any information');
  }
  if (!(idCtrl.oacs & OACS_FORMAT_SUPPORTED)) {
    throw new DiskEraseError('nvme-cli did not return any supported format modes');
  }
  return (idCtrl.fna ?? 0) & FNA_CRYPTO_ERASE_SUPPORTED ? 2 : 1;
}

export async function nvmeSecureErase(device: string, guard: Guard): Promise<boolean> {
  guard.assertWritable(device);
  let idCtrl: { oacs?: number; fna?: number } | null;
  try {
    idCtrl = JSON.parse(await output('nvme', ['id-ctrl', device, '-o', 'json']));
  } catch (err) {
    throw new DiskEraseError(`Failed to fetch NVMe capabilities for device ${device}: ${(err as Error).message}`);
  }
  let ses: 1 | 2;
  try {
    ses = secureEraseSetting(idCtrl);
  } catch (err) {
    throw new DiskEraseError(`${(err as Error).message} for device: ${device}`);
  }
  try {
    log.info({ device, ses }, 'NVMe format with secure erase');
    await run('nvme', ['format', device, '-s', String(ses), '-f'], { timeoutMs: 24 * 3600_000 });
    return true;
  } catch (err) {
    throw new DiskEraseError(`Failed to nvme format device ${device}: ${(err as Error).message}`);
  }
}

/**
 * NVMe DLFEAT bits 2:0 = 001b: a deallocated block reads back as zeroes.
 * Only then is a discard (deallocate) an erase whose result can be checked.
 */
export async function nvmeDeallocateReadsZeroes(device: string): Promise<boolean> {
  try {
    const idNs = JSON.parse(await output('nvme', ['id-ns', device, '-o', 'json'])) as { dlfeat?: number };
    return ((idNs.dlfeat ?? 0) & 0b111) === 0b001;
  } catch {
    return false;
  }
}
