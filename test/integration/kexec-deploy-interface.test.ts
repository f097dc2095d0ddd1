import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  agentCommands,
  agentGet,
  availableFastTrackNode,
  deployImage,
  deployStepOf,
  expectDebianPlan,
  type FastTrackNode,
  useKexecImages,
} from '../helpers/fast-track-node.ts';
import { sha256File } from '../helpers/images.ts';
import { startIronicRelease, type IronicRelease, type ReleaseIronic } from '../helpers/ironic-release.ts';

// The project's Ironic plugin (ironic-plugin/: deploy interface `direct-kexec`, hardware type
// `manual-management-kexec`), loaded through Ironic's entry points by an unmodified Ironic 21.4 and
// 29.0 (lab/ironic/start.sh installs and enables it). Nodes on the `fake` power interface, i.e. a
// power interface that CAN power on and off, as a BMC's can: stock `direct` would power such a node
// off at the end of the deploy and on again. Each node is cleaned to `available` with fast track
// and deployed with a Debian-looking whole-disk image; our agent runs as a process on a loop disk,
// WITHOUT --kexec, so it is the plugin that arms the handoff. Outside a ramdisk the agent never
// kexecs: run_image answers with the dry-run plan naming the deployed kernel.
//   - kexec: the deploy ends with the in-band kexec_handoff step and standby.run_image, and the
//     conductor makes no power action at all (its log has no "Successfully set node ... power
//     state"), the agent never gets power_off; the node is active and on.
//   - fallback: an image without a kernel: arming fails, the plugin logs why and the deploy ends the
//     stock way (in-band power_off, then power off and on through the power interface); active.
//   - which hardware types take direct-kexec (Ironic matches interfaces by exact class).

const AGENT_STATE_RETRIES = '[agent]\npost_deploy_get_power_state_retry_interval = 1\npost_deploy_get_power_state_retries = 3\n';

const images = useKexecImages('metal-agent-kexec-iface-');

/** The conductor's power actions on a node ("Successfully set node X power state to power off by power off."). */
function powerActions(log: string, uuid: string): string[] {
  const re = new RegExp(`Successfully set node ${uuid} power state to ([a-z ]+?) by`, 'g');
  return [...log.matchAll(re)].map((m) => m[1]!);
}

