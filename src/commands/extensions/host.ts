import type { DeployState } from '../../base/deploy-state.ts';
import type { BlockDevice } from '../../hardware/types.ts';
import type { Guard } from '../../system/safety.ts';
import type { HardwareFacts, StepRegistry } from '../../../steps/index.ts';

// What the extensions need from the agent that hosts them, declared here so
// that commands/ does not import agent.ts (the agent imports commands/, and
// the dependency checker forbids the way back). src/agent.ts's Agent
// implements it; tests can hand in a small fake.

/** The agent options the extensions read (a subset of AgentConfig). */
export interface HostOptions {
  imageDownloadConnectionRetries: number;
  imageDownloadConnectionRetryInterval: number;
  imageDownloadConnectionTimeout: number;
  kexec: boolean;
  insecure?: boolean;
  imageFileDirs?: readonly string[];
}

/** The agent's view of the machine (src/hardware-view.ts). */
export interface HostHardware {
  disks(): Promise<BlockDevice[]>;
  rootDevice(node: Record<string, any>): Promise<BlockDevice>;
  facts(): Promise<HardwareFacts>;
  inventory(): Promise<unknown>;
}

export interface CommandHost {
  readonly options: HostOptions;
  readonly guard: Guard;
  readonly registry: StepRegistry;
  readonly hardware: HostHardware;
  readonly deployState: DeployState;
  /** The `config` object from the last lookup. */
  readonly lookupConfig: Record<string, any>;
  /** The node sent with the last step command (power and kexec commands fall back to it). */
  lastCommandNode: Record<string, any> | undefined;
  lastNode(): Record<string, any>;
  /** Progress for agent_status_message. */
  progress(message: string): void;
  /** ipa-cafile's PEM, for image downloads. */
  cafileContents(): string | undefined;
  /** Stops heartbeats and lets the last one go out before a power action or a handoff. */
  quiesce(): Promise<void>;
}
