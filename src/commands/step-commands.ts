import { Type } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import {
  HARDWARE_MANAGER,
  hardwareManagerVersions,
  type HardwareFacts,
  type StepContext,
  type StepPhase,
  type StepRegistry,
} from '../../steps/index.ts';
import { CleaningError, DeploymentError, InvalidCommandParamsError, ServicingError, type AgentError } from './wire-errors.ts';
import { StatusOutcome, type CommandSpec } from './engine.ts';

// clean.*, deploy.* and service.* are the same machine with other names:
// list the registry's steps for the phase, and run one of them.

export interface StepCommandDeps {
  registry: StepRegistry;
  facts(): Promise<HardwareFacts>;
  context(params: { node: Record<string, any>; ports: Array<Record<string, any>> }, signal: AbortSignal): StepContext;
}

const FAILURE: Record<StepPhase, new (d: string) => AgentError> = {
  clean: CleaningError,
  deploy: DeploymentError,
  service: ServicingError,
};

const StepParams = Type.Object({
  step: Type.Object({
    step: Type.String(),
    interface: Type.String(),
    args: Type.Optional(Type.Record(Type.String(), Type.Unknown())),
  }),
  node: Type.Optional(Type.Record(Type.String(), Type.Unknown())),
  ports: Type.Optional(Type.Array(Type.Record(Type.String(), Type.Unknown()))),
});

const ListParams = Type.Object({
  node: Type.Optional(Type.Record(Type.String(), Type.Unknown())),
  ports: Type.Optional(Type.Array(Type.Unknown())),
});

function versionsMatch(given: unknown): boolean {
  if (given === undefined || given === null) return true;
  const ours = hardwareManagerVersions();
  if (typeof given !== 'object') return false;
  return Object.entries(given as Record<string, unknown>).every(([k, v]) => k in ours && ours[k] === v);
}

function validateArgs(argsinfo: Record<string, { required: boolean; schema?: any }> | undefined, args: Record<string, unknown>): void {
  for (const [name, info] of Object.entries(argsinfo ?? {})) {
    if (info.required && args[name] === undefined) throw new InvalidCommandParamsError(`argument ${name} is required`);
    if (args[name] !== undefined && info.schema && !Value.Check(info.schema, args[name])) {
      const first = [...Value.Errors(info.schema, args[name])][0];
      throw new InvalidCommandParamsError(`argument ${name}${first?.path ?? ''}: ${first?.message ?? 'invalid'}`);
    }
  }
  const unknown = Object.keys(args).filter((k) => !(argsinfo && k in argsinfo));
  if (unknown.length) throw new InvalidCommandParamsError(`unknown argument(s): ${unknown.join(', ')}`);
}

export function stepCommands(phase: StepPhase, deps: StepCommandDeps): Record<string, CommandSpec> {
  const Failure = FAILURE[phase];
  return {
    [`get_${phase}_steps`]: {
      async: false,
      params: ListParams,
      async run() {
        const steps = deps.registry.wireSteps(phase, await deps.facts());
        return { [`${phase}_steps`]: { [HARDWARE_MANAGER]: steps }, hardware_manager_version: hardwareManagerVersions() };
      },
    },
    [`execute_${phase}_step`]: {
      async: true,
      params: StepParams,
      failureClass: Failure,
      async run(params, signal) {
        const step = params.step as { step: string; interface: string; args?: Record<string, unknown> };
        const given = params[`${phase}_version`];
        if (!versionsMatch(given)) {
          const detail =
            `hardware manager versions changed: conductor has ${JSON.stringify(given)}, ` +
            `agent has ${JSON.stringify(hardwareManagerVersions())}`;
          if (phase === 'clean') {
            return new StatusOutcome('CLEAN_VERSION_MISMATCH', { [`${phase}_result`]: detail, [`${phase}_step`]: step });
          }
          throw new Failure(detail);
        }
        const descriptor = deps.registry.find(phase, step.interface, step.step);
        if (!descriptor) throw new Failure(`unknown ${phase} step ${step.interface}.${step.step}: this agent does not offer it`);
        const args = step.args ?? {};
        validateArgs(descriptor.argsinfo, args);
        const node = (params.node ?? {}) as Record<string, any>;
        const ports = (params.ports ?? []) as Array<Record<string, any>>;
        const ctx = deps.context({ node, ports }, signal);
        const result = await descriptor.run(ctx, args);
        return { [`${phase}_result`]: result ?? null, [`${phase}_step`]: step };
      },
    },
  };
}
