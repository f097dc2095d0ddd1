import type { TSchema } from '@sinclair/typebox';
import type { Logger } from '../src/log.ts';
import type { BlockDevice } from '../src/hardware/types.ts';
import type { Guard } from '../src/system/safety.ts';
import type { DeployState } from '../src/base/deploy-state.ts';
import type { DownloadOptions } from '../src/io/index.ts';

export type { DeployState };

// A step is data plus a function. One registry (steps/index.ts) reads every
// descriptor; get_clean_steps/get_deploy_steps, docs/steps.md and the
// /v1/steps route all come from it. Adding a step is adding one file.

export type StepInterface = 'deploy' | 'raid' | 'bios' | 'management' | 'power';
export type StepPhase = 'clean' | 'deploy' | 'service';

export interface StepArgInfo {
  description: string;
  required: boolean;
  /** Validates the argument before the step runs (TypeBox schema). */
  schema?: TSchema;
}

/** Hardware a step applies to; a step whose filter does not match is not offered. */
export interface HardwareFilter {
  /** Matches system_vendor.manufacturer, case-insensitively, as a substring. */
  vendor?: string[];
  /** At least one disk of these transports must be present (nvme, sata, sas, virtio, ...). */
  diskTransports?: string[];
  /** Programs the step needs; it is not offered where one is missing (burn-in tools are optional in the ramdisk). */
  tools?: string[];
  /** A free-text note shown in docs/steps.md. */
  note?: string;
}

export interface HardwareFacts {
  vendor: string;
  disks: BlockDevice[];
  hasTool(name: string): boolean;
}

export interface StepContext {
  log: Logger;
  guard: Guard;
  /** Node as Ironic sends it (node.as_dict()): driver_internal_info, instance_info, properties, ... */
  node: Record<string, any>;
  ports: Array<Record<string, any>>;
  /** The `config` object from lookup (permitted_image_formats, ...). */
  lookupConfig: Record<string, any>;
  /** Local disks this agent may touch (all in a ramdisk, --allowed-devices elsewhere). */
  disks(): Promise<BlockDevice[]>;
  /** The disk to deploy to: root device hints from the node, else IPA's default choice. */
  rootDevice(): Promise<BlockDevice>;
  /** Progress for agent_status_message (sent with the next heartbeat). */
  progress(message: string): void;
  /** Aborted when Ironic aborts an abortable step or the agent shuts down. */
  signal: AbortSignal;
  /** Agent-wide options steps may need. */
  options: StepOptions;
  /** What the deploy so far has left for later commands (get_partition_uuids, install_bootloader, kexec). */
  deployState: DeployState;
}

/** The agent options steps read: today only the image download's (retries, TLS, file:// directories). */
export type StepOptions = DownloadOptions;

export interface StepDescriptor {
  name: string;
  interface: StepInterface;
  /** Default priority per phase; a phase that is absent does not offer the step. */
  priority: Partial<Record<StepPhase, number>>;
  abortable: boolean;
  rebootRequested: boolean;
  description: string;
  argsinfo?: Record<string, StepArgInfo>;
  appliesTo?: HardwareFilter;
  run(ctx: StepContext, args: Record<string, unknown>): Promise<unknown>;
}
