import { mkdirSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import Fastify from 'fastify';
import { Machine, type MachineSpec } from './machine.ts';
import { registerRoutes } from './routes.ts';

// A small Redfish BMC for qemu machines, for labs and tests: Ironic's redfish
// hardware type (power, management, redfish-virtual-media boot) drives the
// machines through it, and nothing else starts them.
//
//   npx tsx lab/redfish/emulator.ts CONFIG.json
//
// CONFIG.json:
//   { "host": "127.0.0.1", "port": 8000, "username": "admin", "password": "...",
//     "workDir": "/tmp/rf",                       NVRAM copies, downloaded ISOs, qemu logs, pid files
//     "machines": [ { "id": "node-1", "bootMode": "UEFI" | "Legacy", "disk": "/tmp/rf/disk.raw",
//                     "mac": "52:54:00:..", "tap": "tap0", "serialLog": "/tmp/rf/node-1.serial",
//                     "memoryMiB": 512 } ] }
//
// Run it where the taps are (`ip netns exec NS npx tsx ...`): qemu inherits its
// network namespace. Prints one JSON line per event on stdout (the first says
// where it listens); SIGTERM/SIGINT power every machine off, then exit.

interface Config {
  host?: string;
  port: number;
  username: string;
  password: string;
  workDir: string;
  machines: MachineSpec[];
}

function log(msg: string, extra: Record<string, unknown> = {}): void {
  process.stdout.write(JSON.stringify({ time: new Date().toISOString(), msg, ...extra }) + '\n');
}

async function main(): Promise<void> {
  const file = process.argv[2];
  if (!file) throw new Error('usage: emulator.ts CONFIG.json');
  const cfg = JSON.parse(readFileSync(resolve(file), 'utf8')) as Config;
  mkdirSync(cfg.workDir, { recursive: true });
  const machines = new Map(cfg.machines.map((spec) => [spec.id, new Machine(spec, cfg.workDir, log)]));

  const app = Fastify({ routerOptions: { ignoreTrailingSlash: true, ignoreDuplicateSlashes: true } });
  // sushy sends an empty body with Content-Type: application/json on some POSTs (EjectMedia).
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (_req, body, done) => {
    try {
      done(null, body === '' ? {} : (JSON.parse(body as string) as unknown));
    } catch (err) {
      done(err as Error, undefined);
    }
  });
  registerRoutes(app, machines, { username: cfg.username, password: cfg.password }, log);

  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    log('stopping', { signal });
    await Promise.allSettled([...machines.values()].map((m) => m.shutdown()));
    await app.close();
    process.exit(0);
  };
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGINT', () => void stop('SIGINT'));

  const host = cfg.host ?? '127.0.0.1';
  await app.listen({ host, port: cfg.port });
  log('listening', { url: `http://${host.includes(':') ? `[${host}]` : host}:${cfg.port}/redfish/v1`, machines: [...machines.keys()] });
}

main().catch((err: unknown) => {
  log('fatal', { err: String(err) });
  process.exit(1);
});
