import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AGENT_VERSION } from '../../src/version.ts';
import { startAgent, type AgentProcess } from '../helpers/agent-process.ts';
import { configDriveHostname, expectDiskHoldsImage, pemBody, servedCertificate } from '../helpers/deployed-disk.ts';
import { startImageServer, type ImageServer } from '../helpers/http-image-server.ts';
import { makeRawImage, sha256File } from '../helpers/images.ts';
import { startIronic, type Ironic } from '../helpers/ironic.ts';
import { createLoopDisk, giveDiskAPartition, metadataLeft, type LoopDisk } from '../helpers/loop-disk.ts';

// The same flows as cleaning.test.ts and deploy.test.ts (Ironic 21.4), against
// Ironic 29.0.5 (OpenStack 2025.1, Debian 13) run from the root that
// lab/ironic/ensure-2025.sh keeps cached, plus what only 29.0 does:
//   - [agent]require_tls (default true): our https callback, verified with the certificate we sent;
//   - agent_token on GETs of /v1/commands: later token-less GETs are refused (IPA 10's rule);
//   - agent_md5_checksum_enable=false at lookup: an md5 image checksum is refused;
//   - service steps on an active node (`baremetal node service`): our read-only verify_root_device;
//   - system.lockdown, sent by 29.0 instead of a power off for a node with disable_power_off.
// Servicing needs [deploy]fast_track here: 29.0.5 accepts lookups in 'service wait' only with
// fast track (states.LOOKUP_ALLOWED_STATES has no SERVICEWAIT), and the agent has to look the
// node up again there because entering service power-cycles the node, which wipes the token.

const LAB = resolve(import.meta.dirname, '../../lab/ironic');
const MAC = '52:54:00:a0:20:25';
const IMAGE_MIB = 24;

/** The Ironic 29.0 root: $METAL_AGENT_IRONIC_2025_ROOT when it holds a finished build, else the cached one (built on first use). */
async function ironicRoot(): Promise<string> {
  const given = process.env.METAL_AGENT_IRONIC_2025_ROOT;
  if (given && existsSync(join(given, '.metal-agent-ironic-2025'))) return given;
  const { stdout } = await execa(join(LAB, 'ensure-2025.sh'), [], { stderr: 'inherit' });
  return stdout.trim().split('\n').pop()!;
}

async function sha256Device(path: string): Promise<string> {
  const { stdout } = await execa('sha256sum', [path]);
  return stdout.split(/\s+/)[0]!;
}

/** Whether an agent started with `--listen-port PORT` still runs (read from /proc, nothing is signalled). */
function agentProcessAlive(port: number): boolean {
  for (const pid of readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
    try {
      const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
      const i = argv.indexOf('--listen-port');
      if (argv.some((a) => a.endsWith('src/main.ts')) && i >= 0 && argv[i + 1] === String(port)) return true;
    } catch {
      // gone meanwhile
    }
  }
  return false;
}


