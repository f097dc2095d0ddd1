import { log } from '../../log.ts';
import type { StepContext } from '../../../steps/index.ts';
import type { CommandEngine } from '../engine.ts';
import { stepCommands } from '../step-commands.ts';
import { logCommands } from './log.ts';
import { standbyCommands } from './standby.ts';
import { imageCommands } from './image.ts';
import { systemCommands } from './system.ts';
import { rescueCommands } from './rescue.ts';
import { runImageHandoff } from '../../system/kexec/index.ts';
import type { CommandHost } from './host.ts';

export type { CommandHost, HostHardware, HostOptions } from './host.ts';
/** IPA's collect_system_logs, for the inspection "logs" collector too. */
export { collectSystemLogs } from './log.ts';

/** Builds the context a step runs in, from the node Ironic sent with the command. */
function stepContext(
  agent: CommandHost,
  node: Record<string, any>,
  ports: Array<Record<string, any>>,
  signal: AbortSignal,
): StepContext {
  const o = agent.options;
  return {
    log: log.child({ node: node.uuid }),
    guard: agent.guard,
    node,
    ports,
    lookupConfig: agent.lookupConfig,
    disks: () => agent.hardware.disks(),
    rootDevice: () => agent.hardware.rootDevice(node),
    progress: (m) => agent.progress(m),
    signal,
    options: {
      imageDownloadRetries: o.imageDownloadConnectionRetries,
      imageDownloadRetryIntervalSec: o.imageDownloadConnectionRetryInterval,
      imageDownloadTimeoutSec: o.imageDownloadConnectionTimeout,
      insecure: o.insecure,
      ca: agent.cafileContents(),
      imageFileDirs: o.imageFileDirs,
    },
    deployState: agent.deployState,
  };
}

export function registerExtensions(engine: CommandEngine, agent: CommandHost): void {
  for (const phase of ['clean', 'deploy', 'service'] as const) {
    engine.register(
      phase,
      stepCommands(phase, {
        registry: agent.registry,
        facts: () => agent.hardware.facts(),
        context: (p, signal) => {
          agent.lastCommandNode = p.node;
          return stepContext(agent, p.node, p.ports, signal);
        },
      }),
    );
  }
  engine.register(
    'standby',
    standbyCommands({
      guard: agent.guard,
      partitionUuids: () => agent.deployState.partitionUuids,
      beforePowerAction: () => agent.quiesce(),
      handoff: () =>
        runImageHandoff({
          guard: agent.guard,
          deployState: agent.deployState,
          rootDevice: async () => (await agent.hardware.rootDevice(agent.lastNode())).name,
          enabled: agent.options.kexec,
          quiesce: () => agent.quiesce(),
        }),
    }),
  );
  engine.register(
    'image',
    imageCommands({
      guard: agent.guard,
      // Read at each command: a new agent token brings a new session with its own deploy state.
      get deployState() {
        return agent.deployState;
      },
      rootDevice: () => agent.hardware.rootDevice(agent.lastNode()),
      lookupConfig: () => agent.lookupConfig,
    }),
  );
  engine.register('log', logCommands({ inventory: () => agent.hardware.inventory(), commands: () => engine.list() }));
  engine.register('rescue', rescueCommands({ guard: agent.guard, quiesce: () => agent.quiesce() }));
  engine.register('system', systemCommands({ quiesce: () => agent.quiesce() }));
}
