import { parseBoolean } from '../../base/booleans.ts';

// The erase settings Ironic 21.4 puts into driver_internal_info before
// cleaning (deploy_utils.agent_add_clean_params, from [deploy] options), with
// IPA's defaults for when a key is missing (older conductors, manual runs).

export interface EraseOptions {
  /** agent_erase_devices_iterations: random overwrite passes of the shred fallback. */
  iterations: number;
  /** agent_erase_devices_zeroize: finish the fallback with a pass of zeroes. */
  zeroize: boolean;
  /** agent_enable_nvme_secure_erase */
  nvmeSecureErase: boolean;
  /** agent_enable_ata_secure_erase */
  ataSecureErase: boolean;
  /**
   * agent_continue_if_secure_erase_failed, or the deprecated
   * agent_continue_if_ata_erase_failed when the new key is absent: overwrite
   * when a secure erase fails instead of failing the step.
   */
  continueIfSecureEraseFailed: boolean;
  /** agent_erase_skip_read_only: skip read-only disks instead of failing. */
  skipReadOnly: boolean;
  /** disk_erasure_concurrency: disks erased at the same time. */
  concurrency: number;
}

function bool(v: unknown, dflt: boolean): boolean {
  if (v === undefined || v === null) return dflt;
  return parseBoolean(v) ?? false; // strutils.bool_from_string's default
}

function int(v: unknown, dflt: number, min: number): number {
  const n = typeof v === 'string' ? Number.parseInt(v, 10) : typeof v === 'number' ? Math.trunc(v) : NaN;
  return Number.isFinite(n) && n >= min ? n : dflt;
}

export function eraseOptionsFromNode(node: Record<string, any> | null | undefined): EraseOptions {
  const info: Record<string, unknown> = node?.driver_internal_info ?? {};
  const cont = info.agent_continue_if_secure_erase_failed ?? info.agent_continue_if_ata_erase_failed;
  return {
    iterations: int(info.agent_erase_devices_iterations, 1, 0),
    zeroize: bool(info.agent_erase_devices_zeroize, true),
    nvmeSecureErase: bool(info.agent_enable_nvme_secure_erase, true),
    ataSecureErase: bool(info.agent_enable_ata_secure_erase, true),
    continueIfSecureEraseFailed: bool(cont, false),
    skipReadOnly: bool(info.agent_erase_skip_read_only, false),
    concurrency: int(info.disk_erasure_concurrency, 1, 1),
  };
}
