import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';

// The environment the ramdisk's init gives the agent (ramdisk-build/agent.env): tests and benches
// that start the executable outside a ramdisk start it with the same, so what they measure is what
// a node runs.
const AGENT_ENV = resolve(import.meta.dirname, '../../ramdisk-build/agent.env');

export function agentEnv(): Record<string, string> {
  const env: Record<string, string> = {};
  for (const line of readFileSync(AGENT_ENV, 'utf8').split('\n')) {
    const t = line.trim();
    if (!t || t.startsWith('#')) continue;
    const eq = t.indexOf('=');
    if (eq <= 0) throw new Error(`${AGENT_ENV}: not KEY=VALUE: ${t}`);
    env[t.slice(0, eq)] = t.slice(eq + 1);
  }
  return env;
}
