import { log } from '../../log.ts';
import type { Guard } from '../safety.ts';
import type { DeployState } from '../../base/deploy-state.ts';
import { KexecError } from './find.ts';
import { executeHandoff, prepareHandoff, unloadHandoff, type HandoffPlan, type PreparedHandoff } from './handoff.ts';

// Zero-reboot deploys. Two ways in, one way out:
//  - standby.run_image with kexec enabled (--kexec / ipa-kexec): prepare and
//    execute at once. Ironic sends run_image to end a deploy when the node's
//    power interface cannot power on (the `agent` power interface).
//  - the kexec_handoff deploy step: prepares (finds, stages, loads) while the
//    deploy is still running, so a missing kernel fails the deploy visibly,
//    and arms the handoff; the deploy's final standby.run_image executes it.

export { KexecError } from './find.ts';
export type { HandoffPlan, PreparedHandoff } from './handoff.ts';
export { findBootTarget, type BootTarget } from './find.ts';

/** Armed handoffs, with the deployed disk as deployState named it when they were armed. */
const armed = new WeakMap<DeployState, { prepared: PreparedHandoff; rootDevice: string | undefined }>();

export interface KexecDeps {
  guard: Guard;
  deployState: DeployState;
  /** The disk to look at when no image was written in this session (fast-track re-use). */
  rootDevice(): Promise<string>;
}

async function deviceFor(deps: KexecDeps): Promise<string> {
  return deps.deployState.rootDevice ?? (await deps.rootDevice());
}

function rootUuidFor(state: DeployState): string | undefined {
  if (state.isWholeDisk !== false) return undefined;
  const u = state.partitionUuids.root_uuid;
  return typeof u === 'string' ? u : undefined;
}

/** Finds, stages and (real mode) loads the deployed kernel. */
export async function prepareKexec(deps: KexecDeps, extraParams: readonly string[] = []): Promise<PreparedHandoff> {
  const device = await deviceFor(deps).catch((err: unknown) => {
    throw new KexecError(`no deployed disk to hand off to: ${(err as Error).message}`);
  });
  const kernelParams = [...deps.deployState.kernelParams, ...extraParams.filter((p) => !deps.deployState.kernelParams.includes(p))];
  return prepareHandoff({ device, guard: deps.guard, kernelParams, rootUuid: rootUuidFor(deps.deployState) });
}

/** Keeps a prepared handoff for the deploy's standby.run_image (replaces an earlier one). */
export function armKexec(state: DeployState, prepared: PreparedHandoff): void {
  // A later `kexec -l` replaces an earlier one: nothing to unload.
  armed.set(state, { prepared, rootDevice: state.rootDevice });
}

export function armedKexec(state: DeployState): PreparedHandoff | undefined {
  return armed.get(state)?.prepared;
}

/**
 * standby.run_image's answer: the armed handoff, or a fresh one when kexec is
 * enabled; null means "reboot as usual". A handoff armed for another disk (a
 * new session since) is dropped.
 */
export async function runImageHandoff(deps: KexecDeps & { enabled: boolean; quiesce(): Promise<void> }): Promise<HandoffPlan | null> {
  const entry = armed.get(deps.deployState);
  armed.delete(deps.deployState);
  let prepared = entry?.prepared;
  if (entry && entry.rootDevice !== deps.deployState.rootDevice) {
    const devices = { armed: entry.prepared.plan.device, deployed: deps.deployState.rootDevice ?? null };
    log.warn(devices, 'dropping a kexec handoff armed for another deploy');
    await unloadHandoff(entry.prepared);
    prepared = undefined;
  }
  if (!prepared) {
    if (!deps.enabled) return null;
    prepared = await prepareKexec(deps);
  }
  return executeHandoff(prepared, deps);
}
