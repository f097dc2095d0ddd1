import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  agentCommands as commands,
  agentGet,
  availableFastTrackNode,
  deployImage as deploy,
  expectDebianPlan,
  type FastTrackNode,
  useKexecImages,
} from '../helpers/fast-track-node.ts';
import { sha256File } from '../helpers/images.ts';
import { startIronic, type Ironic } from '../helpers/ironic.ts';

// Zero-reboot deploys through a real Ironic 21.4 with [deploy]fast_track on:
// cleaning ends in `available` with the agent still up and heartbeating, the
// node is switched to the `agent` power interface (which validates only while
// an agent heartbeats), and a deploy of a Debian-looking whole-disk image
// ends with standby.run_image, answered by the kexec path: a dry run here
// (not a ramdisk) that names the kernel, initrd and command line found on
// the deployed disk. Failures say why and leave the agent answering.
//
// Ironic 21.4 (and 29.0) cannot end a deploy through the agent power
// interface with the stock `direct` deploy: node_power_action(REBOOT) wipes
// agent_url and the token (wipe_internal_info_on_power_off) before
// AgentPower.reboot sends standby.run_image, which then fails with "Agent
// driver requires agent_url". The first block pins that with `direct`; the
// second deploys through the project's plugin (ironic-plugin/, installed and
// enabled by lab/ironic/start.sh): hardware type manual-management-kexec,
// deploy interface direct-kexec, whose tear_down_agent sends run_image itself
// and never calls a power action. (test/integration/kexec-deploy-interface.test.ts
// runs the plugin with a power interface that can power off, on 21.4 and 29.0.)


const images = useKexecImages('metal-agent-fasttrack-');

function ironicWithNodes() {
  const ctx = { ironic: undefined as unknown as Ironic, nodes: [] as FastTrackNode[] };
  beforeAll(async () => {
    ctx.ironic = await startIronic({ fastTrack: true, heartbeatTimeoutSec: 10 });
  }, 120_000);
  afterAll(async () => {
    for (const n of ctx.nodes) await n.agent.stop().catch(() => undefined);
    await ctx.ironic?.stop();
    for (const n of ctx.nodes) await n.disk.destroy();
  });
  return ctx;
}

/** A node on agent power: stock `direct` (plugin false) or the plugin's manual-management-kexec + direct-kexec. */
function agentPowerNode(i: number, agentArgs: string[], plugin: boolean) {
  const mac = `52:54:00:a0:0f:${String(10 + i).padStart(2, '0')}`;
  const kexec = plugin ? { driver: 'manual-management-kexec', deployInterface: 'direct-kexec' } : {};
  return { mac, label: `ft${i}`, agentArgs, powerInterface: 'agent', ...kexec };
}

describe('Ironic 21.4: fast track, agent power, stock direct deploy', () => {
  const ctx = ironicWithNodes();

  it('clean -> available with the agent heartbeating, agent power; the deploy starts at once, and 21.4 cannot send run_image (agent_url wiped)', async () => {
    const n = await availableFastTrackNode(ctx.ironic, ctx.nodes, agentPowerNode(1, ['--kexec'], false));
    const node = await deploy(ctx.ironic, images.server, n, images.debianImage);
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
    const n = await availableFastTrackNode(ctx.ironic, ctx.nodes, agentPowerNode(2, ['--kexec'], false));
    const steps = JSON.stringify([{ interface: 'deploy', step: 'kexec_handoff', args: {}, priority: 50 }]);
    const node = await deploy(ctx.ironic, images.server, n, images.noKernelImage, ['--deploy-steps', steps]);
    expect(node.provision_state).toBe('deploy failed');
    expect(node.last_error).toMatch(/kexec_handoff.*no kernel found on the deployed disk/);
    const cmds = await commands(n);
    expect(cmds.map((c) => c.command_name)).not.toContain('run_image');
    const r = await agentGet(n.agent, '/v1/status');
    expect(r.status).toBe(200);
    expect(r.body.version).toBeTruthy();
  }, 900_000);
});

