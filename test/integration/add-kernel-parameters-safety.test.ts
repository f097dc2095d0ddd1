import { createHash } from 'node:crypto';
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { InvalidArgumentsError } from '../../src/base/errors.ts';
import { DeploymentError, toWireError } from '../../src/commands/wire-errors.ts';
import { log } from '../../src/log.ts';
import { withMount } from '../../src/system/mounts.ts';
import { Guard } from '../../src/system/safety.ts';
import { step as addKernelParameters } from '../../steps/add-kernel-parameters.ts';
import type { DeployState, StepContext } from '../../steps/types.ts';
import { sha256File } from '../helpers/images.ts';
import { loopDiskPool, withRange, type LoopDisk } from '../helpers/loop-disk.ts';

// Issue 21, finding 3, through the add_kernel_parameters step on a loop disk
// holding a tiny deployed OS (static busybox, a fake grub-mkconfig that
// sources /etc/default/grub as the real one does and records that it ran):
// a parameter that would run a command is refused or neutralised, nothing is
// created, the step never writes outside the image through the image's
// symlinks, and with enable_bios_bootloader_install=false the image's
// grub-mkconfig is not run.
//
// The symlink case points /etc/default/grub at a sentinel file in a temp dir
// (an absolute path that exists on the host and, with other content, in the
// image), not at /etc/passwd: a broken agent would then damage only the
// sentinel. The host's /etc/passwd is checked too, read-only.

const MiB = 1024 * 1024;
const PART_OFFSET = MiB;
const PART_SIZE = 63 * MiB;
const pool = loopDiskPool();
const scratch = mkdtempSync(join(tmpdir(), 'metal-agent-akp-'));
afterEach(async () => {
  await pool.cleanup();
});
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

const sha = (p: string) => createHash('sha256').update(readFileSync(p)).digest('hex');

const GRUB_MKCONFIG = [
  '#!/bin/sh',
  'echo ran >> /var/log/mkconfig.ran',
  '. /etc/default/grub',
  'mkdir -p /boot/grub',
  'echo "linux /vmlinuz root=UUID=x $GRUB_CMDLINE_LINUX_DEFAULT" > "$2"',
].join('\n');

/**
 * A one-partition MBR disk whose ext4 holds the fake OS, built from a tree
 * (mkfs.ext4 -d) at the partition's offset. `extra` adds files and links.
 */
async function deployedDisk(extra: (tree: string) => void = () => undefined): Promise<LoopDisk> {
  const d = await pool.disk(PART_OFFSET + PART_SIZE + MiB);
  await execa('sfdisk', ['--quiet', d.device], { input: `label: dos\nstart=2048, size=${PART_SIZE / 512}, type=83\n` });
  const tree = mkdtempSync(join(scratch, 'tree-'));
  for (const sub of ['bin', 'usr/sbin', 'etc/default', 'dev', 'proc', 'sys', 'run', 'var/log', 'boot', 'tmp']) mkdirSync(join(tree, sub), { recursive: true });
  copyFileSync('/usr/bin/busybox', join(tree, 'bin/busybox'));
  chmodSync(join(tree, 'bin/busybox'), 0o755);
  for (const applet of ['sh', 'mkdir', 'touch', 'cat']) symlinkSync('busybox', join(tree, 'bin', applet));
  writeFileSync(join(tree, 'etc/os-release'), 'NAME="Fake"\nID=fakeos\n');
  writeFileSync(join(tree, 'etc/default/grub'), 'GRUB_DEFAULT=0\nGRUB_CMDLINE_LINUX_DEFAULT="quiet"\n');
  writeFileSync(join(tree, 'usr/sbin/grub-install'), '#!/bin/sh\nexit 0\n', { mode: 0o755 });
  writeFileSync(join(tree, 'usr/sbin/grub-mkconfig'), GRUB_MKCONFIG + '\n', { mode: 0o755 });
  extra(tree);
  await withRange(d.device, PART_OFFSET, PART_SIZE, (part) => execa('mkfs.ext4', ['-q', '-F', '-d', tree, part]));
  rmSync(tree, { recursive: true, force: true });
  return d;
}

/** A file of the deployed root, read through a read-only mount (null when absent). */
async function readDeployed(d: LoopDisk, path: string): Promise<string | null> {
  return withRange(d.device, PART_OFFSET, PART_SIZE, (part) =>
    withMount(part, { readOnly: true }, (dir) => readFile(join(dir, path), 'utf8').catch(() => null)),
  );
}

function context(d: LoopDisk, lookupConfig: Record<string, unknown> = {}) {
  const deployState: DeployState = { partitionUuids: {}, kernelParams: [], rootDevice: d.device, isWholeDisk: true };
  const ctx = {
    log,
    guard: new Guard({ inRamdisk: false, allowedDevices: [d.device], allowPowerActions: false }),
    node: {},
    ports: [],
    lookupConfig,
    disks: async () => [],
    rootDevice: async () => {
      throw new Error('the deployed disk comes from deployState');
    },
    progress: () => undefined,
    signal: new AbortController().signal,
    options: {},
    deployState,
  } as unknown as StepContext;
  return { ctx, deployState };
}

/** A directory that exists on the host and, under the same absolute path, in the image. */
function sharedDir(): string {
  return mkdtempSync(join(scratch, 'shared-'));
}

