import { randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { Value } from '@sinclair/typebox/value';
import type { TSchema } from '@sinclair/typebox';
import { log } from '../log.ts';
import { redactText } from '../redact.ts';
import { AgentError, InvalidCommandParamsError, toWireError, type WireError } from './wire-errors.ts';

// The command engine: `extension.command` registry, one command at a time,
// results kept in order. It knows nothing of HTTP: the API maps the typed
// rejections below onto IPA's status codes and faultstrings.

export type CommandStatus = 'RUNNING' | 'SUCCEEDED' | 'FAILED' | 'CLEAN_VERSION_MISMATCH';

/** The five keys IPA puts in every command result, nothing more. */
export interface CommandResult {
  id: string;
  command_name: string;
  command_status: CommandStatus;
  command_error: WireError | null;
  command_result: unknown;
}

export interface CommandSpec {
  /** Runs in the background and answers RUNNING at once (IPA's @async_command). */
  async: boolean;
  /** TypeBox schema for params; a mismatch is refused before anything runs. */
  params?: TSchema;
  /** Error class used when the command throws something that is not an AgentError. */
  failureClass?: new (details: string) => AgentError;
  run(params: Record<string, any>, signal: AbortSignal): Promise<unknown>;
}

/** A command whose outcome is a status other than SUCCEEDED without being an error. */
export class StatusOutcome {
  constructor(
    readonly status: CommandStatus,
    readonly result: unknown,
  ) {}
}

export type Rejection =
  | { kind: 'invalid-name'; message: string }
  | { kind: 'busy'; running: string }
  | { kind: 'unknown-extension'; extension: string }
  | { kind: 'unknown-command'; command: string }
  | { kind: 'invalid-params'; message: string };

export class CommandRejected extends Error {
  constructor(readonly rejection: Rejection) {
    super(rejection.kind);
  }
}

export class CommandEngine extends EventEmitter<{ finished: [result: CommandResult, wasAsync: boolean] }> {
  private readonly extensions = new Map<string, Map<string, CommandSpec>>();
  private readonly results: CommandResult[] = [];
  private readonly completions = new Map<string, Promise<CommandResult>>();
  private running: CommandResult | undefined;
  private abort = new AbortController();

  register(extension: string, commands: Record<string, CommandSpec>): void {
    const ext = this.extensions.get(extension) ?? new Map<string, CommandSpec>();
    for (const [name, spec] of Object.entries(commands)) ext.set(name, spec);
    this.extensions.set(extension, ext);
  }

  /** Every `extension.command` the engine knows. */
  names(): string[] {
    return [...this.extensions].flatMap(([e, cmds]) => [...cmds.keys()].map((c) => `${e}.${c}`));
  }

  list(): CommandResult[] {
    return this.results.slice();
  }

  get(id: string): CommandResult | undefined {
    return this.results.find((r) => r.id === id);
  }

  get busy(): boolean {
    return this.running !== undefined;
  }

  /** Resolves when the command with this id is no longer RUNNING. */
  async wait(id: string): Promise<CommandResult | undefined> {
    const pending = this.completions.get(id);
    return pending ? await pending : this.get(id);
  }

  /**
   * Forgets finished results. Used when Ironic hands out a new token to an
   * agent that outlived a phase: from Ironic's side that is a freshly booted
   * ramdisk, whose command list starts empty (agent_base._freshly_booted).
   */
  resetHistory(): void {
    const kept = this.results.filter((r) => r.command_status === 'RUNNING');
    this.results.splice(0, this.results.length, ...kept);
  }

  /** Aborts the running command's signal (abortable steps, shutdown). */
  abortRunning(): void {
    this.abort.abort();
  }

  /**
   * Validates and starts a command. Throws CommandRejected (nothing stored,
   * nothing run) for the cases IPA answers with 4xx; otherwise returns the
   * stored result: final for synchronous commands, RUNNING for asynchronous ones.
   */
  async execute(fullName: string, params: Record<string, any>): Promise<CommandResult> {
    const dot = fullName.indexOf('.');
    if (dot < 0) {
      throw new CommandRejected({ kind: 'invalid-name', message: 'Command name must be of the form <extension>.<name>' });
    }
    if (this.running) throw new CommandRejected({ kind: 'busy', running: this.running.command_name });
    const extName = fullName.slice(0, dot);
    const cmdName = fullName.slice(dot + 1);
    const ext = this.extensions.get(extName);
    if (!ext) throw new CommandRejected({ kind: 'unknown-extension', extension: extName });
    const spec = ext.get(cmdName);
    if (!spec) throw new CommandRejected({ kind: 'unknown-command', command: cmdName });
    if (spec.params && !Value.Check(spec.params, params)) {
      const first = [...Value.Errors(spec.params, params)][0];
      const where = first?.path ? `${first.path}: ` : '';
      throw new CommandRejected({ kind: 'invalid-params', message: `${where}${first?.message ?? 'invalid parameters'}` });
    }

    const result: CommandResult = {
      id: randomUUID(),
      command_name: cmdName,
      command_status: 'RUNNING',
      command_error: null,
      command_result: null,
    };
    this.results.push(result);
    this.running = result;
    this.abort = new AbortController();
    log.info({ command: fullName, id: result.id }, 'command started');
    const completion = this.runToEnd(spec, params, result, this.abort.signal, fullName);
    this.completions.set(result.id, completion);
    if (!spec.async) await completion;
    return result;
  }

  private async runToEnd(
    spec: CommandSpec,
    params: Record<string, any>,
    result: CommandResult,
    signal: AbortSignal,
    fullName: string,
  ): Promise<CommandResult> {
    // Let execute() return the RUNNING result before any work happens.
    await Promise.resolve();
    try {
      const value = await spec.run(params, signal);
      if (value instanceof StatusOutcome) {
        result.command_status = value.status;
        result.command_result = value.result;
      } else {
        result.command_status = 'SUCCEEDED';
        result.command_result = value ?? null;
      }
    } catch (err) {
      result.command_status = 'FAILED';
      result.command_error = redactWireError(toWireError(err, spec.failureClass));
      if (result.command_error.type === InvalidCommandParamsError.name) {
        log.warn({ command: fullName, err: result.command_error.details }, 'invalid parameters');
      }
      log.error({ command: fullName, id: result.id, error: result.command_error }, 'command failed');
    } finally {
      this.running = undefined;
      this.completions.delete(result.id);
    }
    if (result.command_status !== 'FAILED') {
      log.info({ command: fullName, id: result.id, status: result.command_status }, 'command finished');
    }
    this.emit('finished', result, spec.async);
    return result;
  }
}

/** Command results can be read without the agent token (Ironic 21.4): no secret a message quoted goes out. */
function redactWireError(e: WireError): WireError {
  return { ...e, message: redactText(e.message), details: redactText(e.details) };
}
