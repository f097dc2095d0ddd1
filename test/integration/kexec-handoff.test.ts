import { mkdtempSync, readFileSync, rmSync, existsSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sha256File } from '../helpers/images.ts';
import { buildDebianDisk } from '../helpers/kexec-image.ts';
import { createLoopDisk, type LoopDisk } from '../helpers/loop-disk.ts';
import { Guard } from '../../src/system/safety.ts';
import { executeHandoff, prepareHandoff } from '../../src/system/kexec/handoff.ts';
import { KexecError } from '../../src/system/kexec/find.ts';
import { armedKexec, runImageHandoff } from '../../src/system/kexec/index.ts';
import { step as addKernelParameters } from '../../steps/add-kernel-parameters.ts';
import { step as kexecHandoff } from '../../steps/kexec-handoff.ts';
import type { DeployState, StepContext } from '../../steps/types.ts';
import { log } from '../../src/log.ts';

// The disk side of a kexec handoff against loop disks holding Debian-looking
// images: the kernel, initrd and command line are found as GRUB would boot
// them, the dry run reports the exact kexec commands, and neither a dry run
// nor a failed handoff changes a byte of the disk or leaves anything mounted.

function mountsOf(device: string): string[] {
  const info = readFileSync('/proc/self/mountinfo', 'utf8');
  return info.split('\n').filter((l) => l.includes('metal-mnt-') || l.includes(device));
}

async function loopsOver(file: string): Promise<string> {
  return (await execa('losetup', ['-j', file])).stdout.trim();
}

