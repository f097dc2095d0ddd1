import { log } from '../../log.ts';
import { run } from '../exec.ts';
import { runningInRamdisk, type Guard } from '../safety.ts';
import { resetNetworking } from '../network/reset.ts';
import { removeStaging, stageBootTarget, type Staged } from './disk.ts';
import { KexecError, type FindOptions } from './find.ts';

// The handoff: stage the deployed kernel in RAM, unmount, `kexec -l`, then
// quiesce the agent (last heartbeat, API and heartbeats stopped), sync and
// `kexec -e`. Only guard.powerIsReal (the agent runs in the node's ramdisk,
// or --allow-power-actions on a lab machine that is a node) makes the two
// kexec calls real; otherwise everything up to them runs for real (find,
// read, stage, unmount) and the result says exactly what would be executed.

export { KexecError } from './find.ts';

/** Lets the last heartbeat and the HTTP answer leave before the kernel is replaced. */
const GRACE_MS = 1000;

export interface HandoffPlan {
  dry_run: boolean;
  message: string;
  device: string;
  method: 'grub' | 'bls' | 'symlinks';
  /** Where the boot entry came from. */
  source: string;
  entry: string | null;
  kernel: Staged['kernel'];
  initrd: { parts: Staged['initrds']; size: number } | null;
  /** The command line the deployed OS's entry boots with. */
  base_cmdline: string;
  /** What the kexec'd kernel gets (custom parameters added). */
  cmdline: string;
  kernel_params: string[];
  /** The commands of the handoff, in order, as they run (or would run). */
  commands: string[][];
  notes: string[];
}

/** Runs kexec. The one place kexec is invoked; tests of the real path pass a recorder. */
export type KexecRunner = (args: string[]) => Promise<unknown>;

const runKexec: KexecRunner = (args) => run('kexec', args, { timeoutMs: 120_000 });

export interface PrepareOptions extends FindOptions {
  device: string;
  guard: Guard;
  /** Replaces the kexec program (tests); default: src/system/exec.ts run('kexec', ...). */
  kexec?: KexecRunner;
}

/** A prepared handoff: kernel loaded (real) or ready to be reported (dry run). */
export interface PreparedHandoff {
  plan: HandoffPlan;
  real: boolean;
  kexec: KexecRunner;
}

function kexecLoadArgs(s: Staged): string[] {
  return ['-l', s.kernelPath, ...(s.initrdPath ? [`--initrd=${s.initrdPath}`] : []), `--command-line=${s.target.cmdline}`];
}

/**
 * Finds and stages the deployed kernel, unmounts, and (real mode only) loads
 * it with `kexec -l`. Any failure leaves the disk as it was, no kernel
 * loaded, and throws KexecError with what went wrong.
 */
export async function prepareHandoff(opts: PrepareOptions): Promise<PreparedHandoff> {
  const real = opts.guard.powerIsReal;
  const kexec = opts.kexec ?? runKexec;
  const staged = await stageBootTarget(opts.device, opts);
  try {
    const load = kexecLoadArgs(staged);
    const t = staged.target;
    if (real) {
      log.warn({ load }, 'loading the deployed kernel with kexec');
      try {
        await kexec(load);
      } catch (err) {
        throw new KexecError(`kexec could not load ${t.kernel.path} from partition ${t.kernel.partition}: ${(err as Error).message}`);
      }
    }
    const what = `${t.kernel.path} (partition ${t.kernel.partition}${staged.kernel.version ? `, ${staged.kernel.version}` : ''})`;
    const message = real
      ? `loaded ${what} with kexec; the handoff executes it`
      : `dry run: would kexec into ${what} with '${t.cmdline}', but the agent is not running in a ramdisk ` +
        '(use --allow-power-actions on a machine that is a node)';
    return {
      real,
      kexec,
      plan: {
        dry_run: !real,
        message,
        device: opts.device,
        method: t.method,
        source: t.source,
        entry: t.entry ?? null,
        kernel: staged.kernel,
        initrd: staged.initrdPath ? { parts: staged.initrds, size: staged.initrdSize! } : null,
        base_cmdline: t.baseCmdline,
        cmdline: t.cmdline,
        kernel_params: [...(opts.kernelParams ?? [])],
        commands: [['kexec', ...load], ['sync'], ['kexec', '-e']],
        notes: t.notes,
      },
    };
  } finally {
    // kexec -l copied the files into kernel memory; a dry run has read them: either way they can go.
    await removeStaging(staged.dir);
  }
}

export interface ExecuteDeps {
  /** agent.quiesce(): a last heartbeat, then heartbeats and the API stopped. */
  quiesce(): Promise<void>;
}

/**
 * Executes a prepared handoff. Dry run: returns the plan, nothing else
 * happens (the agent keeps serving). Real: quiesce, reset the NICs (ramdisk
 * only, so the deployed OS finds them quiet), sync, and `kexec -e` after a
 * grace period; the returned plan is the last thing this agent says.
 */
export async function executeHandoff(prepared: PreparedHandoff, deps: ExecuteDeps): Promise<HandoffPlan> {
  const { plan } = prepared;
  if (!prepared.real) {
    log.warn({ kernel: plan.kernel.path, cmdline: plan.cmdline, commands: plan.commands }, plan.message);
    return plan;
  }
  log.warn({ kernel: plan.kernel.path, cmdline: plan.cmdline }, 'handing off to the deployed OS with kexec');
  await deps.quiesce();
  if (runningInRamdisk()) {
    await resetNetworking().catch((err: unknown) => log.warn({ err: String(err) }, 'network reset before kexec failed (continuing)'));
  }
  await run('sync', []);
  // Not unref'd: with the API closed and heartbeats stopped this timer is all
  // that keeps the process alive; unref'd, node exits before kexec -e runs.
  setTimeout(() => {
    prepared.kexec(['-e']).catch((err: unknown) =>
      log.error({ err: String(err) }, 'kexec -e failed: the agent has stopped serving; power-cycle the node'),
    );
  }, GRACE_MS);
  return { ...plan, message: `kexec -e in ${GRACE_MS} ms into ${plan.kernel.path}` };
}

/** Drops a loaded-but-not-executed kernel (real mode), e.g. when an armed handoff is abandoned. */
export async function unloadHandoff(prepared: PreparedHandoff): Promise<void> {
  if (prepared.real) await prepared.kexec(['-u']).catch((err: unknown) => log.warn({ err: String(err) }, 'kexec -u failed'));
}
