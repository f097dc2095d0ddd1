import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Agent as UndiciAgent, fetch as ufetch } from 'undici';
import { afterAll, beforeAll, expect } from 'vitest';
import { startAgent, type AgentProcess } from './agent-process.ts';
import { startImageServer, type ImageServer } from './http-image-server.ts';
import { sha256File } from './images.ts';
import type { Ironic } from './ironic.ts';
import { buildDebianDisk, type DebianDisk } from './kexec-image.ts';
import { createLoopDisk, type LoopDisk } from './loop-disk.ts';

// A node cleaned to `available` through a real Ironic with [deploy]fast_track on, with our agent
// (a process on a loop disk) still heartbeating, ready for a zero-reboot deploy; and what the
// kexec tests read back: the agent's command list and the dry-run kexec plan.

/** What the kexec deploy tests deploy: a Debian disk image with a kernel, one without, and the server for both. */
export interface KexecImages {
  server: ImageServer;
  debian: DebianDisk;
  debianImage: string;
  noKernelImage: string;
}

/** Builds the KexecImages in the file's beforeAll (filled in then) and removes them in its afterAll. */
export function useKexecImages(scratchPrefix: string): KexecImages {
  const scratch = mkdtempSync(join(tmpdir(), scratchPrefix));
  const images = {} as KexecImages;
  beforeAll(async () => {
    images.debianImage = join(scratch, 'debian.raw');
    images.debian = await buildDebianDisk(images.debianImage, scratch, {});
    images.noKernelImage = join(scratch, 'no-kernel.raw');
    await buildDebianDisk(images.noKernelImage, scratch, { withKernel: false });
    images.server = await startImageServer();
  }, 120_000);
  afterAll(async () => {
    await images.server?.stop();
    rmSync(scratch, { recursive: true, force: true });
  });
  return images;
}

const insecure = new UndiciAgent({ connect: { rejectUnauthorized: false } });

export async function agentGet(agent: AgentProcess, path: string): Promise<{ status: number; body: any }> {
  const res = await ufetch(`${agent.url}${path}`, { dispatcher: insecure });
  return { status: res.status, body: await res.json() };
}

export interface FastTrackNode {
  uuid: string;
  mac: string;
  disk: LoopDisk;
  agent: AgentProcess;
}

export interface FastTrackNodeOptions {
  /** The node's MAC. */
  mac: string;
  /** Loop disk label (unique per test file). */
  label: string;
  agentArgs?: string[];
  /** Hardware type and deploy interface (default manual-management + direct). */
  driver?: string;
  deployInterface?: string;
  /** Switch to this power interface once available (`agent` validates only while an agent heartbeats). */
  powerInterface?: string;
}

/** Enrolls, cleans to `available` with an agent that stays, checks it keeps heartbeating; optionally switches power interface. */
export async function availableFastTrackNode(ironic: Ironic, cleanup: FastTrackNode[], o: FastTrackNodeOptions): Promise<FastTrackNode> {
  const disk = await createLoopDisk(96, o.label);
  let agent: AgentProcess | undefined;
  try {
    const uuid = await ironic.enroll(o.mac, { rootDevice: { name: disk.device }, driver: o.driver, deployInterface: o.deployInterface });
    agent = await startAgent({ apiUrl: ironic.url, mac: o.mac, allowedDevices: [disk.device], extraArgs: o.agentArgs ?? [] });
    const n = { uuid, mac: o.mac, disk, agent };
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
    if (o.powerInterface) {
      await ironic.baremetal(['node', 'set', uuid, '--power-interface', o.powerInterface]);
      expect((await ironic.node(uuid)).power_interface).toBe(o.powerInterface);
    }
    return n;
  } catch (err) {
    // Not in `cleanup` yet: nothing else would remove them.
    if (!cleanup.some((n) => n.disk === disk)) {
      await agent?.stop().catch(() => undefined);
      await disk.destroy();
    }
    throw err;
  }
}

/** Deploys a raw whole-disk image (sha256-checked) and waits for active or deploy failed. */
export async function deployImage(ironic: Ironic, server: ImageServer, n: FastTrackNode, image: string, extra: string[] = []) {
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

/**
 * The agent's command list (GET /v1/commands/). Pass the session's token once the conductor sent it
 * on a GET (29.0 does): the agent then refuses GETs without it (IPA 10's rule).
 */
export async function agentCommands(n: FastTrackNode, token?: string): Promise<any[]> {
  const r = await agentGet(n.agent, `/v1/commands/${token ? `?agent_token=${encodeURIComponent(token)}` : ''}`);
  expect(r.status).toBe(200);
  return r.body.commands;
}

/** A kexec dry-run plan for the Debian-looking disk: the deployed kernel, initrd and command line. */
export function expectDebianPlan(debian: DebianDisk, plan: any, extraParams: string) {
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

/** The deploy step a succeeded execute_deploy_step ran (a failed one has no result: read its error). */
export function deployStepOf(cmd: any): string | undefined {
  return cmd.command_result?.deploy_step?.step;
}
