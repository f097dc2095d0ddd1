import { Type } from '@sinclair/typebox';
import { run } from '../../system/exec.ts';
import { powerAction } from '../../system/power.ts';
import type { Guard } from '../../system/safety.ts';
import { SystemRebootError } from '../wire-errors.ts';
import type { CommandSpec } from '../engine.ts';

export interface StandbyDeps {
  guard: Guard;
  /** What the last write_image learnt about the deployed disk (root uuid, ...). */
  partitionUuids(): Record<string, unknown>;
  /** standby.run_image: kexec into the deployed OS when enabled, else null to reboot. */
  handoff?: () => Promise<unknown | null>;
  /** Called before the machine goes away: last heartbeat, stop serving. */
  beforePowerAction?: () => Promise<void>;
}

const NoParams = Type.Object({}, { additionalProperties: true });

export function standbyCommands(deps: StandbyDeps): Record<string, CommandSpec> {
  const power = async (action: 'power_off' | 'reboot') => {
    const outcome = await powerAction(action, deps.guard);
    if (!outcome.dry_run) await deps.beforePowerAction?.();
    return outcome;
  };
  return {
    sync: {
      async: false,
      params: NoParams,
      async run() {
        await run('sync', []);
        return null;
      },
    },
    get_partition_uuids: {
      async: false,
      params: NoParams,
      async run() {
        return deps.partitionUuids();
      },
    },
    power_off: {
      async: true,
      params: NoParams,
      failureClass: SystemRebootError,
      run: () => power('power_off'),
    },
    run_image: {
      async: true,
      params: NoParams,
      failureClass: SystemRebootError,
      async run() {
        const handedOff = deps.handoff ? await deps.handoff() : null;
        return handedOff ?? (await power('reboot'));
      },
    },
  };
}
