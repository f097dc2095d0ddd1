import type { DeployState } from './base/deploy-state.ts';

// Everything the agent knows about the node it serves for one agent token:
// built at lookup and replaced whole when Ironic hands out a new token (a new
// phase: behave like a freshly booted ramdisk), so nothing of an earlier
// deploy can leak into the next one. The kexec handoff a kexec_handoff step
// armed is kept by system/kexec keyed by this session's deployState object,
// so it goes with the session too.

export type AgentStatus = 'start' | 'end' | 'error';

export class NodeSession {
  /** What write_image and friends left for get_partition_uuids, install_bootloader and kexec. */
  readonly deployState: DeployState = { partitionUuids: {}, kernelParams: [] };
  /** The node sent with the last step command (power and kexec commands fall back to it). */
  lastCommandNode: Record<string, any> | undefined;
  /** Progress shown in Ironic (agent_status_message) with the next heartbeat. */
  statusMessage: string | undefined;
  agentStatus: AgentStatus | undefined;

  constructor(
    /** The node as learnt at lookup (undefined before the first lookup, and in standalone mode). */
    private lookupNode: Record<string, any> | undefined = undefined,
    /** The `config` object of that lookup. */
    private lookupAnswer: Readonly<Record<string, any>> = {},
  ) {}

  get node(): Record<string, any> | undefined {
    return this.lookupNode;
  }

  get lookupConfig(): Readonly<Record<string, any>> {
    return this.lookupAnswer;
  }

  /** A lookup that kept the token: the same session, with what this lookup said of the node. */
  lookedUp(node: Record<string, any>, config: Readonly<Record<string, any>>): void {
    this.lookupNode = node;
    this.lookupAnswer = config;
  }

  /** The node as last sent by Ironic (with a command) or learnt at lookup. */
  lastNode(): Record<string, any> {
    return this.lastCommandNode ?? this.node ?? {};
  }
}