describe('Ironic 21.4: fast track, agent power, deploy interface direct-kexec (ironic-plugin)', () => {
  const ctx = ironicWithNodes();

  it('kexec flag on: deploy to active with zero reboots; run_image answered by the kexec dry run naming the deployed kernel', async () => {
    const n = await availableFastTrackNode(ctx.ironic, ctx.nodes, agentPowerNode(3, ['--kexec'], true));
    const kernelSha = await sha256File(images.debian.kernel.path);
    const node = await deploy(ctx.ironic, images.server, n, images.debianImage);
    expect(node.last_error ?? null, n.agent.output().slice(-4000)).toBeNull();
    expect(node.provision_state).toBe('active');
    expect(ctx.ironic.log()).toMatch(new RegExp(`Performing a fast track deployment for ${n.uuid}`));

    const cmds = await commands(n);
    const names = cmds.map((c) => c.command_name);
    // No power_off, no reboot: the deploy ends with sync, the plugin arming the handoff, run_image.
    expect(names).not.toContain('power_off');
    expect(names.slice(-3)).toEqual(['sync', 'execute_deploy_step', 'run_image']);
    expect(cmds[cmds.length - 2].command_result.deploy_step.step).toBe('kexec_handoff');
    const runImage = cmds[cmds.length - 1];
    expect(runImage.command_status, JSON.stringify(runImage.command_error)).toBe('SUCCEEDED');
    expectDebianPlan(images.debian, runImage.command_result, '');
    expect(runImage.command_result.kernel.sha256).toBe(kernelSha);
    expect(runImage.command_result.device).toBe(n.disk.device);
    // The plugin sent run_image; the agent power interface's reboot (and its 30 s sleep) never ran.
    expect(ctx.ironic.log()).toMatch(new RegExp(`Node ${n.uuid}: run_image answered without leaving the ramdisk \\(dry run: would kexec`));
    expect(ctx.ironic.log()).not.toMatch(new RegExp(`Requested reboot of node ${n.uuid} via the agent`));
    expect(n.agent.output()).not.toMatch(/would reboot this machine/);
    // A dry run: the agent is still here.
    expect((await agentGet(n.agent, '/v1/status')).status).toBe(200);
  }, 900_000);

  it('kexec_handoff deploy step (no flag) with kernel params: armed after write_image, executed by run_image', async () => {
    const n = await availableFastTrackNode(ctx.ironic, ctx.nodes, agentPowerNode(4, [], true));
    const steps = JSON.stringify([{ interface: 'deploy', step: 'kexec_handoff', args: { kernel_params: 'console=ttyS1 ipa-test=1' }, priority: 50 }]);
    const node = await deploy(ctx.ironic, images.server, n, images.debianImage, ['--deploy-steps', steps]);
    expect(node.last_error ?? null, n.agent.output().slice(-4000)).toBeNull();
    expect(node.provision_state).toBe('active');
    const cmds = await commands(n);
    const step = cmds.find((c) => c.command_name === 'execute_deploy_step' && c.command_result?.deploy_step?.step === 'kexec_handoff');
    expect(step, JSON.stringify(cmds.map((c) => [c.command_name, c.command_result?.deploy_step?.step]))).toBeDefined();
    expect(step.command_status).toBe('SUCCEEDED');
    expect(step.command_result.deploy_result.armed).toBe(true);
    expectDebianPlan(images.debian, step.command_result.deploy_result, 'console=ttyS1 ipa-test=1');
    // The plugin found the handoff armed by this deploy and kept it (arming again would drop the parameters).
    expect(cmds.filter((c) => c.command_result?.deploy_step?.step === 'kexec_handoff')).toHaveLength(1);
    expect(ctx.ironic.log()).toMatch(new RegExp(`Node ${n.uuid}: the deploy already armed the kexec handoff`));
    expect(cmds.map((c) => c.command_name).slice(-2)).toEqual(['sync', 'run_image']);
    const runImage = cmds[cmds.length - 1];
    expect(runImage.command_name).toBe('run_image');
    expect(runImage.command_status).toBe('SUCCEEDED');
    expectDebianPlan(images.debian, runImage.command_result, 'console=ttyS1 ipa-test=1');
  }, 900_000);

  it('kexec flag on, image without a kernel: run_image fails with a clear error; the agent still answers', async () => {
    const n = await availableFastTrackNode(ctx.ironic, ctx.nodes, agentPowerNode(5, ['--kexec'], true));
    // Arming fails; with agent power the plugin's fallback is run_image unarmed (the agent's reboot),
    // which --kexec turns into another attempt that fails the same way. Ironic does not look at the
    // outcome of the asynchronous run_image (as with IPA's reboot): the node goes active.
    const node = await deploy(ctx.ironic, images.server, n, images.noKernelImage);
    expect(node.provision_state).toBe('active');
    expect(ctx.ironic.log()).toMatch(
      new RegExp(`Node ${n.uuid}: no kexec handoff \\(kexec_handoff failed: .*no kernel found.*\\); ending the deploy with the agent's reboot`),
    );
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
