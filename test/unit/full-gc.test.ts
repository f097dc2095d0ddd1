import { setImmediate as tick } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { fullGc } from '../../src/base/full-gc.ts';

// The agent runs a full GC when a long command ends (src/agent.ts) so that a write's
// SharedArrayBuffers go back to the system at once (docs/footprint.md, lever 12).
describe('fullGc', () => {
  it('collects what nothing holds, SharedArrayBuffers included, and says how long it took', async () => {
    const before = process.memoryUsage().arrayBuffers;
    let big: Buffer | undefined = Buffer.from(new SharedArrayBuffer(32 * 1024 * 1024));
    big.fill(1);
    const ref = new WeakRef(big);
    expect(process.memoryUsage().arrayBuffers).toBeGreaterThanOrEqual(before + 32 * 1024 * 1024);
    big = undefined;
    await tick(); // a WeakRef's target is kept until the job that made it ends
    const ms = fullGc();
    expect(ms).toBeGreaterThanOrEqual(0);
    expect(ref.deref()).toBeUndefined();
    expect(process.memoryUsage().arrayBuffers).toBeLessThan(before + 32 * 1024 * 1024);
    expect(fullGc()).toBeGreaterThanOrEqual(0); // a second call reuses the same gc
  });
});
