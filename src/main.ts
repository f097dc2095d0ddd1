#!/usr/bin/env node
import './base/v8-tuning.ts'; // first: V8 flags before any WebAssembly is compiled
import { Agent } from './agent.ts';
import { ConfigError, helpText, loadConfig } from './config.ts';
import { LookupTimeoutError } from './conductor/session.ts';
import { log } from './log.ts';
import { TOOLS } from './system/tools.ts';

// Entry point: `metal-agent [flags]` runs the agent; subcommands print facts.
// `metal-agent tools | head` closes the pipe early: that is not a failure.
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code === 'EPIPE') process.exit(0);
  throw err;
});

async function main(argv: string[]): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(helpText() + '\n');
    return 0;
  }
  const sub = argv[0] && !argv[0].startsWith('-') ? argv[0] : undefined;
  if (sub === 'tools') {
    for (const [name, t] of Object.entries(TOOLS)) process.stdout.write(`${name}\t${t.pkg}\t${t.why}\n`);
    return 0;
  }
  if (sub === 'inventory') {
    const { collectInventory } = await import('./hardware/inventory.ts');
    const inv = await collectInventory({ collectLldp: argv.includes('--collect-lldp') });
    process.stdout.write(JSON.stringify(inv, null, 2) + '\n');
    return 0;
  }
  if (sub) {
    process.stderr.write(`unknown subcommand "${sub}" (see --help)\n`);
    return 2;
  }

  const config = loadConfig({ argv });
  const agent = new Agent(config);
  const shutdown = (signal: string) => {
    log.info({ signal }, 'shutting down');
    agent.stop().finally(() => process.exit(0));
  };
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
  await agent.start();
  return -1; // keep running
}

main(process.argv.slice(2)).then(
  (code) => {
    if (code >= 0) process.exit(code);
  },
  (err: unknown) => {
    if (err instanceof ConfigError) {
      process.stderr.write(`metal-agent: ${err.message}\n`);
      process.exit(2);
    }
    log.fatal({ err }, err instanceof LookupTimeoutError ? 'lookup timed out' : 'agent failed');
    process.exit(1);
  },
);
