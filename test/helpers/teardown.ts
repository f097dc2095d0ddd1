import { spawnSync } from 'node:child_process';

// A process-level registry of lab teardowns (issue 16: every lab part goes away,
// also after a failure or Ctrl-C). Whatever starts a lab part (a namespace, a
// BMC, Ironic) registers a synchronous teardown here and unregisters it when its
// own stop() ran. The teardowns still registered run, newest first, when the
// process exits (a crash, vitest ending a worker), and, once a lab has called
// teardownOnSignals(), on SIGINT, SIGTERM or SIGHUP, after which the process
// exits (128 + signal number). Signals are opt-in: a program with its own Ctrl-C
// handling (scripts/demo.ts stops its parts in a finally) keeps it, and still
// gets this exit-time net for what it registered. Synchronous on purpose:
// an 'exit' handler cannot wait for a promise, and a signal handler that awaits
// could be overtaken by the next signal.

interface Entry {
  what: string;
  run: () => void;
}

const entries: Entry[] = [];
let onExit = false;
let onSignals = false;
let running = false;

const SIGNALS = { SIGINT: 2, SIGTERM: 15, SIGHUP: 1 } as const;

function install(): void {
  if (onExit) return;
  onExit = true;
  process.on('exit', () => runTeardowns());
}

/** From now on SIGINT/SIGTERM/SIGHUP run the registered teardowns and end the process. */
export function teardownOnSignals(): void {
  install();
  if (onSignals) return;
  onSignals = true;
  let signalled = false;
  for (const [sig, num] of Object.entries(SIGNALS)) {
    process.on(sig, () => {
      if (signalled) return; // already tearing down: a second Ctrl-C does not cut it short
      if (!entries.length) process.exit(128 + num); // nothing to tear down: as if unhandled
      signalled = true;
      console.error(`${sig}: tearing down ${entries.length} lab part(s)`);
      // Not at once: under `tsx` the parent relays the signal and SIGKILLs this
      // process unless tsx's own handler here answers within 30 ms, which it cannot
      // while a synchronous teardown blocks the event loop.
      setTimeout(() => {
        runTeardowns();
        process.exit(128 + num);
      }, 250);
    });
  }
}

/** Registers a synchronous teardown; the returned function unregisters it (call it from stop()). */
export function onTeardown(what: string, run: () => void): () => void {
  install();
  const entry = { what, run };
  entries.push(entry);
  return () => {
    const i = entries.indexOf(entry);
    if (i >= 0) entries.splice(i, 1);
  };
}

/** Runs every registered teardown, newest first, each once; errors are printed, never thrown. */
export function runTeardowns(): void {
  running = true;
  try {
    for (let e = entries.pop(); e; e = entries.pop()) {
      try {
        e.run();
      } catch (err) {
        console.error(`teardown of ${e.what} failed: ${(err as Error).message}`);
      }
    }
  } finally {
    running = false;
  }
}

/** Runs a command to its end (a stop script); a hang is cut after timeoutMs. */
export function runSync(cmd: string, args: string[], timeoutMs = 60_000): void {
  spawnSync(cmd, args, { stdio: 'ignore', timeout: timeoutMs });
}

/** Stops (TERM, then KILL after 5 s) every process still inside a network namespace this process created. */
export function killNamespaceProcesses(ns: string): void {
  const pids = () =>
    (spawnSync('ip', ['netns', 'pids', ns], { encoding: 'utf8' }).stdout ?? '')
      .split(/\s+/)
      .filter((p) => /^[0-9]+$/.test(p) && Number(p) > 1 && Number(p) !== process.pid)
      .map(Number);
  for (const p of pids()) signal(p, 'SIGTERM');
  const end = Date.now() + 5000;
  while (pids().length && Date.now() < end) spawnSync('sleep', ['0.2']);
  for (const p of pids()) signal(p, 'SIGKILL');
}

function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    // gone already
  }
}
