import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { CommandEngine } from '../../src/commands/engine.ts';
import { releaseRescueKeepAlive, rescueCommands } from '../../src/commands/extensions/rescue.ts';
import { Guard } from '../../src/system/safety.ts';
import { dhcpClients, renewDhcpLeases } from '../../src/system/rescue/dhcp-renew.ts';
import { isCryptHash, sha256Crypt } from '../../src/system/rescue/sha-crypt.ts';
import { serialConsoles } from '../../src/system/rescue/services.ts';

// rescue.finalize_rescue (issue 18): the password as Ironic sends it (a crypt
// hash with hashed=true; a plain one from an old conductor's fallback), the
// rescue account written into a test root, the refusal to touch the host's
// accounts outside a ramdisk, bad input in IPA's error format, and the API
// and heartbeats stopped after the answer. The SSH server and the serial
// logins are replaced by a recorder here; the e2e test (real-boot-redfish)
// logs in through them.

const dir = mkdtempSync(join(tmpdir(), 'mar-rescue-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
afterEach(() => releaseRescueKeepAlive());

const inRamdisk = new Guard({ inRamdisk: true, allowedDevices: [], allowPowerActions: false });
const onHost = new Guard({ inRamdisk: false, allowedDevices: [], allowPowerActions: true });

/** glibc's crypt(3) through the host's python, the reference for our SHA-256-crypt. */
function systemCrypt(password: string, salt: string): string {
  return execFileSync('/usr/bin/python3', ['-W', 'ignore', '-c', 'import crypt,sys; print(crypt.crypt(sys.argv[1], sys.argv[2]))', password, `$5$${salt}`], { encoding: 'utf8' }).trim();
}

function testRoot(name: string): string {
  const root = join(dir, name);
  mkdirSync(join(root, 'etc'), { recursive: true });
  writeFileSync(join(root, 'etc', 'passwd'), 'root:x:0:0:root:/root:/bin/sh\n');
  return root;
}

async function rescueEngine(guard: Guard, root: string) {
  const calls: string[] = [];
  const engine = new CommandEngine();
  engine.register(
    'rescue',
    rescueCommands({
      guard,
      root,
      startServices: async () => void calls.push('services'),
      quiesce: async () => void calls.push('quiesce'),
      renewNetwork: async () => void calls.push('renew'),
      afterAnswerMs: 1,
    }),
  );
  const settle = async () => {
    for (let i = 0; i < 50 && !calls.includes('renew'); i++) await new Promise((r) => setTimeout(r, 10));
  };
  return { engine, calls, settle };
}

describe('SHA-256-crypt (a plain rescue password is hashed like IPA does)', () => {
  it('matches glibc crypt(3) for short, long and non-ASCII passwords and short salts', () => {
    for (const [pw, salt] of [['secret', 'abcdefgh'], ['x'.repeat(80), 'saltsaltsaltsalt'], ['pässwörd €', 'Q9./z'], ['a', 'b']] as const) {
      expect(sha256Crypt(pw, salt)).toBe(systemCrypt(pw, salt));
    }
  });

  it('uses a fresh 16-character salt each time', () => {
    const a = sha256Crypt('same');
    const b = sha256Crypt('same');
    expect(a).toMatch(/^\$5\$[./0-9A-Za-z]{16}\$[./0-9A-Za-z]{43}$/);
    expect(a).not.toBe(b);
    expect(systemCrypt('same', a.split('$')[2]!)).toBe(a);
  });

  it('recognises crypt hashes and refuses what would break /etc/shadow', () => {
    expect(isCryptHash(systemCrypt('pw', 'salt'))).toBe(true);
    expect(isCryptHash('$6$rounds=5000$salt$abc./')).toBe(true);
    expect(isCryptHash('plain-password')).toBe(false);
    expect(isCryptHash('$5$salt$abc:0:0:::')).toBe(false);
    expect(isCryptHash('$5$salt$abc\nroot::0:0:::')).toBe(false);
    expect(isCryptHash('$5$salt$ abc')).toBe(false);
  });
});

describe('rescue.finalize_rescue', () => {
  it("in a ramdisk, with Ironic's hash (hashed=true): creates the rescue user with that hash, root stays locked, then stops the API and renews DHCP", async () => {
    const root = testRoot('hashed');
    const hash = systemCrypt('rescue-me', 'NaCl');
    const { engine, calls, settle } = await rescueEngine(inRamdisk, root);
    const result = await engine.execute('rescue.finalize_rescue', { rescue_password: hash, hashed: true });
    expect(result).toMatchObject({ command_name: 'finalize_rescue', command_status: 'SUCCEEDED', command_error: null, command_result: null });
    // Logins are started before the answer; the API closes only after it.
    expect(calls).toEqual(['services']);
    await settle();
    expect(calls).toEqual(['services', 'quiesce', 'renew']);

    const passwd = readFileSync(join(root, 'etc', 'passwd'), 'utf8');
    expect(passwd).toBe('root:x:0:0:root:/root:/bin/sh\nrescue:x:0:0:rescue:/home/rescue:/bin/sh\n');
    const shadow = readFileSync(join(root, 'etc', 'shadow'), 'utf8').trim().split('\n');
    expect(shadow[0]).toMatch(/^root:\*:/);
    expect(shadow[1]!.split(':')[0]).toBe('rescue');
    expect(shadow[1]!.split(':')[1]).toBe(hash);
    expect(statSync(join(root, 'etc', 'shadow')).mode & 0o777).toBe(0o600);
    expect(readFileSync(join(root, 'etc', 'shells'), 'utf8')).toContain('/bin/sh');
    expect(existsSync(join(root, 'run', 'metal-agent.rescued'))).toBe(true);
  });

  it('with a plain password (hashed absent, an old conductor): stores a SHA-256-crypt hash of it; a second call updates, never duplicates', async () => {
    const root = testRoot('plain');
    const { engine } = await rescueEngine(inRamdisk, root);
    expect((await engine.execute('rescue.finalize_rescue', { rescue_password: 'first' })).command_status).toBe('SUCCEEDED');
    expect((await engine.execute('rescue.finalize_rescue', { rescue_password: 'second', hashed: false })).command_status).toBe('SUCCEEDED');
    const shadow = readFileSync(join(root, 'etc', 'shadow'), 'utf8').trim().split('\n');
    const rescue = shadow.filter((l) => l.startsWith('rescue:'));
    expect(rescue).toHaveLength(1);
    const stored = rescue[0]!.split(':')[1]!;
    expect(stored).toMatch(/^\$5\$/);
    expect(systemCrypt('second', stored.split('$')[2]!)).toBe(stored);
    expect(readFileSync(join(root, 'etc', 'passwd'), 'utf8').match(/^rescue:/gm)).toHaveLength(1);
  });

  it('outside a ramdisk: a dry run that says so; no account file is written and no login service started', async () => {
    const root = testRoot('host');
    const before = readFileSync(join(root, 'etc', 'passwd'), 'utf8');
    const { engine, calls, settle } = await rescueEngine(onHost, root);
    const result = await engine.execute('rescue.finalize_rescue', { rescue_password: systemCrypt('pw', 'salt'), hashed: true });
    expect(result.command_status).toBe('SUCCEEDED');
    expect(result.command_result).toMatchObject({ dry_run: true, user: 'rescue' });
    expect(String((result.command_result as any).message)).toMatch(/dry run: .*not running in a ramdisk/);
    await settle();
    expect(calls).toEqual(['quiesce', 'renew']); // the API and heartbeats are this process's own
    expect(readFileSync(join(root, 'etc', 'passwd'), 'utf8')).toBe(before);
    expect(readdirSync(join(root, 'etc'))).toEqual(['passwd']);
    expect(existsSync(join(root, 'run'))).toBe(false);
  });

  it('bad input: FAILED with InvalidCommandParamsError in IPA\'s shape, nothing written, the API stays up', async () => {
    const root = testRoot('bad');
    const { engine, calls } = await rescueEngine(inRamdisk, root);
    const cases: Array<[Record<string, unknown>, RegExp]> = [
      [{}, /rescue_password must be a non-empty string/],
      [{ rescue_password: '' }, /non-empty/],
      [{ rescue_password: 42, hashed: true }, /non-empty string/],
      [{ rescue_password: 'not-a-hash', hashed: true }, /crypt\(3\) hash/],
      [{ rescue_password: '$5$salt$x:0:0:::\nroot::0', hashed: true }, /crypt\(3\) hash/],
      [{ rescue_password: 'pw', hashed: 'yes' }, /hashed must be true or false/],
    ];
    for (const [params, message] of cases) {
      const r = await engine.execute('rescue.finalize_rescue', params);
      expect(r.command_status).toBe('FAILED');
      expect(r.command_error).toMatchObject({ type: 'InvalidCommandParamsError', code: 400, message: 'Invalid command parameters' });
      expect(r.command_error!.details).toMatch(message);
    }
    await new Promise((r) => setTimeout(r, 30));
    expect(calls).toEqual([]);
    expect(readdirSync(join(root, 'etc'))).toEqual(['passwd']);
  });

  it('a login service that fails to start fails the command (Ironic then marks the rescue failed)', async () => {
    const root = testRoot('nossh');
    const engine = new CommandEngine();
    const calls: string[] = [];
    engine.register('rescue', rescueCommands({
      guard: inRamdisk,
      root,
      startServices: async () => { throw new Error('dropbear did not start: no /run/dropbear.pid'); },
      quiesce: async () => void calls.push('quiesce'),
      afterAnswerMs: 1,
    }));
    const r = await engine.execute('rescue.finalize_rescue', { rescue_password: 'pw' });
    expect(r.command_status).toBe('FAILED');
    expect(r.command_error).toMatchObject({ type: 'CommandExecutionError', details: expect.stringMatching(/dropbear did not start/) });
    await new Promise((res) => setTimeout(res, 30));
    expect(calls).toEqual([]);
  });
});

describe('rescue network and consoles', () => {
  it('renews only interfaces that hold a DHCP lease, release first and ask again after the pause, and only a live udhcpc', async () => {
    const run = join(dir, 'run');
    mkdirSync(run);
    writeFileSync(join(run, 'udhcpc.eth0.pid'), '1234\n');
    writeFileSync(join(run, 'udhcpc.eth0.lease'), '10.0.0.5\n');
    writeFileSync(join(run, 'udhcpc.eth1.pid'), '1235\n'); // no lease: static network_data, left alone
    writeFileSync(join(run, 'udhcpc.eth2.pid'), '1\n');
    writeFileSync(join(run, 'udhcpc.eth2.lease'), 'x\n'); // pid 1 is never signalled
    writeFileSync(join(run, 'udhcpc.eth3.pid'), '999\n');
    writeFileSync(join(run, 'udhcpc.eth3.lease'), 'x\n'); // not a udhcpc any more
    expect(dhcpClients(run).map((c) => c.iface).sort()).toEqual(['eth0', 'eth3']);
    const sent: string[] = [];
    const renewed = await renewDhcpLeases({ runDir: run, pauseMs: 1, signal: (pid, sig) => void sent.push(`${pid} ${sig}`), isDhcpClient: (pid) => pid === 1234 });
    expect(renewed).toEqual(['eth0']);
    expect(sent).toEqual(['1234 SIGUSR2', '1234 SIGUSR1']);
  });

  it('serial logins go on the serial consoles the kernel writes to', () => {
    const active = join(dir, 'console-active');
    writeFileSync(active, 'tty0 ttyS0\n');
    expect(serialConsoles(active)).toEqual(['ttyS0']);
    expect(serialConsoles(join(dir, 'absent'))).toEqual([]);
  });
});
