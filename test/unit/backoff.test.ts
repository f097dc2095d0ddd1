import { describe, expect, it } from 'vitest';
import { Backoff } from '../../src/conductor/backoff.ts';
import { MAX_LOOKUP_BACKOFF_MS, MAX_REFUSED_BACKOFF_MS } from '../../src/conductor/session.ts';

// The integration test (security-token) watches a refused agent for 40 s only; the doubling, the
// cap that keeps a refused agent coming back, the jitter bounds and the reset are pinned here.
describe('Backoff', () => {
  it('doubles from the base up to the cap and stays there', () => {
    const b = new Backoff({ baseMs: 1000, capMs: 60_000, jitter: 0 });
    const delays = Array.from({ length: 10 }, () => b.next());
    expect(delays).toEqual([1000, 2000, 4000, 8000, 16_000, 32_000, 60_000, 60_000, 60_000, 60_000]);
  });

  it('jitters each delay within ±25% by default, never beyond the cap plus its jitter', () => {
    for (const r of [0, 0.5, 0.999999]) {
      const b = new Backoff({ baseMs: 1000, capMs: 4000, random: () => r });
      const delays = Array.from({ length: 5 }, () => b.next());
      const nominal = [1000, 2000, 4000, 4000, 4000];
      delays.forEach((d, i) => {
        expect(d).toBeGreaterThanOrEqual(nominal[i]! * 0.75);
        expect(d).toBeLessThanOrEqual(nominal[i]! * 1.25);
      });
    }
  });

  it('starts over from the base after reset (an accepted heartbeat)', () => {
    const b = new Backoff({ baseMs: 500, capMs: 8000, jitter: 0 });
    for (let i = 0; i < 6; i++) b.next();
    b.reset();
    expect([b.next(), b.next()]).toEqual([500, 1000]);
  });

  it('the agent caps lookups and refused heartbeats at 60 s at most', () => {
    expect(MAX_LOOKUP_BACKOFF_MS).toBeLessThanOrEqual(60_000);
    expect(MAX_REFUSED_BACKOFF_MS).toBeLessThanOrEqual(60_000);
    expect(MAX_LOOKUP_BACKOFF_MS).toBeGreaterThan(0);
  });
});
