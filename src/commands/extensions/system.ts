import { readdirSync } from 'node:fs';
import { Type } from '@sinclair/typebox';
import { log } from '../../log.ts';
import { ip } from '../../system/network/ip.ts';
import { assertMayChangeNetwork } from '../../system/network/guard.ts';
import type { CommandSpec } from '../engine.ts';

// system.lockdown (IPA 10, sent by Ironic 29.0 instead of a power off when
// the node has disable_power_off set): answer, then stop serving the API and
// heartbeating, take every network interface down, and stay alive without
// doing anything, so a supervisor does not restart an agent that would
// answer again. Ironic then waits until the agent stops answering.
//
// Interfaces go down only where network changes are ours to make (a ramdisk
// or a named test namespace, the same rule as every network change); outside
// those it is a dry run that logs what it would take down. The API and
// heartbeats stop in every case: they are this process's own.

export interface LockdownDeps {
  /** Stops heartbeats and closes the API. */
  quiesce(): Promise<void>;
  /** Interfaces to take down (default: every one in /sys/class/net but lo). */
  interfaces?(): string[];
}

const NoParams = Type.Object({}, { additionalProperties: true });

function listInterfaces(): string[] {
  try {
    return readdirSync('/sys/class/net').filter((n) => n !== 'lo');
  } catch {
    return [];
  }
}

let keepAlive: NodeJS.Timeout | undefined;

async function lockdown(deps: LockdownDeps): Promise<void> {
  await deps.quiesce();
  // Nothing else keeps the event loop busy once the API is closed: keep the
  // process alive, like IPA's endless sleep.
  keepAlive ??= setInterval(() => undefined, 1 << 30);
  const ifaces = (deps.interfaces ?? listInterfaces)();
  let mayChange = true;
  try {
    assertMayChangeNetwork('take network interfaces down for lockdown');
  } catch (err) {
    mayChange = false;
    log.warn({ interfaces: ifaces, reason: (err as Error).message }, 'lockdown (dry run): network interfaces left up');
  }
  if (mayChange) {
    for (const iface of ifaces) {
      try {
        await ip(['link', 'set', iface, 'down']);
      } catch (err) {
        log.warn({ iface, err: (err as Error).message }, 'lockdown: could not take interface down');
      }
    }
  }
  log.info({ interfaces: mayChange ? ifaces : [] }, 'system locked down: API closed, heartbeats stopped');
}

export function systemCommands(deps: LockdownDeps): Record<string, CommandSpec> {
  return {
    lockdown: {
      async: false,
      params: NoParams,
      async run() {
        // After the answer has gone out: closing the API inside its own
        // request would wait for this very request.
        setTimeout(() => {
          lockdown(deps).catch((err) => log.error({ err: (err as Error).message }, 'lockdown failed'));
        }, 200);
        return null;
      },
    },
  };
}