describe('kexec handoff on loop disks (dry runs; the real path with a recorder in place of kexec)', () => {
  const scratch = mkdtempSync(join(tmpdir(), 'metal-agent-kexec-'));
  let disk: LoopDisk;
  // Never real: not a ramdisk, power actions not allowed.
  let guard: Guard;

  beforeAll(async () => {
    disk = await createLoopDisk(64, 'kexec');
    guard = new Guard({ inRamdisk: false, allowedDevices: [disk.device], allowPowerActions: false });
    expect(guard.powerIsReal).toBe(false);
  });

  afterAll(async () => {
    await disk?.destroy();
    rmSync(scratch, { recursive: true, force: true });
  });

  async function put(o: Parameters<typeof buildDebianDisk>[2]) {
    const img = join(scratch, 'disk.img');
    const built = await buildDebianDisk(img, scratch, o);
    await execa('wipefs', ['-a', '-q', disk.device]);
    await execa('dd', [`if=${img}`, `of=${disk.device}`, 'bs=1M', 'conv=fsync', 'status=none']);
    return built;
  }

  async function unchanged<T>(fn: () => Promise<T>): Promise<T> {
    const before = await sha256File(disk.device);
    const loopsBefore = await loopsOver(disk.file);
    try {
      return await fn();
    } finally {
      expect(await sha256File(disk.device)).toBe(before);
      expect(mountsOf(disk.device)).toEqual([]);
      expect(await loopsOver(disk.file)).toBe(loopsBefore);
    }
  }

  it('/boot on the root partition: grub.cfg default entry, staged, reported as a dry run with the exact kexec commands', async () => {
    const d = await put({});
    const prepared = await unchanged(() => prepareHandoff({ device: disk.device, guard, kernelParams: ['ipa-debug=1', 'quiet'] }));
    const p = prepared.plan;
    expect(prepared.real).toBe(false);
    expect(p.dry_run).toBe(true);
    expect(p.message).toMatch(/^dry run: would kexec into \/boot\/vmlinuz-/);
    expect(p.method).toBe('grub');
    expect(p.source).toBe('/boot/grub/grub.cfg on partition 1');
    expect(p.entry).toBe('Debian GNU/Linux');
    expect(p.kernel).toMatchObject({ partition: 1, path: `/boot/vmlinuz-${d.kernel.version}`, format: 'bzImage', sha256: await sha256File(d.kernel.path) });
    if (d.kernel.real) expect(p.kernel.version).toMatch(new RegExp(`^${d.kernel.version.replace(/[.]/g, '\\.')}`));
    expect(p.initrd!.parts).toEqual([expect.objectContaining({ path: `/boot/initrd.img-${d.kernel.version}`, size: d.initrd.length })]);
    expect(p.initrd!.size).toBe(d.initrd.length);
    expect(p.base_cmdline).toBe(d.cmdline);
    expect(p.cmdline).toBe(`${d.cmdline} ipa-debug=1`);
    const [load, sync, exec] = p.commands;
    expect(load![0]).toBe('kexec');
    expect(load![1]).toBe('-l');
    expect(load![2]).toMatch(/\/kexec-[^/]+\/kernel$/);
    expect(load![3]).toMatch(/^--initrd=.*\/kexec-[^/]+\/initrd$/);
    expect(load![4]).toBe(`--command-line=${d.cmdline} ipa-debug=1`);
    expect(sync).toEqual(['sync']);
    expect(exec).toEqual(['kexec', '-e']);
    // The staged copies are gone once the plan is made (kexec -l would have copied them into the kernel).
    expect(existsSync(load![2]!)).toBe(false);

    // Executing a dry run does nothing but report; quiesce is never called.
    let quiesced = false;
    const out = await executeHandoff(prepared, { quiesce: async () => { quiesced = true; } });
    expect(out).toEqual(p);
    expect(quiesced).toBe(false);
  }, 120_000);

  it('separate /boot partition (GPT): paths relative to /boot, found through search --fs-uuid', async () => {
    const d = await put({ separateBoot: true });
    const { plan } = await unchanged(() => prepareHandoff({ device: disk.device, guard }));
    expect(plan.method).toBe('grub');
    expect(plan.source).toBe('/grub/grub.cfg on partition 1');
    expect(plan.kernel).toMatchObject({ partition: 1, path: `/vmlinuz-${d.kernel.version}` });
    expect(plan.cmdline).toBe(d.cmdline);
  }, 120_000);

  it('no grub.cfg, separate /boot: the /boot partition from fstab, newest kernel, root= from fstab, cmdline from /etc/default/grub', async () => {
    const d = await put({ separateBoot: true, withGrubCfg: false });
    const { plan } = await unchanged(() => prepareHandoff({ device: disk.device, guard }));
    expect(plan.method).toBe('symlinks');
    expect(plan.kernel).toMatchObject({ partition: 1, path: `/vmlinuz-${d.kernel.version}` });
    expect(plan.initrd!.parts[0]!.path).toBe(`/initrd.img-${d.kernel.version}`);
    expect(plan.cmdline).toBe(`root=UUID=${d.rootFsUuid} ro console=ttyS0,115200 quiet`);
  }, 120_000);

  it('no kernel on the disk: KexecError, disk untouched, nothing left mounted or attached', async () => {
    await put({ withKernel: false });
    const err = await unchanged(() => prepareHandoff({ device: disk.device, guard }).catch((e: unknown) => e));
    expect(err).toBeInstanceOf(KexecError);
    expect((err as Error).message).toMatch(/no kernel found on the deployed disk/);
    expect((err as Error).message).toMatch(/vmlinuz-.*which is not on partition 1/);
  }, 120_000);

  it('a "kernel" that is not one: refused before kexec would see it', async () => {
    await put({ kernelOverride: '#!/bin/sh\necho I am not a kernel\n' });
    const err = await unchanged(() => prepareHandoff({ device: disk.device, guard }).catch((e: unknown) => e));
    expect(err).toBeInstanceOf(KexecError);
    expect((err as Error).message).toMatch(/is not a kernel image kexec can load/);
  }, 120_000);

  it('an empty disk: a clear error', async () => {
    await execa('wipefs', ['-a', '-q', disk.device]);
    await execa('dd', ['if=/dev/zero', `of=${disk.device}`, 'bs=1M', 'count=4', 'conv=fsync', 'status=none']);
    const err = await unchanged(() => prepareHandoff({ device: disk.device, guard }).catch((e: unknown) => e));
    expect(err).toBeInstanceOf(KexecError);
    expect((err as Error).message).toMatch(/no kernel found on the deployed disk .*no Linux or EFI filesystem/);
  }, 120_000);

  it('add_kernel_parameters writes the deployed /etc/default/grub and feeds kexec_handoff; run_image executes the armed plan', async () => {
    const d = await put({});
    const deployState: DeployState = { partitionUuids: {}, kernelParams: [], rootDevice: disk.device, isWholeDisk: true };
    const ctx = {
      log,
      guard,
      node: {},
      ports: [],
      lookupConfig: {},
      disks: async () => [],
      rootDevice: async () => { throw new Error('the deployed disk comes from deployState'); },
      progress: () => undefined,
      signal: new AbortController().signal,
      options: {},
      deployState,
    } as unknown as StepContext;
    const added = (await addKernelParameters.run(ctx, { kernel_params: 'console=ttyS1,115200 nosmt' })) as Record<string, any>;
    expect(added.files).toEqual(['/etc/default/grub']);
    expect(added.warning).toMatch(/grub.cfg was not regenerated/);
    expect(deployState.kernelParams).toEqual(['console=ttyS1,115200', 'nosmt']);
    // The file on the disk changed (read back through debugfs at the partition's offset, no mount).
    const { stdout } = await execa('debugfs', ['-R', 'cat /etc/default/grub', `${disk.device}?offset=${1024 * 1024}`]);
    expect(stdout).toContain("GRUB_CMDLINE_LINUX_DEFAULT='quiet console=ttyS1,115200 nosmt'");

    const plan = (await kexecHandoff.run(ctx, { kernel_params: ['ipa-x=1'] })) as Record<string, any>;
    expect(plan.armed).toBe(true);
    expect(plan.cmdline).toBe(`${d.cmdline} console=ttyS1,115200 nosmt ipa-x=1`);
    expect(armedKexec(deployState)).toBeDefined();
    // run_image with kexec disabled still executes the armed handoff (a dry run here), once.
    let quiesced = false;
    const deps = { guard, deployState, rootDevice: async () => disk.device, enabled: false, quiesce: async () => { quiesced = true; } };
    const out = await runImageHandoff(deps);
    expect(out!.cmdline).toBe(plan.cmdline);
    expect(out!.dry_run).toBe(true);
    expect(quiesced).toBe(false);
    expect(await runImageHandoff(deps)).toBeNull();
  }, 120_000);

  // The real path, with kexec replaced by a recorder (prepareHandoff's `kexec` option is
  // the only way kexec is ever run): load with the staged files, quiesce, sync, execute.
  it('real mode (recorder in place of kexec): kexec -l with the staged files, then quiesce, then kexec -e', async () => {
    const d = await put({});
    const realGuard = new Guard({ inRamdisk: false, allowedDevices: [disk.device], allowPowerActions: true });
    const order: string[] = [];
    let stagedKernelSha = '';
    let executed!: () => void;
    const done = new Promise<void>((res) => (executed = res));
    const recorder = async (args: string[]) => {
      order.push(`kexec ${args[0]}`);
      if (args[0] === '-l') stagedKernelSha = await sha256File(args[1]!);
      if (args[0] === '-e') executed();
    };
    const prepared = await unchanged(() => prepareHandoff({ device: disk.device, guard: realGuard, kexec: recorder }));
    expect(prepared.real).toBe(true);
    expect(prepared.plan.dry_run).toBe(false);
    expect(prepared.plan.message).toMatch(/^loaded \/boot\/vmlinuz-/);
    expect(stagedKernelSha).toBe(await sha256File(d.kernel.path));
    expect(existsSync(prepared.plan.commands[0]![2]!)).toBe(false);
    const out = await executeHandoff(prepared, { quiesce: async () => { order.push('quiesce'); } });
    expect(out.message).toMatch(/^kexec -e in \d+ ms/);
    await done;
    expect(order).toEqual(['kexec -l', 'quiesce', 'kexec -e']);
  }, 120_000);

  it('real mode, kexec -l refused: KexecError, nothing executed, nothing quiesced, disk untouched', async () => {
    await put({});
    const realGuard = new Guard({ inRamdisk: false, allowedDevices: [disk.device], allowPowerActions: true });
    const calls: string[][] = [];
    const recorder = async (args: string[]) => {
      calls.push(args);
      throw new Error('kexec_load failed: Operation not permitted');
    };
    const err = await unchanged(() => prepareHandoff({ device: disk.device, guard: realGuard, kexec: recorder }).catch((e: unknown) => e));
    expect(err).toBeInstanceOf(KexecError);
    expect((err as Error).message).toMatch(/kexec could not load \/boot\/vmlinuz-.* Operation not permitted/);
    expect(calls.map((c) => c[0])).toEqual(['-l']);
  }, 120_000);

  it('leaves no staging directories behind', () => {
    const left = [tmpdir(), '/run/metal-agent'].filter(existsSync).flatMap((d) => readdirSync(d).filter((n) => n.startsWith('kexec-')));
    expect(left).toEqual([]);
  });
});
