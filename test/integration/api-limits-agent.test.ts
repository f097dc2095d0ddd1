import { readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startAgent, type AgentProcess } from '../helpers/agent-process.ts';
import { freePort } from '../helpers/ironic.ts';

// Issue 21, finding 4, on a real agent process (not standalone: it holds a
// token given with --agent-token, and its Ironic is a closed local port, so it
// keeps looking up and serving). 16 MiB of `[{},{},...]` without the token
// used to be read and parsed (the agent went from 119 to 626 MB); now it is
// refused before a byte is buffered. A body dribbled a byte at a time used to
// hold the connection for ever; now --api-request-timeout ends it.

const TOKEN = 'LimitsT0kenAbCdEfGhIjKlMnOpQrStUvWxYz-0123';
const MiB = 1024 * 1024;

/** VmRSS of a process, in bytes. */
function rss(pid: number): number {
  const kb = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1];
  if (kb === undefined) throw new Error(`no VmRSS for pid ${pid}`);
  return Number(kb) * 1024;
}

/** The node process tsx runs the agent in (a child of the launcher). */
function agentPid(launcher: number): number {
  const children = readFileSync(`/proc/${launcher}/task/${launcher}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
  const pid = children.find((c) => Number.isInteger(c) && c > 1 && readFileSync(`/proc/${c}/cmdline`, 'utf8').includes('src/main.ts'));
  if (pid === undefined) throw new Error(`no agent process under pid ${launcher}`);
  return pid;
}

/**
 * POSTs `body` to /v1/commands/ over a raw socket, as fast as the agent takes
 * it, and resolves with what the agent answered once the connection ends (the
 * agent may close it before the whole body went out: a write error is fine).
 */
function postCommands(port: number, query: string, body: Buffer): Promise<{ status: number; text: string; sent: number }> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    let response = '';
    let sent = 0;
    socket.on('data', (d) => (response += d));
    socket.on('error', () => undefined);
    socket.on('close', () => {
      const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(response)?.[1]);
      resolve({ status, text: response.slice(response.indexOf('\r\n\r\n') + 4), sent });
    });
    socket.on('connect', () => {
      socket.write(`POST /v1/commands/${query} HTTP/1.1\r\nHost: agent\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n`);
      const pump = () => {
        while (sent < body.length && !socket.destroyed) {
          const chunk = body.subarray(sent, sent + 65536);
          sent += chunk.length;
          if (!socket.write(chunk)) return void socket.once('drain', pump);
        }
      };
      pump();
    });
  });
}

describe('agent API limits (a real agent process holding a token)', () => {
  let agent: AgentProcess;

  beforeAll(async () => {
    const closedIronic = await freePort();
    agent = await startAgent({
      apiUrl: `http://127.0.0.1:${closedIronic}`,
      allowedDevices: [],
      tls: false,
      extraArgs: ['--agent-token', TOKEN, '--api-request-timeout', '2'],
    });
  }, 120_000);
  afterAll(async () => {
    await agent?.stop();
  });

  it('refuses 16 MiB without the token with 401, and its RSS grows by less than 8 MiB', async () => {
    const pid = agentPid(agent.pid);
    // Warm up the refusal path (code loaded, buffers allocated) before measuring.
    expect((await postCommands(agent.port, '', Buffer.from('{"name":"standby.sync","params":{}}'))).status).toBe(401);
    const body = Buffer.from(`[${'{},'.repeat(Math.floor((16 * MiB) / 3) - 1)}{}]`);
    expect(body.length).toBeGreaterThanOrEqual(16 * MiB - 3);
    const before = rss(pid);
    const res = await postCommands(agent.port, '', body);
    const after = rss(pid);
    console.log(`agent RSS around a 16 MiB token-less POST: ${(before / MiB).toFixed(1)} -> ${(after / MiB).toFixed(1)} MiB`);
    expect(after - before, `RSS ${before} -> ${after}`).toBeLessThan(8 * MiB);
    expect(res.status, `answer after ${res.sent} bytes sent: ${JSON.stringify(res.text)}`).toBe(401);
    expect(JSON.parse(res.text)).toEqual({ faultcode: 'Client', faultstring: '401 Unauthorized: Token invalid.' });
    // The agent still serves (and the inventory is behind the token too).
    const inventory = await fetch(`http://127.0.0.1:${agent.port}/v1/inventory`);
    expect(inventory.status).toBe(401);
  }, 120_000);

  it('cuts off a body sent one byte at a time within --api-request-timeout (408)', async () => {
    const declared = 10_000;
    const outcome = await new Promise<{ response: string; sent: number; closedByServer: boolean }>((resolve) => {
      const socket = connect(agent.port, '127.0.0.1');
      let response = '';
      let sent = 0;
      let ticker: NodeJS.Timeout | undefined;
      // A byte every 100 ms would take ~17 minutes; the client gives up after 30 s.
      const giveUp = setTimeout(() => finish(false), 30_000);
      function finish(closedByServer: boolean) {
        clearTimeout(giveUp);
        clearInterval(ticker);
        socket.destroy();
        resolve({ response, sent, closedByServer });
      }
      socket.on('data', (d) => (response += d));
      socket.on('error', () => undefined);
      socket.on('close', () => finish(true));
      socket.on('connect', () => {
        socket.write(`POST /v1/commands/?agent_token=${TOKEN} HTTP/1.1\r\nHost: agent\r\nContent-Type: application/json\r\nContent-Length: ${declared}\r\n\r\n`);
        ticker = setInterval(() => {
          if (!socket.destroyed) socket.write('{'), sent++;
        }, 100);
      });
    });
    expect(outcome.closedByServer).toBe(true);
    expect(outcome.sent).toBeLessThan(declared);
    expect(outcome.response).toMatch(/^HTTP\/1\.1 408 /);
    expect(outcome.response).toContain('"faultstring":"408 Request Timeout: the request was not received in time."');
  }, 60_000);
});
