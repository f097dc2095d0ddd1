import { Type } from '@sinclair/typebox';
import { log } from '../../log.ts';
import { prepareRescue, renewDhcpLeases, rescueHash, RescueInputError, type RescueDeps } from '../../system/rescue/index.ts';
import { CommandExecutionError, InvalidCommandParamsError } from '../wire-errors.ts';
import type { CommandSpec } from '../engine.ts';

// rescue.finalize_rescue, IPA's synchronous command: Ironic sends it on the
// first heartbeat of a node in "rescue wait" and moves the node to "rescue"
// when it SUCCEEDED. The password is set and the logins are started before
// the answer, so a failure reaches Ironic (rescue failed) instead of a node
// nobody can log in to. After the answer the agent stops heartbeating and
// closes its API (IPA's serve_api = False: the API must not stay open on
// the tenant network), renews DHCP leases for the network Ironic switches
// the node to, and stays alive doing nothing so the ramdisk init has nothing
// to restart.

export interface RescueCommandDeps extends RescueDeps {
  /** Stops heartbeats and closes the API. */
  quiesce(): Promise<void>;
  /** Renews DHCP after the answer (default: renewDhcpLeases, ramdisk only). */
  renewNetwork?: () => Promise<unknown>;
  /** Delay between the answer and closing the API (default 200 ms). */
  afterAnswerMs?: number;
}

const Params = Type.Object({}, { additionalProperties: true });

let keepAlive: NodeJS.Timeout | undefined;

async function leave(deps: RescueCommandDeps): Promise<void> {
  await deps.quiesce();
  // Nothing else keeps the event loop busy once the API is closed.
  keepAlive ??= setInterval(() => undefined, 1 << 30);
  log.info('rescue: API closed and heartbeats stopped; the node belongs to the rescue user');
  if (deps.renewNetwork) await deps.renewNetwork();
  else if (deps.guard.opts.inRamdisk) await renewDhcpLeases();
}

export function rescueCommands(deps: RescueCommandDeps): Record<string, CommandSpec> {
  return {
    finalize_rescue: {
      async: false,
      params: Params,
      failureClass: CommandExecutionError,
      async run(params) {
        let hash: string;
        try {
          hash = rescueHash(params.rescue_password, params.hashed);
        } catch (err) {
          if (err instanceof RescueInputError) throw new InvalidCommandParamsError(err.message);
          throw err;
        }
        const outcome = await prepareRescue(hash, deps);
        // After the answer has gone out: closing the API inside its own request would wait for it.
        setTimeout(() => {
          leave(deps).catch((err: unknown) => log.error({ err: (err as Error).message }, 'rescue: leaving the API failed'));
        }, deps.afterAnswerMs ?? 200);
        return outcome.dry_run ? outcome : null;
      },
    },
  };
}

/** Stops the keep-alive timer (tests only). */
export function releaseRescueKeepAlive(): void {
  if (keepAlive) clearInterval(keepAlive);
  keepAlive = undefined;
}
