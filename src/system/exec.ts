import { execa, ExecaError, type ResultPromise } from 'execa';
import { log } from '../log.ts';
import { TOOLS, type ToolName } from './tools.ts';

// The one door to external programs. Every call names a tool from tools.ts,
// has a timeout, and fails with a typed error that carries what an operator
// needs (command line, exit code, stderr) instead of a bare exit status.

export class ToolMissingError extends Error {
  constructor(readonly tool: ToolName) {
    super(`required tool '${tool}' is not installed (Debian package ${TOOLS[tool].pkg})`);
    this.name = 'ToolMissingError';
  }
}

export class CommandFailedError extends Error {
  constructor(
    readonly tool: ToolName,
    readonly args: readonly string[],
    readonly exitCode: number | undefined,
    readonly stderr: string,
    reason?: string,
  ) {
    const cmd = [tool, ...args].join(' ');
    super(`${cmd} failed${exitCode === undefined ? '' : ` (exit ${exitCode})`}: ${reason ?? (stderr.trim() || 'no output')}`);
    this.name = 'CommandFailedError';
  }
}

export interface RunOptions {
  timeoutMs?: number;
  input?: string | Buffer;
  /** Exit codes other than 0 that are not failures (e.g. blkid's 2 = nothing found). */
  okExitCodes?: number[];
  env?: Record<string, string>;
  cwd?: string;
}

export interface RunResult {
  stdout: string;
  stderr: string;
  exitCode: number;
}

const DEFAULT_TIMEOUT_MS = 10 * 60_000;

function describeFailure(tool: ToolName, args: readonly string[], err: unknown): Error {
  if (err instanceof ExecaError) {
    if (err.code === 'ENOENT') return new ToolMissingError(tool);
    const reason = err.timedOut ? 'timed out' : err.isCanceled ? 'cancelled' : undefined;
    return new CommandFailedError(tool, args, err.exitCode, String(err.stderr ?? ''), reason);
  }
  return err instanceof Error ? err : new Error(String(err));
}

export async function run(tool: ToolName, args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  log.debug({ tool, args }, 'exec');
  try {
    const r = await execa(tool, args, {
      timeout: opts.timeoutMs ?? DEFAULT_TIMEOUT_MS,
      input: opts.input,
      env: opts.env,
      cwd: opts.cwd,
      reject: false,
      stripFinalNewline: false,
    });
    if (r.failed && (r.exitCode === undefined || !(opts.okExitCodes ?? []).includes(r.exitCode))) {
      throw r;
    }
    return { stdout: String(r.stdout), stderr: String(r.stderr), exitCode: r.exitCode ?? 0 };
  } catch (err) {
    throw describeFailure(tool, args, err);
  }
}

/** Like run(), but resolves to stdout only. */
export async function output(tool: ToolName, args: readonly string[], opts: RunOptions = {}): Promise<string> {
  return (await run(tool, args, opts)).stdout;
}

/** Whether a tool can be found on PATH (for optional features). */
export async function hasTool(tool: ToolName): Promise<boolean> {
  try {
    await execa('sh', ['-c', `command -v "$1"`, 'sh', tool]);
    return true;
  } catch {
    return false;
  }
}

/**
 * A long-running child whose stdin/stdout are streams (decompressors, qemu-img).
 * The caller owns the returned process and must await it; failures map to the
 * same typed errors as run().
 */
export function spawnStreaming(
  tool: ToolName,
  args: readonly string[],
  opts: { timeoutMs?: number; stdin?: 'pipe' | 'ignore'; stdout?: 'pipe' | 'ignore' } = {},
): { child: ResultPromise; done: Promise<void> } {
  log.debug({ tool, args }, 'exec (streaming)');
  const child = execa(tool, args, {
    timeout: opts.timeoutMs ?? DEFAULT_TIMEOUT_MS,
    stdin: opts.stdin ?? 'pipe',
    stdout: opts.stdout ?? 'pipe',
    stderr: 'pipe',
    buffer: { stdout: false, stderr: true },
  });
  const done = child.then(
    () => undefined,
    (err: unknown) => {
      throw describeFailure(tool, args, err);
    },
  );
  return { child, done };
}
