import { describe, expect, it } from 'vitest';
import { ConductorNotFoundError, discoverConductor } from '../../src/conductor/mdns.ts';

// Argument handling of discoverConductor that needs no network (it only lists
// this namespace's links); the real lookups run in test/integration/mdns-*.

describe('discoverConductor', () => {
  it('fails clearly, without sending anything, when no requested interface is usable', async () => {
    const err = await discoverConductor({ timeoutMs: 1000, interfaces: ['mai-no-such-if'] }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConductorNotFoundError);
    expect(String((err as Error).message)).toMatch(/no usable interface among mai-no-such-if/);
  });
});
