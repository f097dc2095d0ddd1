import { setTimeout as sleep } from 'node:timers/promises';
import { log } from '../log.ts';
import { DomainError, ExternalCommandFailure } from '../base/errors.ts';
import { spawnStreaming } from '../system/exec.ts';
import type { ToolName } from '../system/tools.ts';
import type { Guard } from '../system/safety.ts';
import type { BlockDevice } from './types.ts';

// IPA's burn-in steps (burnin.py): stress-ng for CPU and memory, fio for
// disks and network, configured through driver_info keys agent_burnin_*.
// They run for hours by default (24 h CPU/memory, 6 h network), so they
// stream output to the log and stop when the step is aborted.

type Info = Record<string, unknown>;

/** A burn-in that cannot start as configured; it reaches Ironic as the phase's error (IPA: CleaningError). */
export class BurninConfigError extends DomainError {}

async function runLong(tool: ToolName, args: string[], signal?: AbortSignal): Promise<void> {
  log.info({ tool, args }, 'burn-in');
  const { child, done } = spawnStreaming(tool, args, { timeoutMs: 8 * 24 * 3600_000, stdin: 'ignore' });
  const onAbort = () => child.kill('SIGTERM');
  signal?.addEventListener('abort', onAbort, { once: true });
  child.stdout?.on('data', (c: Buffer) => log.info({ tool }, c.toString().trimEnd()));
  child.stderr?.on('data', (c: Buffer) => log.info({ tool }, c.toString().trimEnd()));
  try {
    await done;
  } catch (err) {
    throw new ExternalCommandFailure(`${tool} failed with error ${(err as Error).message}`);
  } finally {
    signal?.removeEventListener('abort', onAbort);
  }
}

const s = (v: unknown) => String(v);

export function stressNgCpuArgs(info: Info): string[] {
  const args = ['--cpu', s(info.agent_burnin_cpu_cpu ?? 0), '--timeout', s(info.agent_burnin_cpu_timeout ?? 86400), '--metrics-brief'];
  if (info.agent_burnin_cpu_outputfile) args.push('--log-file', s(info.agent_burnin_cpu_outputfile));
  return args;
}

export function stressNgVmArgs(info: Info): string[] {
  const args = [
    '--vm', s(info.agent_burnin_vm_vm ?? 0),
    '--vm-bytes', s(info['agent_burnin_vm_vm-bytes'] ?? '98%'),
    '--timeout', s(info.agent_burnin_vm_timeout ?? 86400),
    '--metrics-brief',
  ];
  if (info.agent_burnin_vm_outputfile) args.push('--log-file', s(info.agent_burnin_vm_outputfile));
  return args;
}

export function fioDiskArgs(info: Info, disks: readonly BlockDevice[]): string[] {
  const args = [
    '--rw', 'readwrite', '--bs', '4k', '--direct', '1', '--ioengine', 'libaio', '--iodepth', '32',
    '--verify', 'crc32c', '--verify_dump', '1', '--continue_on_error', 'verify',
    '--loops', s(info.agent_burnin_fio_disk_loops ?? 4),
    '--runtime', s(info.agent_burnin_fio_disk_runtime ?? 0), '--time_based',
  ];
  if (info.agent_burnin_fio_disk_outputfile) {
    args.push('--output-format', 'json', '--output', s(info.agent_burnin_fio_disk_outputfile));
  }
  for (const d of disks) args.push('--name', d.name);
  return args;
}

export async function burninCpu(info: Info, signal?: AbortSignal): Promise<void> {
  await runLong('stress-ng', stressNgCpuArgs(info), signal);
}

export async function burninMemory(info: Info, signal?: AbortSignal): Promise<void> {
  await runLong('stress-ng', stressNgVmArgs(info), signal);
}

/** fio writes to every disk: each one must pass the guard first. */
export async function burninDisk(info: Info, disks: readonly BlockDevice[], guard: Guard, signal?: AbortSignal): Promise<void> {
  for (const d of disks) guard.assertWritable(d.name);
  if (!disks.length) throw new BurninConfigError('fio (disk): no disks to burn in');
  await runLong('fio', fioDiskArgs(info, disks), signal);
}

export function fioNetworkArgs(writer: boolean, runtime: unknown, partner: string, outputfile: string | null): string[] {
  const args = ['--ioengine', 'net', '--port', '9000', '--fill_device', '1', '--group_reporting', '--gtod_reduce', '1', '--numjobs', '16'];
  args.push(...(writer
    ? ['--name', 'writer', '--rw', 'write', '--runtime', s(runtime), '--time_based', '--listen']
    : ['--name', 'reader', '--rw', 'read', '--hostname', partner]));
  if (outputfile) args.push('--output-format', 'json', '--output', outputfile);
  return args;
}

/** Pairwise network burn-in: writer then reader, roles swapped after the first run (as IPA). */
export async function burninNetwork(info: Info, signal?: AbortSignal): Promise<void> {
  const runtime = info.agent_burnin_fio_network_runtime ?? 21600;
  const outputfile = (info.agent_burnin_fio_network_outputfile as string | undefined) ?? null;
  const config = info.agent_burnin_fio_network_config as { role?: string; partner?: string } | undefined;
  if (!config) throw new BurninConfigError("fio (network) failed to find 'agent_burnin_fio_network_config' in driver_info");
  if (config.role !== 'writer' && config.role !== 'reader') throw new BurninConfigError(`fio (network) found an unknown role: ${config.role}`);
  if (!config.partner) throw new BurninConfigError('fio (network) failed to find partner');
  const first = config.role === 'writer';
  for (const writer of [first, !first]) {
    const role = writer ? 'writer' : 'reader';
    const file = outputfile ? `${outputfile}.${role}` : null;
    for (;;) {
      try {
        await runLong('fio', fioNetworkArgs(writer, runtime, config.partner, file), signal);
        break;
      } catch (err) {
        // The reader fails while its partner's writer is not listening yet: retry.
        if (writer || signal?.aborted) throw err;
        log.info('fio (network): reader retrying in 30 seconds');
        await sleep(30_000);
      }
    }
  }
}
