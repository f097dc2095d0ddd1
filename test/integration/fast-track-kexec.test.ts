import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Agent as UndiciAgent, fetch as ufetch } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startAgent, type AgentProcess } from '../helpers/agent-process.ts';
import { startImageServer, type ImageServer } from '../helpers/http-image-server.ts';
import { sha256File } from '../helpers/images.ts';
import { buildDebianDisk, type DebianDisk } from '../helpers/kexec-image.ts';
import { startIronic, type Ironic } from '../helpers/ironic.ts';
import { createLoopDisk, type LoopDisk } from '../helpers/loop-disk.ts';

// Zero-reboot deploys through a real Ironic 21.4 with [deploy]fast_track on:
// cleaning ends in `available` with the agent still up and heartbeating, the
// node is switched to the `agent` power interface (which validates only while
// an agent heartbeats), and a deploy of a Debian-looking whole-disk image
// ends with standby.run_image, answered by the kexec path: a dry run here
// (not a ramdisk) that names the kernel, initrd and command line found on
// the deployed disk. Failures say why and leave the agent answering.
//
// Ironic 21.4 (and 29.0) cannot end a deploy through the agent power
// interface as shipped: node_power_action(REBOOT) wipes agent_url and the
// token (wipe_internal_info_on_power_off) before AgentPower.reboot sends
// standby.run_image, which then fails with "Agent driver requires agent_url".
// The first block pins that with the unmodified conductor; the second runs
// the same 21.4 with lab/ironic/agent-power-fix, which keeps URL, token and CA for
// agent-power nodes until AgentPower.reboot has sent run_image (it wipes URL
// and token itself right after), i.e. what a conductor fix would do.


const insecure = new UndiciAgent({ connect: { rejectUnauthorized: false } });

async function agentGet(agent: AgentProcess, path: string): Promise<{ status: number; body: any }> {
  const res = await ufetch(`${agent.url}${path}`, { dispatcher: insecure });
  return { status: res.status, body: await res.json() };
}

interface FastTrackNode {
  uuid: string;
  mac: string;
  disk: LoopDisk;
  agent: AgentProcess;
}

/** Enrolls, cleans to `available` with an agent that stays, checks it keeps heartbeating, switches to agent power. */
async function availableFastTrackNode(ironic: Ironic, cleanup: FastTrackNode[], i: number, agentArgs: string[]): Promise<FastTrackNode> {
  const mac = `52:54:00:a0:0f:${String(10 + i).padStart(2, '0')}`;
  const disk = await createLoopDisk(96, `ft${i}`);
  const uuid = await ironic.enroll(mac, { rootDevice: { name: disk.device } });
  const agent = await startAgent({ apiUrl: ironic.url, mac, allowedDevices: [disk.device], extraArgs: agentArgs });
  const n = { uuid, mac, disk, agent };
  cleanup.push(n);
  const avail = await ironic.waitForState(uuid, ['available', 'clean failed'], 300);
  expect(avail.last_error ?? null, agent.output().slice(-3000)).toBeNull();
  expect(avail.provision_state).toBe('available');
  // Fast track: Ironic kept the agent. Its URL stays recorded and heartbeats keep coming in `available`.
  expect(avail.driver_internal_info.agent_url).toBe(agent.url);
  const first = avail.driver_internal_info.agent_last_heartbeat as string;
  let later = first;
  for (let tries = 0; later === first && tries < 120; tries++) {
    await sleep(1000);
    const now = await ironic.node(uuid);
    expect(now.provision_state).toBe('available');
    expect(now.driver_internal_info.agent_url).toBe(agent.url);
    later = now.driver_internal_info.agent_last_heartbeat;
  }
  expect(new Date(later).getTime()).toBeGreaterThan(new Date(first).getTime());
  // The agent power interface validates only against a live agent.
  await ironic.baremetal(['node', 'set', uuid, '--power-interface', 'agent']);
  expect((await ironic.node(uuid)).power_interface).toBe('agent');
  return n;
}

async function deploy(ironic: Ironic, server: ImageServer, n: FastTrackNode, image: string, extra: string[] = []) {
  const url = server.serve(`/${n.uuid}-${image.split('/').pop()}`, { path: image });
  await ironic.baremetal([
    'node', 'set', n.uuid,
    '--instance-info', `image_source=${url}`,
    '--instance-info', 'image_os_hash_algo=sha256',
    '--instance-info', `image_os_hash_value=${await sha256File(image)}`,
    '--instance-info', 'image_disk_format=raw',
  ]);
  await ironic.baremetal(['node', 'deploy', n.uuid, ...extra]);
  return ironic.waitForState(n.uuid, ['active', 'deploy failed'], 400);
}

