import { connect, type Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';

// One long-lived QMP connection to a qemu process: commands answered in order,
// and the asynchronous events (SHUTDOWN tells a guest reset from a guest power
// off, which the BMC needs to keep a machine "On" across a reboot).

export interface QmpEvent {
  event: string;
  data?: Record<string, unknown>;
}

type Pending = { resolve: (v: unknown) => void; reject: (e: Error) => void; what: string };

export class QmpClient {
  private buf = '';
  private readonly pending: Pending[] = [];
  private greeted = false;

  private constructor(
    private readonly sock: Socket,
    private readonly onEvent: (e: QmpEvent) => void,
  ) {
    sock.setEncoding('utf8');
    sock.on('data', (chunk: string) => this.read(chunk));
    sock.on('error', () => undefined); // 'close' follows and fails what is pending
    sock.on('close', () => {
      for (const p of this.pending.splice(0)) p.resolve(undefined); // `quit` closes instead of answering
    });
  }

  /** Connects once qemu has created the socket (it does so right after start). */
  static async connect(path: string, onEvent: (e: QmpEvent) => void, isAlive: () => boolean): Promise<QmpClient> {
    for (let i = 0; ; i++) {
      if (!isAlive()) throw new Error('qemu exited before its QMP socket answered');
      const sock = await new Promise<Socket | undefined>((res) => {
        const s = connect(path);
        s.once('connect', () => res(s));
        s.once('error', () => res(undefined));
      });
      if (sock) {
        const client = new QmpClient(sock, onEvent);
        await client.command('qmp_capabilities');
        return client;
      }
      if (i > 200) throw new Error(`no QMP socket at ${path}`);
      await sleep(50);
    }
  }

  command(execute: string, args?: Record<string, unknown>): Promise<unknown> {
    return new Promise((resolve, reject) => {
      this.pending.push({ resolve, reject, what: execute });
      this.sock.write(JSON.stringify({ execute, ...(args ? { arguments: args } : {}) }) + '\n');
    });
  }

  close(): void {
    this.sock.destroy();
  }

  private read(chunk: string): void {
    this.buf += chunk;
    let nl: number;
    while ((nl = this.buf.indexOf('\n')) >= 0) {
      const line = this.buf.slice(0, nl).trim();
      this.buf = this.buf.slice(nl + 1);
      if (!line) continue;
      const msg = JSON.parse(line) as { QMP?: unknown; event?: string; data?: Record<string, unknown>; return?: unknown; error?: { desc: string } };
      if (msg.QMP !== undefined && !this.greeted) {
        this.greeted = true;
        continue;
      }
      if (msg.event) {
        this.onEvent({ event: msg.event, data: msg.data });
        continue;
      }
      const p = this.pending.shift();
      if (!p) continue;
      if (msg.error) p.reject(new Error(`QMP ${p.what}: ${msg.error.desc}`));
      else p.resolve(msg.return);
    }
  }
}
