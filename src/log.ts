import { pino, type Logger } from 'pino';

// One logger for the whole agent. Written synchronously to stderr so that a
// ramdisk console shows every line even if the process dies right after, and
// mirrored into an in-memory ring so log.collect_system_logs can ship it.
const RING_LINES = 5000;
const ring: string[] = [];

const ringStream = {
  write(line: string) {
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
