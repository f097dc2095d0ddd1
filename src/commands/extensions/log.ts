import { copyFile, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { recentLogLines } from '../../log.ts';
import { output, run } from '../../system/exec.ts';
import type { ToolName } from '../../system/tools.ts';
import type { CommandSpec } from '../engine.ts';

// log.collect_system_logs: a base64 gzip tar, as IPA sends it, of the agent's
// own log and the facts an operator needs to understand a failed deploy.

export interface LogDeps {
  inventory(): Promise<unknown>;
  commands(): unknown;
}

const FACTS: Array<[file: string, tool: ToolName, args: string[]]> = [
  ['lsblk.txt', 'lsblk', ['-a', '-o', 'NAME,PATH,SIZE,TYPE,FSTYPE,LABEL,UUID,PARTUUID,MODEL,SERIAL,TRAN,MOUNTPOINT']],
  ['ip-addr.txt', 'ip', ['addr']],
  ['ip-route.txt', 'ip', ['route']],
  ['ip6-route.txt', 'ip', ['-6', 'route']],
];

const FILES = ['/proc/cmdline', '/proc/mounts', '/proc/meminfo', '/etc/resolv.conf', '/var/log/metal-agent.log'];

async function bestEffort(fn: () => Promise<string>): Promise<string> {
  try {
    return await fn();
  } catch (err) {
    return `unavailable: ${(err as Error).message}\n`;
  }
}

export async function collectSystemLogs(deps: LogDeps): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'metal-agent-logs-'));
  try {
    await writeFile(join(dir, 'metal-agent.journal'), recentLogLines());
    await writeFile(join(dir, 'inventory.json'), await bestEffort(async () => JSON.stringify(await deps.inventory(), null, 2)));
    await writeFile(join(dir, 'commands.json'), JSON.stringify(deps.commands(), null, 2));
    for (const [file, tool, args] of FACTS) {
      await writeFile(join(dir, file), await bestEffort(() => output(tool, args)));
    }
    await writeFile(join(dir, 'dmesg.txt'), await bestEffort(() => output('dmesg', [])));
    for (const f of FILES) {
      await copyFile(f, join(dir, f.replace(/^\//, '').replace(/\//g, '_'))).catch(() => undefined);
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
