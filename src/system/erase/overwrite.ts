import { log } from '../../log.ts';
import { run, spawnStreaming } from '../exec.ts';
import type { Guard } from '../safety.ts';

// Overwriting a whole disk when no secure erase is available. Random passes
// are GNU shred's (as in IPA). The final pass of zeroes is BLKZEROOUT
// (`blkdiscard -z`): the kernel guarantees every block reads back as zero
// afterwards, and it offloads to the device's WRITE ZEROES command when
// there is one (write_zeroes_max_bytes > 0), otherwise it writes zero pages
// itself. It never relies on plain discard, whose result is undefined on
// most devices.

export interface OverwriteOptions {
  iterations: number;
  zeroize: boolean;
  /** Called with shred's progress lines ("pass 1/1 (random)...32MiB/64MiB 50%"). */
  onProgress?: (line: string) => void;
  signal?: AbortSignal;
}

const LONG = 7 * 24 * 3600_000; // big disks take days; the step's abort is the real limit

async function shredRandomPasses(device: string, passes: number, opts: OverwriteOptions): Promise<void> {
  const { child, done } = spawnStreaming('shred', ['--force', '--verbose', '--iterations', String(passes), device], {
    timeoutMs: LONG,
    stdin: 'ignore',
    stdout: 'ignore',
  });
  const onAbort = () => child.kill('SIGTERM');
  opts.signal?.addEventListener('abort', onAbort, { once: true });
  let pending = '';
  child.stderr?.on('data', (chunk: Buffer) => {
    pending += chunk.toString();
    const lines = pending.split('\n');
    pending = lines.pop() ?? '';
    for (const line of lines) if (line.trim()) opts.onProgress?.(line.replace(/^shred:\s*/, '').trim());
  });
  try {
    await done;
  } finally {
    opts.signal?.removeEventListener('abort', onAbort);
  }
}

/** Every block reads back as zero afterwards (BLKZEROOUT). */
export async function zeroDevice(device: string, guard: Guard): Promise<void> {
  guard.assertWritable(device);
  await run('blkdiscard', ['--zeroout', device], { timeoutMs: LONG });
}

/** IPA's _shred_block_device: N random passes, then zeroes if asked. */
export async function overwriteDevice(device: string, guard: Guard, opts: OverwriteOptions): Promise<void> {
  guard.assertWritable(device);
  if (opts.iterations > 0) {
    log.info({ device, passes: opts.iterations }, 'overwriting with random data');
    await shredRandomPasses(device, opts.iterations, opts);
  }
  if (opts.signal?.aborted) throw new Error('erase aborted');
  if (opts.zeroize) {
    opts.onProgress?.(`${device}: writing zeroes`);
    await zeroDevice(device, guard);
  }
  if (opts.iterations === 0 && !opts.zeroize) {
    log.warn({ device }, 'agent_erase_devices_iterations is 0 and zeroize is off: nothing was written (as IPA)');
  }
}