function kexecInterfaceSuite(release: IronicRelease, macByte: string) {
  describe(`Ironic ${release}: deploy interface direct-kexec (ironic-plugin), fake power, fast track`, () => {
    let ironic: ReleaseIronic;
    const nodes: FastTrackNode[] = [];
    const node = (i: number) => ({
      mac: `52:54:00:a1:${macByte}:${String(10 + i).padStart(2, '0')}`,
      label: `kx${macByte}${i}`,
      driver: 'manual-management-kexec',
      deployInterface: 'direct-kexec',
    });

    beforeAll(async () => {
      ironic = await startIronicRelease(release, { fastTrack: true, heartbeatTimeoutSec: 10, extraConf: AGENT_STATE_RETRIES });
    }, 600_000);
    afterAll(async () => {
      for (const n of nodes) await n.agent.stop().catch(() => undefined);
      await ironic?.stop();
      for (const n of nodes) await n.disk.destroy();
    });

    it(`Ironic ${release}: ends the deploy with the agent's kexec handoff; no power action, node active and on`, async () => {
      const n = await availableFastTrackNode(ironic, nodes, node(1));
      expect((await ironic.node(n.uuid)).deploy_interface).toBe('direct-kexec');
      // Fast track: one agent session from cleaning to the end; Ironic wipes the token when the ramdisk goes.
      const token = await ironic.secretToken(n.uuid);
      const logStart = ironic.log().length;
      const done = await deployImage(ironic, images.server, n, images.debianImage);
      expect(done.last_error ?? null, n.agent.output().slice(-4000)).toBeNull();
      expect(done.provision_state).toBe('active');
      expect(done.power_state).toBe('power on');
      // What a power-off leaves behind is gone (the ramdisk is), the plugin's own mark too.
      expect(done.driver_internal_info.agent_url).toBeUndefined();
      expect(done.driver_internal_info.metal_agent_kexec_handoff).toBeUndefined();

      const log = ironic.log().slice(logStart);
      expect(log).toMatch(new RegExp(`Performing a fast track deployment for ${n.uuid}`));
      expect(log).toMatch(new RegExp(`Node ${n.uuid}: kexec handoff armed: /boot/vmlinuz-${images.debian.kernel.version.replace(/[.]/g, '\\.')}, .* \\(dry run\\)`));
      expect(log).toMatch(new RegExp(`Node ${n.uuid}: run_image answered without leaving the ramdisk \\(dry run: would kexec`));
      expect(log).toMatch(new RegExp(`Node ${n.uuid} runs the deployed OS after the kexec handoff; power is on`));
      expect(log).not.toMatch(new RegExp(`Node ${n.uuid}: no kexec handoff`));
      // The conductor never changed the node's power: no off, no on, no reboot.
      expect(powerActions(log, n.uuid)).toEqual([]);

      const cmds = await agentCommands(n, token);
      const names = cmds.map((c) => c.command_name);
      expect(names).not.toContain('power_off');
      expect(names.slice(-3)).toEqual(['sync', 'execute_deploy_step', 'run_image']);
      const arm = cmds[cmds.length - 2];
      expect(deployStepOf(arm)).toBe('kexec_handoff');
      expect(arm.command_status).toBe('SUCCEEDED');
      expect(arm.command_result.deploy_result.armed).toBe(true);
      expectDebianPlan(images.debian, arm.command_result.deploy_result, '');
      const runImage = cmds[cmds.length - 1];
      expect(runImage.command_status, JSON.stringify(runImage.command_error)).toBe('SUCCEEDED');
      expectDebianPlan(images.debian, runImage.command_result, '');
      expect(runImage.command_result.kernel.sha256).toBe(await sha256File(images.debian.kernel.path));
      expect(runImage.command_result.device).toBe(n.disk.device);
      expect(n.agent.output()).not.toMatch(/would (reboot|power off) this machine/);
      // A dry run: the agent is still here.
      expect((await agentGet(n.agent, '/v1/status')).status).toBe(200);
    }, 900_000);

    it(`Ironic ${release}: no kernel on the deployed disk: the plugin falls back to the power cycle (logged), node active`, async () => {
      const n = await availableFastTrackNode(ironic, nodes, node(2));
      const token = await ironic.secretToken(n.uuid);
      const logStart = ironic.log().length;
      const done = await deployImage(ironic, images.server, n, images.noKernelImage);
      expect(done.last_error ?? null, n.agent.output().slice(-4000)).toBeNull();
      expect(done.provision_state).toBe('active');
      expect(done.power_state).toBe('power on');
      expect(done.driver_internal_info.metal_agent_kexec_handoff).toBeUndefined();

      const log = ironic.log().slice(logStart);
      expect(log).toMatch(
        new RegExp(`Node ${n.uuid}: no kexec handoff \\(kexec_handoff failed: .*no kernel found on the deployed disk.*\\); ending the deploy with a power cycle through the fake power interface`),
      );
      expect(log).not.toMatch(new RegExp(`Node ${n.uuid} runs the deployed OS after the kexec handoff`));
      // The stock ending: off (forced once the in-band power_off left it on) and on again.
      expect(powerActions(log, n.uuid)).toEqual(['power off', 'power on']);

      const cmds = await agentCommands(n, token);
      const names = cmds.map((c) => c.command_name);
      expect(names).not.toContain('run_image');
      expect(names.slice(-3)).toEqual(['sync', 'execute_deploy_step', 'power_off']);
      const arm = cmds[cmds.length - 2];
      expect(arm.command_status).toBe('FAILED');
      expect(arm.command_error.details).toMatch(/no kernel found on the deployed disk/);
      // Outside a ramdisk power_off is reported, not done: the agent still answers.
      expect(cmds[cmds.length - 1].command_result.dry_run).toBe(true);
      expect((await agentGet(n.agent, '/v1/status')).status).toBe(200);
    }, 900_000);

    it(`Ironic ${release}: direct-kexec is taken by the *-kexec hardware types and fake-hardware, refused by the stock ones`, async () => {
      const create = (driver: string) =>
        ironic.baremetal(['node', 'create', '--driver', driver, '--deploy-interface', 'direct-kexec', '-f', 'value', '-c', 'deploy_interface']).then(
          (out) => out.trim(),
          (err: Error) => err.message,
        );
      for (const driver of ['manual-management-kexec', 'ipmi-kexec', 'redfish-kexec', 'fake-hardware']) {
        expect(await create(driver), driver).toBe('direct-kexec');
      }
      expect(await create('ipmi')).toMatch(/is not supported by hardware type IPMIHardware/);
      expect(await create('redfish')).toMatch(/is not supported by hardware type RedfishHardware/);
      expect(await create('manual-management')).toMatch(/is not supported by hardware type ManualManagementHardware/);
      // The *-kexec types keep the stock power interfaces: a BMC's, not fake.
      const ipmiNode = await ironic.baremetalJson(['node', 'create', '--driver', 'ipmi-kexec', '--deploy-interface', 'direct-kexec']);
      expect(ipmiNode.power_interface).toBe('ipmitool');
    }, 120_000);
  });
}

kexecInterfaceSuite('21.4', '21');
kexecInterfaceSuite('29.0', '29');