describe('Ironic 29.0 (2025.1) drives our agent: cleaning, deploy, service, lockdown', () => {
  let root: string;
  let ironic: Ironic;
  let agent: AgentProcess;
  let disks: LoopDisk[] = [];
  let server: ImageServer;
  let uuid: string;
  const dir = mkdtempSync(join(tmpdir(), 'metal-agent-ironic2025-'));
  const raw = join(dir, 'disk.raw');
  const seen: { agentUrl?: string; verifyCa?: string; version?: string; tokens: string[] } = { tokens: [] };
  let caFile = '';

  /** The node's agent_secret_token as Ironic keeps it (the API masks it; the sqlite database does not). */
  async function secretToken(): Promise<string> {
    const py = 'import json,sqlite3,sys\nc=sqlite3.connect(sys.argv[1],timeout=10)\nr=c.execute("select driver_internal_info from nodes where uuid=?",(sys.argv[2],)).fetchone()\nprint(json.loads((r and r[0]) or "{}").get("agent_secret_token") or "")';
    const { stdout } = await execa('/usr/bin/python3', ['-c', py, join(ironic.stateDir, 'ironic.sqlite'), uuid]);
    return stdout.trim();
  }

  /** Polls the node (and its token) until it reaches one of `states`. */
  async function watch(states: string[], timeoutSec: number): Promise<Record<string, any>> {
    const onNode = async (node: Record<string, any>) => {
      const dii = node.driver_internal_info ?? {};
      if (dii.agent_url && !seen.agentUrl) {
        seen.agentUrl = dii.agent_url;
        seen.version = dii.agent_version;
        // Ironic stores the certificate under its root's [agent]certificates_path.
        caFile = join(root, dii.agent_verify_ca);
        seen.verifyCa = readFileSync(caFile, 'utf8');
      }
      const token = await secretToken();
      if (token && !seen.tokens.includes(token)) seen.tokens.push(token);
    };
    try {
      return await ironic.waitForState(uuid, states, timeoutSec, { everyMs: 250, onNode });
    } catch (err) {
      throw new Error(`${(err as Error).message}\n${agent.output().slice(-3000)}`);
    }
  }

  /** GET of the agent's command list over HTTPS, verified with the certificate Ironic holds. */
  async function getCommands(token?: string): Promise<{ status: number; body: string }> {
    const url = `https://127.0.0.1:${agent.port}/v1/commands/${token === undefined ? '' : `?agent_token=${encodeURIComponent(token)}`}`;
    const out = join(dir, 'curl.out');
    const r = await execa('curl', ['-sS', '--cacert', caFile, '-o', out, '-w', '%{http_code}', url], { reject: false });
    if (r.exitCode !== 0) throw Object.assign(new Error(`curl ${url}: exit ${r.exitCode} ${r.stderr}`), { curlExit: r.exitCode });
    return { status: Number(r.stdout), body: readFileSync(out, 'utf8') };
  }

  async function api(method: string, path: string, body: unknown, version = '1.95'): Promise<Response> {
    return fetch(`${ironic.url}/v1${path}`, {
      method,
      headers: { 'X-OpenStack-Ironic-API-Version': version, 'Content-Type': 'application/json' },
      body: JSON.stringify(body),
    });
  }

  async function deploy(path: string, instanceInfo: string[], hostname: string, verb: 'deploy' | 'rebuild' = 'deploy') {
    const url = server.serve(`/${path.split('/').pop()}`, { path });
    await ironic.baremetal(['node', 'set', uuid, '--instance-info', `image_source=${url}`, '--instance-info', 'image_disk_format=raw', ...instanceInfo.flatMap((i) => ['--instance-info', i])]);
    await ironic.baremetal(['node', verb, uuid, '--config-drive', JSON.stringify({ meta_data: { hostname } })]);
    if (verb === 'rebuild') await watch(['deploying', 'wait call-back', 'deploy failed'], 60);
    return watch(['active', 'deploy failed'], 300);
  }

  async function service(steps: unknown[]) {
    const res = await api('PUT', `/nodes/${uuid}/states/provision`, { target: 'service', service_steps: steps });
    expect(res.status, await res.text()).toBe(202);
    await watch(['servicing', 'service wait', 'service failed'], 60);
    return watch(['active', 'service failed'], 300);
  }

  beforeAll(async () => {
    root = await ironicRoot();
    await makeRawImage(raw, IMAGE_MIB);
    disks = [await createLoopDisk(96, 'i25-root'), await createLoopDisk(64, 'i25-other')];
    for (const d of disks) await giveDiskAPartition(d.device);
    server = await startImageServer();
    ironic = await startIronic({ chroot: root, fastTrack: true, extraConf: '[agent]\nallow_md5_checksum = false\n' });
    uuid = await ironic.enroll(MAC, { rootDevice: { name: disks[0]!.device }, driverInfo: { deploy_forces_oob_reboot: 'true' } });
    agent = await startAgent({ apiUrl: ironic.url, mac: MAC, allowedDevices: disks.map((d) => d.device) });
  }, 900_000);

  afterAll(async () => {
    await agent?.stop();
    await ironic?.stop();
    await server?.stop();
    for (const d of disks) await d.destroy();
    rmSync(dir, { recursive: true, force: true });
  });

  it('runs Ironic 29.0 from the cached Debian 13 root', async () => {
    const { stdout } = await execa('chroot', [root, 'dpkg-query', '-W', '-f=${Version}', 'python3-ironic']);
    expect(stdout).toMatch(/^1:29\.0\./);
    // The API that answers is that one: 29.0 speaks up to 1.96 (1.95: disable_power_off), 21.4 up to 1.82.
    const rootDoc = (await (await fetch(`${ironic.url}/`)).json()) as { default_version: { version: string } };
    expect(Number(rootDoc.default_version.version.split('.')[1])).toBeGreaterThanOrEqual(95);
  });

  it('automated cleaning: clean wait -> available, both disks lose their metadata', async () => {
    for (const d of disks) expect(await metadataLeft(d.device)).not.toEqual([]);
    const node = await watch(['available', 'clean failed'], 300);
    expect(node.last_error ?? null, agent.output().slice(-3000)).toBeNull();
    expect(node.provision_state).toBe('available');
    for (const d of disks) expect(await metadataLeft(d.device)).toEqual([]);
    expect(agent.output()).toMatch(/"command":"clean.execute_clean_step".*"status":"SUCCEEDED"/);
  }, 320_000);

  it('require_tls: Ironic recorded our https callback and version, and verified us with the certificate we sent', async () => {
    expect(seen.version).toBe(AGENT_VERSION);
    expect(seen.agentUrl).toBe(`https://127.0.0.1:${agent.port}`);
    expect(pemBody(seen.verifyCa!)).toBe(await servedCertificate(agent.port));
    // 29.0 refuses http callbacks outright ([agent]require_tls defaults to true).
    expect(ironic.log()).not.toMatch(/does not use TLS/);
  });

  it('token on GETs: Ironic 29.0 sent it, so a GET without it (or with a wrong one) is refused, and the token works', async () => {
    // Fast track keeps the node's token after cleaning; the agent holds the same one.
    const token = await secretToken();
    expect(token.length).toBeGreaterThanOrEqual(32);
    expect((await getCommands()).status).toBe(401);
    expect((await getCommands('x'.repeat(token.length))).status).toBe(401);
    const ok = await getCommands(token);
    expect(ok.status).toBe(200);
    const names = (JSON.parse(ok.body).commands as Array<{ command_name: string }>).map((c) => c.command_name);
    expect(names).toContain('execute_clean_step');
  });

  it('agent_md5_checksum_enable=false: an md5 image checksum fails the deploy before the disk is written', async () => {
    const md5 = createHash('md5').update(readFileSync(raw)).digest('hex');
    const before = await sha256Device(disks[0]!.device);
    const node = await deploy(raw, [`image_checksum=${md5}`], 'md5-node');
    expect(node.provision_state).toBe('deploy failed');
    expect(node.last_error).toMatch(/MD5 support is disabled/);
    expect(await sha256Device(disks[0]!.device)).toBe(before);
  }, 320_000);

  it('raw image + config drive (sha256): -> active, disk holds the image except the MBR table, config-2 has the meta_data', async () => {
    await ironic.baremetal(['node', 'unset', uuid, '--instance-info', 'image_checksum']);
    const node = await deploy(raw, ['image_os_hash_algo=sha256', `image_os_hash_value=${await sha256File(raw)}`], 'node-2025');
    expect(node.last_error ?? null, agent.output().slice(-3000)).toBeNull();
    expect(node.provision_state).toBe('active');
    expectDiskHoldsImage(disks[0]!.device, raw);
    expect(await configDriveHostname(disks[0]!.device)).toBe('node-2025');
  }, 320_000);

  it('service step on the active node: verify_root_device reads the deployed disk, leaves it untouched, node back to active', async () => {
    const before = await sha256Device(disks[0]!.device);
    const tokensBefore = seen.tokens.length;
    const node = await service([{ interface: 'deploy', step: 'verify_root_device' }]);
    expect(node.last_error ?? null, agent.output().slice(-3000)).toBeNull();
    expect(node.provision_state).toBe('active');
    expect(await sha256Device(disks[0]!.device)).toBe(before);
    // Entering service power-cycled the node: the agent looked it up again and got a new token.
    expect(seen.tokens.length).toBeGreaterThan(tokensBefore);
    const token = seen.tokens[seen.tokens.length - 1]!;
    // The agent still holds that token (Ironic dropped it when it powered the node off).
    expect((await getCommands()).status).toBe(401);
    const res = await getCommands(token);
    expect(res.status).toBe(200);
    const cmds = JSON.parse(res.body).commands as Array<Record<string, any>>;
    expect(cmds.map((c) => c.command_name)).toContain('get_service_steps');
    const run = cmds.find((c) => c.command_name === 'execute_service_step');
    expect(run?.command_status).toBe('SUCCEEDED');
    expect(run?.command_result.service_step.step).toBe('verify_root_device');
    expect(run?.command_result.service_result).toMatchObject({ device: disks[0]!.device, bytes: 96 * 2 ** 20, sha256: before });
  }, 320_000);

  it('disable_power_off: Ironic 29.0 ends a rebuild with system.lockdown instead of a power off; the agent stops answering', async () => {
    // 29.0.5 also sends lockdown when servicing ends, but only after it dropped agent_url
    // (wipe_service_internal_info), so that one never reaches an agent ("Agent is already down").
    // The deploy's tear_down_agent step sends it while the agent is still known.
    const patch = await api('PATCH', `/nodes/${uuid}`, [{ op: 'replace', path: '/disable_power_off', value: true }]);
    expect(patch.status, await patch.text()).toBe(200);
    const node = await deploy(raw, [], 'locked-node', 'rebuild');
    const ironicSays = ironic.log().split('\n').filter((l) => /lock ?down/i.test(l)).slice(-20).join('\n');
    expect(node.last_error ?? null, `${agent.output().slice(-3000)}\n${ironicSays}`).toBeNull();
    expect(node.provision_state).toBe('active');
    expect(agent.output(), ironicSays).toMatch(/"command":"system.lockdown"/);
    expect(agent.output()).toMatch(/lockdown \(dry run\): network interfaces left up/);
    expect(agent.output()).toMatch(/system locked down/);
    // Ironic waited until the agent stopped answering before it went on.
    expect(ironicSays).not.toMatch(/Failed to lock down/);
    // The API is gone (connection refused); the process stays alive so no supervisor restarts it.
    let curlExit = 0;
    try {
      await getCommands(seen.tokens[seen.tokens.length - 1]);
    } catch (err) {
      curlExit = (err as { curlExit?: number }).curlExit ?? -1;
    }
    expect(curlExit).toBe(7);
    await sleep(1000);
    expect(agentProcessAlive(agent.port)).toBe(true);
  }, 320_000);
});