async function commands(n: FastTrackNode): Promise<any[]> {
  const r = await agentGet(n.agent, '/v1/commands/');
  expect(r.status).toBe(200);
  return r.body.commands;
}

function expectDebianPlan(debian: DebianDisk, plan: any, extraParams: string) {
  expect(plan.dry_run).toBe(true);
  expect(plan.message).toMatch(/^dry run: would kexec into \/boot\/vmlinuz-/);
  expect(plan.method).toBe('grub');
  expect(plan.source).toBe('/boot/grub/grub.cfg on partition 1');
  expect(plan.kernel.path).toBe(`/boot/vmlinuz-${debian.kernel.version}`);
  expect(plan.kernel.format).toBe('bzImage');
  expect(plan.initrd.parts[0].path).toBe(`/boot/initrd.img-${debian.kernel.version}`);
  expect(plan.initrd.size).toBe(debian.initrd.length);
  const cmdline = `${debian.cmdline}${extraParams ? ` ${extraParams}` : ''}`;
  expect(plan.cmdline).toBe(cmdline);
  expect(plan.commands[0].slice(0, 2)).toEqual(['kexec', '-l']);
  expect(plan.commands[0][4]).toBe(`--command-line=${cmdline}`);
  expect(plan.commands.slice(1)).toEqual([['sync'], ['kexec', '-e']]);
}

const scratch = mkdtempSync(join(tmpdir(), 'metal-agent-fasttrack-'));
let server: ImageServer;
let debian: DebianDisk;
let debianImage: string;
let noKernelImage: string;

beforeAll(async () => {
  debianImage = join(scratch, 'debian.raw');
  debian = await buildDebianDisk(debianImage, scratch, {});
  noKernelImage = join(scratch, 'no-kernel.raw');
  await buildDebianDisk(noKernelImage, scratch, { withKernel: false });
  server = await startImageServer();
}, 120_000);

afterAll(async () => {
  await server?.stop();
  rmSync(scratch, { recursive: true, force: true });
});

function ironicWithNodes(opts: { shim: boolean }) {
  const ctx = { ironic: undefined as unknown as Ironic, nodes: [] as FastTrackNode[] };
  beforeAll(async () => {
    ctx.ironic = await startIronic({ fastTrack: true, heartbeatTimeoutSec: 10, agentPowerFix: opts.shim });
  }, 120_000);
  afterAll(async () => {
    for (const n of ctx.nodes) await n.agent.stop().catch(() => undefined);
    await ctx.ironic?.stop();
    for (const n of ctx.nodes) await n.disk.destroy();
  });
  return ctx;
}

describe('Ironic 21.4: fast track, as shipped', () => {
  const ctx = ironicWithNodes({ shim: false });

  it('clean -> available with the agent heartbeating, agent power; the deploy starts at once, and 21.4 cannot send run_image (agent_url wiped)', async () => {
    const n = await availableFastTrackNode(ctx.ironic, ctx.nodes, 1, ['--kexec']);
    const node = await deploy(ctx.ironic, server, n, debianImage);
    // Fast track: the conductor skipped the power-off/boot of the ramdisk.
    expect(ctx.ironic.log()).toMatch(new RegExp(`Performing a fast track deployment for ${n.uuid}`));
    const names = (await commands(n)).map((c) => c.command_name);
    expect(names).toContain('execute_deploy_step');
    expect(names[names.length - 1]).toBe('sync');
    // The conductor-side limitation, pinned: run_image never reaches the agent.
    expect(node.provision_state).toBe('deploy failed');
    expect(node.last_error).toMatch(/tear_down_agent failed: .*Agent driver requires agent_url/);
    expect(names).not.toContain('run_image');
    expect((await agentGet(n.agent, '/v1/status')).status).toBe(200);
  }, 900_000);

  it('kexec_handoff deploy step on an image without a kernel fails the deploy with a clear error; the agent still answers', async () => {
    const n = await availableFastTrackNode(ctx.ironic, ctx.nodes, 2, ['--kexec']);
    const steps = JSON.stringify([{ interface: 'deploy', step: 'kexec_handoff', args: {}, priority: 50 }]);
    const node = await deploy(ctx.ironic, server, n, noKernelImage, ['--deploy-steps', steps]);
    expect(node.provision_state).toBe('deploy failed');
    expect(node.last_error).toMatch(/kexec_handoff.*no kernel found on the deployed disk/);
    const cmds = await commands(n);
    expect(cmds.map((c) => c.command_name)).not.toContain('run_image');
    const r = await agentGet(n.agent, '/v1/status');
    expect(r.status).toBe(200);
    expect(r.body.version).toBeTruthy();
  }, 900_000);
});

