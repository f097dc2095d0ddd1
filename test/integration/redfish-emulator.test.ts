import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createNetns, destroyNetns, REPO_ROOT, type Netns } from '../helpers/netns.ts';

// lab/redfish/emulator.ts against sushy (python3-sushy, what Ironic's redfish
// drivers use), in a namespace of its own: auth (a wrong password is refused),
// power on/off of a real qemu process, the boot override (one-time, consumed
// by the power on) and mode, a refused bad value, virtual CD insert (the
// emulator downloads the image) and eject. The qemu machine boots nothing
// useful (blank disk); only the BMC's side is checked here.

const TSX = join(REPO_ROOT, 'node_modules', '.bin', 'tsx');
const PORT = 18641;
const PASSWORD = `pw-${process.pid}`;

describe('lab/redfish emulator through sushy', () => {
  const dir = mkdtempSync(join(tmpdir(), 'mar-rfemu-'));
  let ns: Netns;
  let out = '';

  beforeAll(async () => {
    ns = await createNetns('marrfemu');
    await ns.ip(['tuntap', 'add', 'dev', 'tap0', 'mode', 'tap']);
    await ns.ip(['link', 'set', 'tap0', 'up']);
    writeFileSync(join(dir, 'disk.raw'), Buffer.alloc(1024 * 1024));
    writeFileSync(join(dir, 'medium.iso'), Buffer.alloc(64 * 1024, 1));
    const cfg = join(dir, 'cfg.json');
    writeFileSync(cfg, JSON.stringify({
      host: '127.0.0.1', port: PORT, username: 'admin', password: PASSWORD, workDir: join(dir, 'bmc'),
      machines: [{ id: 'n1', bootMode: 'Legacy', disk: join(dir, 'disk.raw'), mac: '52:54:00:7f:17:01', tap: 'tap0', serialLog: join(dir, 'n1.serial'), memoryMiB: 128 }],
    }));
    ns.spawn('/usr/bin/python3', ['-m', 'http.server', '--bind', '127.0.0.1', '--directory', dir, String(PORT + 1)]);
    const emu = ns.spawn(TSX, [join(REPO_ROOT, 'lab', 'redfish', 'emulator.ts'), cfg]);
    emu.stdout?.on('data', (d: Buffer) => (out += d.toString()));
    for (let i = 0; i < 100 && !out.includes('"listening"'); i++) await sleep(100);
  }, 60_000);

  afterAll(async () => {
    await destroyNetns(ns); // SIGTERM: the emulator ends its qemu first
    rmSync(dir, { recursive: true, force: true });
  }, 60_000);

  it('answers sushy as Ironic uses it', async () => {
    const r = await ns.exec('/usr/bin/python3', [join(REPO_ROOT, 'test', 'integration', 'redfish', 'sushy_check.py'),
      `http://127.0.0.1:${PORT}`, PASSWORD, `http://127.0.0.1:${PORT + 1}/medium.iso`]);
    expect(r.exitCode, r.stderr).toBe(0);
    const lines = r.stdout.trim().split('\n');
    expect(lines).toEqual([
      'wrong-password refused',
      'power Off',
      'resets ForceOff,ForceRestart,GracefulRestart,GracefulShutdown,Nmi,On,PowerCycle',
      'targets Cd,Hdd,None,Pxe',
      'boot Cd Once UEFI',
      'bogus-mode refused',
      `inserted True http://127.0.0.1:${PORT + 1}/medium.iso`,
      'after-on On Disabled',
      'ejected False None',
      'after-off Off',
    ]);
    const events = out.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, any>);
    expect(events.find((e) => e.msg === 'power on')).toMatchObject({ mode: 'UEFI', bootOrder: { Cd: 1, Hdd: 2, Pxe: 3 } });
    expect(events.find((e) => e.msg === 'power off')).toMatchObject({ byBmc: true });
  }, 60_000);
});