describe('add_kernel_parameters on a deployed disk: no parameter runs, nothing written outside the image', () => {
  it('refuses $(...) and a quoted newline before touching the disk; no file is created', async () => {
    const shared = sharedDir();
    const d = await deployedDisk((tree) => mkdirSync(join(tree, shared), { recursive: true }));
    const { ctx, deployState } = context(d);
    const before = await sha256File(d.device);
    const attempts = [
      `x=$(touch ${shared}/p1)`,
      `x=$(touch\${IFS}${shared}/p2)`,
      `quiet x="a\ntouch ${shared}/p3"`,
      ['nosmt', `x=\`touch ${shared}/p4\``],
    ];
    for (const kernel_params of attempts) {
      const err = await addKernelParameters.run(ctx, { kernel_params }).catch((e: unknown) => e);
      expect(err, JSON.stringify(kernel_params)).toBeInstanceOf(InvalidArgumentsError);
      // What Ironic sees, through the one table at the commands boundary.
      const wire = toWireError(err, DeploymentError);
      expect(wire.type).toBe('InvalidCommandParamsError');
      expect(wire.code).toBe(400);
      expect(wire.details).toMatch(/^kernel parameter(s)? .*refused/);
    }
    expect(await sha256File(d.device)).toBe(before);
    expect(deployState.kernelParams).toEqual([]);
    for (const n of ['p1', 'p2', 'p3', 'p4']) {
      expect(existsSync(join(shared, n))).toBe(false);
      expect(await readDeployed(d, join(shared, n))).toBeNull();
    }
    expect(await readDeployed(d, 'var/log/mkconfig.ran')).toBeNull();
  }, 120_000);

  it('a parameter that fits the grammar but closes a double quote is written single-quoted: grub-mkconfig runs, the command does not', async () => {
    const shared = sharedDir();
    const d = await deployedDisk((tree) => mkdirSync(join(tree, shared), { recursive: true }));
    const { ctx, deployState } = context(d);
    const param = `x=" touch ${shared}/p5"`;
    const res = (await addKernelParameters.run(ctx, { kernel_params: ['console=ttyS0,115200', param] })) as Record<string, any>;
    expect(res.files).toEqual(['/etc/default/grub']);
    expect(res.grub_mkconfig).toEqual(['/usr/sbin/grub-mkconfig', '-o', '/boot/grub/grub.cfg']);
    expect(res.warning).toBeUndefined();
    expect(deployState.kernelParams).toEqual(['console=ttyS0,115200', param]);
    expect(await readDeployed(d, 'etc/default/grub')).toBe(`GRUB_DEFAULT=0\nGRUB_CMDLINE_LINUX_DEFAULT='quiet console=ttyS0,115200 ${param}'\n`);
    expect(await readDeployed(d, 'var/log/mkconfig.ran')).toBe('ran\n');
    expect(await readDeployed(d, 'boot/grub/grub.cfg')).toBe(`linux /vmlinuz root=UUID=x quiet console=ttyS0,115200 ${param}\n`);
    expect(existsSync(join(shared, 'p5'))).toBe(false);
    expect(await readDeployed(d, join(shared, 'p5'))).toBeNull();
  }, 120_000);

  it("/etc/default/grub -> an absolute path: the image's file there is changed, the host's file at that path is byte-identical", async () => {
    const shared = sharedDir();
    const sentinel = join(shared, 'passwd');
    writeFileSync(sentinel, 'root:x:0:0:HOST SENTINEL, must not change:/root:/bin/sh\n');
    const d = await deployedDisk((tree) => {
      mkdirSync(join(tree, shared), { recursive: true });
      writeFileSync(join(tree, sentinel), 'GRUB_CMDLINE_LINUX_DEFAULT="quiet"\n');
      rmSync(join(tree, 'etc/default/grub'));
      symlinkSync(sentinel, join(tree, 'etc/default/grub'));
      writeFileSync(join(tree, 'etc/passwd'), 'root:x:0:0:image:/root:/bin/sh\n');
    });
    const hostSentinel = sha(sentinel);
    const hostPasswd = sha('/etc/passwd');
    const { ctx } = context(d);
    const res = (await addKernelParameters.run(ctx, { kernel_params: 'nosmt' })) as Record<string, any>;
    expect(res.files).toEqual(['/etc/default/grub']);
    expect(sha(sentinel)).toBe(hostSentinel);
    expect(sha('/etc/passwd')).toBe(hostPasswd);
    expect(await readDeployed(d, sentinel)).toBe("GRUB_CMDLINE_LINUX_DEFAULT='quiet nosmt'\n");
    expect(await readDeployed(d, 'etc/passwd')).toBe('root:x:0:0:image:/root:/bin/sh\n');
    // The image's grub-mkconfig, in its chroot, read the same file the agent wrote.
    expect(await readDeployed(d, 'boot/grub/grub.cfg')).toBe('linux /vmlinuz root=UUID=x quiet nosmt\n');
  }, 120_000);

  it("enable_bios_bootloader_install=false (BIOS/MBR disk): the image's grub-mkconfig is not run; the params are written and kept for kexec", async () => {
    const d = await deployedDisk();
    const { ctx, deployState } = context(d, { enable_bios_bootloader_install: false });
    const res = (await addKernelParameters.run(ctx, { kernel_params: 'console=ttyS1,115200 nosmt' })) as Record<string, any>;
    expect(res.grub_mkconfig).toBeNull();
    expect(res.files).toEqual(['/etc/default/grub']);
    expect(res.warning).toMatch(/grub.cfg was not regenerated: .*enable_bios_bootloader_install is false/);
    expect(deployState.kernelParams).toEqual(['console=ttyS1,115200', 'nosmt']);
    expect(await readDeployed(d, 'var/log/mkconfig.ran')).toBeNull();
    expect(await readDeployed(d, 'boot/grub/grub.cfg')).toBeNull();
    expect(await readDeployed(d, 'etc/default/grub')).toBe("GRUB_DEFAULT=0\nGRUB_CMDLINE_LINUX_DEFAULT='quiet console=ttyS1,115200 nosmt'\n");
  }, 120_000);
});
