import { pino, type Logger } from 'pino';
import { redactText } from './redact.ts';

// One logger for the whole agent. Written synchronously to stderr so that a
// ramdisk console shows every line even if the process dies right after, and
// mirrored into an in-memory ring so log.collect_system_logs can ship it.
// Every line is redacted (src/redact.ts) before it goes anywhere: the console
// and the shipped log must not hold the agent token, URL passwords or signed
// URLs, whichever field or message quotes them.
const RING_LINES = 5000;
const ring: string[] = [];

const ringStream = {
  write(raw: string) {
    const line = redactText(raw);
    process.stderr.write(line);
    ring.push(line);
    if (ring.length > RING_LINES) ring.splice(0, ring.length - RING_LINES);
  },
};

export const log: Logger = pino(
  { level: process.env.METAL_AGENT_LOG_LEVEL ?? 'info', base: { name: 'metal-agent' } },
  ringStream,
);

export function setDebug(debug: boolean): void {
  if (debug && log.level !== 'trace') log.level = 'debug';
}

/** The agent's own log, newest last, for log collection. */
export function recentLogLines(): string {
  return ring.join('');
}

export type { Logger };
