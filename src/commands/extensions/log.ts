import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { recentLogLines } from '../../log.ts';
import { redactText } from '../../redact.ts';
import { output, run } from '../../system/exec.ts';
import type { ToolName } from '../../system/tools.ts';
import type { CommandSpec } from '../engine.ts';

// log.collect_system_logs: a base64 gzip tar, as IPA sends it, of the agent's
// own log and the facts an operator needs to understand a failed deploy.
// Ironic 21.4 reads command results without the agent token, so the result is
// as public as the network: every file goes in redacted (src/redact.ts). The
// kernel command line of a virtual-media boot holds ipa-agent-token, dmesg
// repeats it, and logs quote image URLs with passwords or signatures.

export interface LogDeps {
  inventory(): Promise<unknown>;
  commands(): unknown;
  /** Where the facts come from; the defaults read this machine (tests give their own). */
  sources?: Partial<LogSources>;
}

export interface LogSources {
  /** Files copied into the archive, each named after its path (/proc/cmdline -> proc_cmdline). */
  files: readonly string[];
  /** The kernel ring buffer. */
  dmesg(): Promise<string>;
  /** Tool outputs: archive file name, tool, arguments. */
  facts: ReadonlyArray<readonly [file: string, tool: ToolName, args: string[]]>;
}

const DEFAULT_SOURCES: LogSources = {
  files: ['/proc/cmdline', '/proc/mounts', '/proc/meminfo', '/etc/resolv.conf', '/var/log/metal-agent.log'],
  dmesg: () => output('dmesg', []),
  facts: [
    ['lsblk.txt', 'lsblk', ['-a', '-o', 'NAME,PATH,SIZE,TYPE,FSTYPE,LABEL,UUID,PARTUUID,MODEL,SERIAL,TRAN,MOUNTPOINT']],
    ['ip-addr.txt', 'ip', ['addr']],
    ['ip-route.txt', 'ip', ['route']],
    ['ip6-route.txt', 'ip', ['-6', 'route']],
  ],
};

async function bestEffort(fn: () => Promise<string>): Promise<string> {
  try {
    return await fn();
  } catch (err) {
    return `unavailable: ${(err as Error).message}\n`;
  }
}

export async function collectSystemLogs(deps: LogDeps): Promise<string> {
  const sources: LogSources = { ...DEFAULT_SOURCES, ...deps.sources };
  const dir = await mkdtemp(join(tmpdir(), 'metal-agent-logs-'));
  const put = (name: string, text: string) => writeFile(join(dir, name), redactText(text));
  try {
    await put('metal-agent.journal', recentLogLines());
    await put('inventory.json', await bestEffort(async () => JSON.stringify(await deps.inventory(), null, 2)));
    await put('commands.json', JSON.stringify(deps.commands(), null, 2));
    for (const [file, tool, args] of sources.facts) {
      await put(file, await bestEffort(() => output(tool, args)));
    }
    await put('dmesg.txt', await bestEffort(() => sources.dmesg()));
    for (const f of sources.files) {
      const text = await readFile(f, 'utf8').catch(() => undefined);
      if (text !== undefined) await put(f.replace(/^\//, '').replace(/\//g, '_'), text);
    }
    const archive = `${dir}.tgz`;
    await run('tar', ['-czf', archive, '-C', dir, '.']);
    try {
      return (await readFile(archive)).toString('base64');
    } finally {
      await rm(archive, { force: true });
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

export function logCommands(deps: LogDeps): Record<string, CommandSpec> {
  return {
    collect_system_logs: {
      async: false,
      async run() {
        return { system_logs: await collectSystemLogs(deps) };
      },
    },
  };
}
