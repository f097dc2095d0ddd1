import { open } from 'node:fs/promises';
import { basename } from 'node:path';
import { output, run } from '../exec.ts';
import { readTrimmed } from '../../hardware/sysfs.ts';
import type { Guard } from '../safety.ts';
import { isNvme, nvmeDeallocateReadsZeroes } from './nvme.ts';

// Plain discard (TRIM/UNMAP/Deallocate) is only an erase when the device
// promises that discarded blocks read back as zeroes: ATA "Deterministic
// read ZEROs after TRIM" (RZAT) or NVMe DLFEAT = 001b. The kernel no longer
// reports this (queue/discard_zeroes_data is always 0 since 4.12), so ask
// the device. Everything else must write (see overwrite.ts).

function supportsDiscard(device: string): boolean {
  return Number(readTrimmed(`/sys/block/${basename(device)}/queue/discard_max_bytes`) ?? '0') > 0;
}

export async function discardReadsZeroes(device: string): Promise<boolean> {
  if (!supportsDiscard(device)) return false;
  if (isNvme(device)) return nvmeDeallocateReadsZeroes(device);
  try {
    return (await output('hdparm', ['-I', device])).includes('Deterministic read ZEROs after TRIM');
  } catch {
    return false;
  }
}

/** Whether the first and last MiB read back as zeroes (a sanity check after a discard, not a proof). */
export async function edgesAreZero(device: string, size: number): Promise<boolean> {
  const span = Math.min(1024 * 1024, size);
  const fh = await open(device, 'r');
  try {
    for (const offset of [0, Math.max(0, size - span)]) {
      const buf = Buffer.alloc(span);
      await fh.read(buf, 0, span, offset);
      if (buf.some((b) => b !== 0)) return false;
    }
    return true;
  } finally {
    await fh.close();
  }
}

/** Discard the whole device (only call after discardReadsZeroes said yes). */
export async function discardDevice(device: string, guard: Guard): Promise<void> {
  guard.assertWritable(device);
  await run('blkdiscard', [device], { timeoutMs: 24 * 3600_000 });
}
