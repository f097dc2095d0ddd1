import { log } from '../log.ts';
import { run } from './exec.ts';
import type { Guard } from './safety.ts';

// Power actions on the machine the agent runs on. Outside a ramdisk they are
// a dry run unless --allow-power-actions says otherwise: Ironic ends every
// deploy with standby.power_off, and a test must never power off its host.

export interface PowerOutcome {
  action: 'power_off' | 'reboot';
  dry_run: boolean;
  message: string;
}

/** Delay so that the HTTP answer and a last heartbeat leave before the lights go out. */
const GRACE_MS = 1000;

export async function powerAction(action: PowerOutcome['action'], guard: Guard): Promise<PowerOutcome> {
  await run('sync', []);
  if (!guard.powerIsReal) {
    const message =
      `dry run: would ${action === 'power_off' ? 'power off' : 'reboot'} this machine, but the agent is not running in a ramdisk ` +
      '(use --allow-power-actions on a machine that is a node)';
    log.warn({ action }, message);
    return { action, dry_run: true, message };
  }
  log.warn({ action }, 'executing power action');
  setTimeout(() => {
    run(action === 'power_off' ? 'poweroff' : 'reboot', ['-f']).catch((err: unknown) =>
      log.error({ err, action }, 'power action failed'),
    );
  }, GRACE_MS).unref();
  return { action, dry_run: false, message: `${action} in ${GRACE_MS} ms` };
}
