import { readFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';

// Reading and writing a VM's serial console and talking QMP, over the files
// and unix sockets qemu was given.

/** Polls a log file until `re` matches text after `fromOffset`; returns the match. */
export async function waitForLog(
  path: string,
  re: RegExp,
  opts: { timeoutMs: number; fromOffset?: number; isAlive?: () => boolean },
): Promise<RegExpExecArray> {
  const deadline = Date.now() + opts.timeoutMs;
  for (;;) {
    const text = await readText(path);
    const m = re.exec(text.slice(opts.fromOffset ?? 0));
    if (m) return m;
    if (opts.isAlive && !opts.isAlive()) {
      throw new Error(`VM exited before ${re} appeared in ${path}; last output:\n${text.slice(-2000)}`);
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${opts.timeoutMs} ms waiting for ${re} in ${path}; last output:\n${text.slice(-2000)}`);
    }
    await sleep(100);
  }
}

export async function readText(path: string): Promise<string> {
  try {
    return await readFile(path, 'latin1');
  } catch {
    return '';
  }
}

/** Types text into the serial console (qemu's chardev socket; the log keeps everything). */
export async function writeSerial(socketPath: string, text: string): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    const sock = connect(socketPath, () => {
      sock.end(text, () => resolve());
    });
    sock.on('error', reject);
  });
}

/** One QMP command over qemu's QMP socket; resolves with its "return" value. */
export async function qmp(socketPath: string, execute: string, args?: Record<string, unknown>): Promise<unknown> {
  return await new Promise((resolve, reject) => {
    const sock = connect(socketPath);
    let buf = '';
    let stage: 'greeting' | 'capabilities' | 'command' = 'greeting';
    sock.setEncoding('utf8');
    sock.on('error', reject);
    sock.on('data', (chunk: string) => {
      buf += chunk;
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const msg = JSON.parse(buf.slice(0, nl)) as { QMP?: unknown; return?: unknown; error?: { desc: string }; event?: string };
        buf = buf.slice(nl + 1);
        if (msg.event) continue; // asynchronous events are not answers
        if (msg.error) {
          sock.destroy();
          reject(new Error(`QMP ${execute}: ${msg.error.desc}`));
          return;
        }
        if (stage === 'greeting') {
          stage = 'capabilities';
          sock.write(JSON.stringify({ execute: 'qmp_capabilities' }) + '\n');
        } else if (stage === 'capabilities') {
          stage = 'command';
          sock.write(JSON.stringify({ execute, ...(args ? { arguments: args } : {}) }) + '\n');
        } else {
          sock.end();
          resolve(msg.return);
        }
      }
    });
    // `quit` closes the socket instead of answering.
    sock.on('close', () => resolve(undefined));
  });
}

/**
 * Asserts that Ironic left no last_error on a node. On failure the console's
 * tail goes to stdout first and the assertion's own message stays short, so
 * that the last_error itself is in the last lines a CI log shows.
 */
export async function expectNoLastError(
  expect: (v: unknown, msg?: string) => { toBeNull(): void },
  node: { name?: string | null; uuid?: string; last_error?: string | null },
  consoleText: () => string | Promise<string>,
): Promise<void> {
  if (node.last_error) console.log(`console of ${node.name ?? node.uuid}, its tail:\n${(await consoleText()).slice(-3000)}`);
  expect(node.last_error ?? null, `last_error of ${node.name ?? node.uuid}`).toBeNull();
}
