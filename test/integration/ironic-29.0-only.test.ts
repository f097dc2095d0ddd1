import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AgentProcess } from '../helpers/agent-process.ts';
import { configDriveHostname, expectDiskHoldsImage } from '../helpers/deployed-disk.ts';
import type { ImageServer } from '../helpers/http-image-server.ts';
import { makeRawImage, sha256File } from '../helpers/images.ts';
import type { AgentSeen, ReleaseIronic } from '../helpers/ironic-release.ts';
import type { LoopDisk } from '../helpers/loop-disk.ts';
import { startReleaseLab, type ReleaseLab } from '../helpers/release-lab.ts';

// What only Ironic 29.0 (OpenStack 2025.1) does, beyond the release suite
// (ironic-release-suite.ts, run against 21.4 and 29.0 alike):
//   - agent_md5_checksum_enable=false at lookup: an md5 image checksum is refused;
//   - service steps on an active node (`baremetal node service`): our read-only verify_root_device;
//   - system.lockdown, sent by 29.0 instead of a power off for a node with disable_power_off;
//   - enable_bios_bootloader_install=false at lookup: the image's own grub is never run.
// Servicing needs [deploy]fast_track here: 29.0.5 accepts lookups in 'service wait' only with
// fast track (states.LOOKUP_ALLOWED_STATES has no SERVICEWAIT), and the agent has to look the
// node up again there because entering service power-cycles the node, which wipes the token.

const MAC = '52:54:00:a0:20:25';
const IMAGE_MIB = 24;

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


describe('Ironic 29.0: only in 2025.1: md5 switch, service steps, system.lockdown', () => {
  let lab: ReleaseLab;
  let ironic: ReleaseIronic;
  let agent: AgentProcess;
  let disks: LoopDisk[];
  let server: ImageServer;
  let uuid: string;
  let raw: string;
  let seen: AgentSeen;
  const watch = (states: string[], timeoutSec: number) => lab.watch(states, timeoutSec);
  const getCommands = (token?: string) => lab.getCommands(token);

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
    lab = await startReleaseLab('29.0', {
      mac: MAC,
      diskMiB: [96, 64],
      ironic: { fastTrack: true, extraConf: '[agent]\nallow_md5_checksum = false\nenable_bios_bootloader_install = false\n' },
      beforeAgent: async (tmp) => {
        raw = join(tmp, 'disk.raw');
        await makeRawImage(raw, IMAGE_MIB);
      },
    });
    ({ ironic, agent, disks, server, uuid, seen } = lab);
    // Cleaning itself is the release suite's; here it only has to end.
    const node = await watch(['available', 'clean failed'], 300);
    expect(node.provision_state, node.last_error).toBe('available');
  }, 900_000);

  afterAll(async () => {
    await lab?.stop();
  });

  it('agent_md5_checksum_enable=false: an md5 image checksum fails the deploy before the disk is written', async () => {
    const md5 = createHash('md5').update(readFileSync(raw)).digest('hex');
    const before = await sha256File(disks[0]!.device);
    const node = await deploy(raw, [`image_checksum=${md5}`], 'md5-node');
    expect(node.provision_state).toBe('deploy failed');
    expect(node.last_error).toMatch(/MD5 support is disabled/);
    expect(await sha256File(disks[0]!.device)).toBe(before);
  }, 320_000);

  it('raw image + config drive (sha256): -> active, disk holds the image except the MBR table, config-2 has the meta_data', async () => {
    await ironic.baremetal(['node', 'unset', uuid, '--instance-info', 'image_checksum']);
    const node = await deploy(raw, ['image_os_hash_algo=sha256', `image_os_hash_value=${await sha256File(raw)}`], 'node-2025');
    expect(node.last_error ?? null, agent.output().slice(-3000)).toBeNull();
    expect(node.provision_state).toBe('active');
    expectDiskHoldsImage(disks[0]!.device, raw);
    expect(await configDriveHostname(disks[0]!.device)).toBe('node-2025');
  }, 320_000);

  it("enable_bios_bootloader_install=false reached the agent: install_bootloader for BIOS is refused (or the failure ignored when asked), the disk untouched", async () => {
    const configs = agent
      .output()
      .split('\n')
      .filter((l) => l.includes('"msg":"conductor config from lookup"'))
      .map((l) => JSON.parse(l).config as Record<string, unknown>);
    expect(configs.length).toBeGreaterThan(0);
    expect(configs.at(-1)).toMatchObject({ enable_bios_bootloader_install: false, agent_md5_checksum_enable: false });
    expect(configs.at(-1)).not.toHaveProperty('agent_token');
    // What Ironic sends after writing a partition image in BIOS mode, with the token it gave the agent.
    const before = await sha256File(disks[0]!.device);
    const token = seen.tokens[seen.tokens.length - 1]!;
    const installBootloader = async (extra: Record<string, unknown>) => {
      const params = { root_uuid: '4b4d6a1e-0000-4000-8000-000000000001', target_boot_mode: 'bios', ...extra };
      const { stdout } = await execa('curl', [
        '-sS', '--cacert', lab.caFile(), '-X', 'POST', '-d', JSON.stringify({ name: 'image.install_bootloader', params }),
        `${agent.url}/v1/commands/?wait=true&agent_token=${encodeURIComponent(token)}`,
      ]);
      return JSON.parse(stdout) as Record<string, any>;
    };
    const body = await installBootloader({});
    expect(body.command_status, JSON.stringify(body)).toBe('FAILED');
    expect(JSON.stringify(body.command_error)).toMatch(/enable_bios_bootloader_install is false/);
    // With ignore_bootloader_failure (driver_info), as IPA: the deploy may go on, and the result says why.
    const ignored = await installBootloader({ ignore_bootloader_failure: true });
    expect(ignored.command_status, JSON.stringify(ignored)).toBe('SUCCEEDED');
    expect(ignored.command_result.ignoredFailure).toMatch(/enable_bios_bootloader_install is false/);
    expect(await sha256File(disks[0]!.device)).toBe(before);
  });

  it('service step on the active node: verify_root_device reads the deployed disk, leaves it untouched, node back to active', async () => {
    const before = await sha256File(disks[0]!.device);
    const tokensBefore = seen.tokens.length;
    const node = await service([{ interface: 'deploy', step: 'verify_root_device' }]);
    expect(node.last_error ?? null, agent.output().slice(-3000)).toBeNull();
    expect(node.provision_state).toBe('active');
    expect(await sha256File(disks[0]!.device)).toBe(before);
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