describe('Ironic 21.4: fast track with the agent-power reboot fixed (lab/ironic/agent-power-fix)', () => {
  const ctx = ironicWithNodes({ shim: true });

  it('kexec flag on: deploy to active with zero reboots; run_image answered by the kexec dry run naming the deployed kernel', async () => {
    const n = await availableFastTrackNode(ctx.ironic, ctx.nodes, 3, ['--kexec']);
    const kernelSha = await sha256File(debian.kernel.path);
    const node = await deploy(ctx.ironic, server, n, debianImage);
    expect(node.last_error ?? null, n.agent.output().slice(-4000)).toBeNull();
    expect(node.provision_state).toBe('active');
    expect(ctx.ironic.log()).toMatch(new RegExp(`Performing a fast track deployment for ${n.uuid}`));

    const cmds = await commands(n);
    const names = cmds.map((c) => c.command_name);
    // No power_off, no reboot: the deploy ends with sync + run_image.
    expect(names).not.toContain('power_off');
    expect(names.slice(-2)).toEqual(['sync', 'run_image']);
    const runImage = cmds[cmds.length - 1];
    expect(runImage.command_status, JSON.stringify(runImage.command_error)).toBe('SUCCEEDED');
    expectDebianPlan(debian, runImage.command_result, '');
    expect(runImage.command_result.kernel.sha256).toBe(kernelSha);
    expect(runImage.command_result.device).toBe(n.disk.device);
    expect(ctx.ironic.log()).toMatch(new RegExp(`Requested reboot of node ${n.uuid} via the agent`));
    expect(n.agent.output()).not.toMatch(/would reboot this machine/);
    // A dry run: the agent is still here.
    expect((await agentGet(n.agent, '/v1/status')).status).toBe(200);
  }, 900_000);

  it('kexec_handoff deploy step (no flag) with kernel params: armed after write_image, executed by run_image', async () => {
    const n = await availableFastTrackNode(ctx.ironic, ctx.nodes, 4, []);
    const steps = JSON.stringify([{ interface: 'deploy', step: 'kexec_handoff', args: { kernel_params: 'console=ttyS1 ipa-test=1' }, priority: 50 }]);
    const node = await deploy(ctx.ironic, server, n, debianImage, ['--deploy-steps', steps]);
    expect(node.last_error ?? null, n.agent.output().slice(-4000)).toBeNull();
    expect(node.provision_state).toBe('active');
    const cmds = await commands(n);
    const step = cmds.find((c) => c.command_name === 'execute_deploy_step' && c.command_result?.deploy_step?.step === 'kexec_handoff');
    expect(step, JSON.stringify(cmds.map((c) => [c.command_name, c.command_result?.deploy_step?.step]))).toBeDefined();
    expect(step.command_status).toBe('SUCCEEDED');
    expect(step.command_result.deploy_result.armed).toBe(true);
    expectDebianPlan(debian, step.command_result.deploy_result, 'console=ttyS1 ipa-test=1');
    const runImage = cmds[cmds.length - 1];
    expect(runImage.command_name).toBe('run_image');
    expect(runImage.command_status).toBe('SUCCEEDED');
    expectDebianPlan(debian, runImage.command_result, 'console=ttyS1 ipa-test=1');
  }, 900_000);

  it('kexec flag on, image without a kernel: run_image fails with a clear error; the agent still answers', async () => {
    const n = await availableFastTrackNode(ctx.ironic, ctx.nodes, 5, ['--kexec']);
    // Ironic does not look at the outcome of the asynchronous run_image (as with IPA's reboot): the node goes active.
    await deploy(ctx.ironic, server, n, noKernelImage);
    const cmds = await commands(n);
    const runImage = cmds[cmds.length - 1];
    expect(runImage.command_name).toBe('run_image');
    expect(runImage.command_status).toBe('FAILED');
    expect(runImage.command_error.type).toBe('SystemRebootError');
    expect(runImage.command_error.details).toMatch(/no kernel found on the deployed disk/);
    expect(n.agent.output()).not.toMatch(/would reboot this machine/);
    expect((await agentGet(n.agent, '/v1/status')).status).toBe(200);
  }, 900_000);
});
