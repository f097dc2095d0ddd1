import { readdirSync, statSync } from 'node:fs';
import { runningInRamdisk, SafetyError } from '../safety.ts';

// Changing links, addresses, routes or sysctls is what a ramdisk agent must do
// and what must never happen to a developer's or CI machine. Outside a
// ramdisk, network changes are allowed only inside a named network namespace
// (`ip netns add ...`, as the tests use) or when explicitly enabled.

/** Name of the `ip netns` namespace this process runs in, if it is one. */
export function namedNetns(netnsDir = '/run/netns'): string | undefined {
  try {
    const self = statSync('/proc/self/ns/net');
    for (const name of readdirSync(netnsDir)) {
      try {
        const s = statSync(`${netnsDir}/${name}`);
        if (s.ino === self.ino && s.dev === self.dev) return name;
      } catch {
        // a namespace being deleted: not ours
      }
    }
  } catch {
    // no /run/netns: not a named namespace
  }
  return undefined;
}

export interface NetworkChangePolicy {
  /** Let network changes happen on this machine's own network (a lab machine that is a node). */
  allowHostNetworkChanges?: boolean;
}

export function assertMayChangeNetwork(what: string, policy: NetworkChangePolicy = {}): void {
  if (policy.allowHostNetworkChanges || runningInRamdisk() || namedNetns() !== undefined) return;
  throw new SafetyError(
    `refusing to ${what}: not running in a ramdisk or a named network namespace (this machine's own network)`,
  );
}
