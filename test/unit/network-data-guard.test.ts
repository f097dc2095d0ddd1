import { describe, expect, it } from 'vitest';
import { SafetyError, runningInRamdisk } from '../../src/system/safety.ts';
import { applyNetworkPlan } from '../../src/system/network/apply.ts';
import { assertMayChangeNetwork, namedNetns } from '../../src/system/network/guard.ts';
import { resetNetworking } from '../../src/system/network/reset.ts';
import { bringUpWiredInterfaces } from '../../src/system/network/wait-address.ts';

// Unit tests run in this machine's own network namespace, where the network
// code must refuse to change anything. Every call below is also harmless if
// the guard were broken (an interface that does not exist, an empty plan).

describe('network change guard', () => {
  it('this test process is neither in a ramdisk nor in a named namespace', () => {
    expect(runningInRamdisk()).toBe(false);
    expect(namedNetns()).toBeUndefined();
  });

  it('refuses every network change here', async () => {
    expect(() => assertMayChangeNetwork('test')).toThrow(SafetyError);
    await expect(bringUpWiredInterfaces({ interfaces: ['mai-no-such-if'] })).rejects.toThrow(SafetyError);
    await expect(resetNetworking({ interfaces: ['mai-no-such-if'] })).rejects.toThrow(SafetyError);
    const empty = { commands: [], acceptRa: [], nameservers: [], warnings: [], interfaces: {}, addresses: [] };
    await expect(applyNetworkPlan(empty)).rejects.toThrow(/not running in a ramdisk or a named network namespace/);
  });

  it('can be explicitly allowed (a lab machine that is a node)', () => {
    expect(() => assertMayChangeNetwork('test', { allowHostNetworkChanges: true })).not.toThrow();
  });

  it('recognises a named namespace by its inode in a given directory', () => {
    // /proc/self/ns/net itself stands in for a /run/netns entry.
    expect(namedNetns('/proc/self/ns')).toBe('net');
  });
});
