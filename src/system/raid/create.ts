import { existsSync } from 'node:fs';
import { basename } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { SoftwareRaidFailure } from '../../base/errors.ts';
import { readTrimmed } from '../../hardware/sysfs.ts';
import type { BlockDevice } from '../../hardware/types.ts';
import { log } from '../../log.ts';
import { run } from '../exec.ts';
import { notifyKernel, partitionPath } from '../partitions/index.ts';
import type { Guard } from '../safety.ts';
import { mdadmLevel, parseSoftwareRaidConfig, wantsSoftwareRaid } from './config.ts';
import { createArray, hasSuperblock } from './mdadm.ts';
import { planSoftwareRaid, sfdiskScript, sgdiskArgs, type BootMode, type DiskPlan, type RaidPlan, type TableType } from './plan.ts';

// raid.create_configuration as IPA does it: validate, plan, refuse disks that
// are in use, then partition every member and build the arrays over the
// partitions. Everything that can be refused is refused before the first write.

export interface RaidDeps {
  guard: Guard;
  /** Disks the agent may consider (all in a ramdisk, --allowed-devices elsewhere). */
  disks(): Promise<BlockDevice[]>;
  progress(message: string): void;
}

export interface CreateOptions {
  nodeUuid: string;
  bootMode: BootMode;
  table: TableType;
}

/** What a disk already holds that creating would destroy: a partition table or an md superblock. */
async function inUse(device: string): Promise<string | null> {
  const r = await run('blkid', ['-p', '-o', 'value', '-s', 'PTTYPE', device], { okExitCodes: [2] });
  if (r.stdout.trim()) return `a ${r.stdout.trim()} partition table`;
  if (await hasSuperblock(device)) return 'an md superblock';
  return null;
}

/**
 * The kernel must have md (the ramdisk loads md_mod on demand) and each
 * member must take partitions (a loop device without partition scanning does
 * not): checked before the first write, so a host that cannot do it is left as it was.
 */
async function assertCanBuild(plan: RaidPlan): Promise<void> {
  if (!existsSync('/proc/mdstat')) {
    await run('modprobe', ['-a', 'md_mod', 'raid0', 'raid1', 'raid10', 'raid456'], { okExitCodes: [1] }).catch(() => undefined);
  }
  if (!existsSync('/proc/mdstat')) {
    throw new SoftwareRaidFailure('this kernel has no software RAID support (/proc/mdstat is missing and md_mod does not load)');
  }
  for (const d of plan.disks) {
    if (readTrimmed(`/sys/block/${basename(d.device)}/loop/partscan`) === '0') {
      throw new SoftwareRaidFailure(`${d.device} is a loop device without partition scanning: it cannot hold RAID member partitions`);
    }
  }
}

/** Validates the config against the disks and returns the plan; writes nothing. */
export async function planFromConfig(raidConfig: unknown, deps: RaidDeps, opts: CreateOptions): Promise<RaidPlan> {
  const logical = parseSoftwareRaidConfig(raidConfig, opts.nodeUuid);
  const plan = planSoftwareRaid(logical, await deps.disks(), { bootMode: opts.bootMode, table: opts.table });
  for (const d of plan.disks) deps.guard.assertWritable(d.device);
  const used: string[] = [];
  for (const d of plan.disks) {
    const what = await inUse(d.device);
    if (what) used.push(`${d.device} has ${what}`);
  }
  if (used.length) {
    throw new SoftwareRaidFailure(
      `Partitions detected on devices during RAID config: ${used.join('; ')}. Run raid.delete_configuration (or erase_devices_metadata) first`,
    );
  }
  await assertCanBuild(plan);
  return plan;
}

async function writeTable(disk: DiskPlan): Promise<void> {
  const sector = Number((await run('blockdev', ['--getss', disk.device])).stdout.trim()) || 512;
  if (disk.table === 'gpt') await run('sgdisk', [...sgdiskArgs(disk, sector), disk.device]);
  else await run('sfdisk', ['--wipe', 'always', disk.device], { input: sfdiskScript(disk, sector) });
  await notifyKernel(disk.device);
}

async function waitForNode(path: string): Promise<void> {
  for (let i = 0; i < 50 && !existsSync(path); i++) await sleep(200);
  if (!existsSync(path)) {
    throw new SoftwareRaidFailure(`partition ${path} did not appear after partitioning (a device without partition support cannot hold RAID members)`);
  }
}

/** Partitions the members and builds the arrays of a validated plan. */
export async function executePlan(plan: RaidPlan, deps: RaidDeps): Promise<void> {
  for (const disk of plan.disks) {
    deps.progress(`partitioning ${disk.device} for software RAID`);
    await writeTable(disk);
    for (const p of disk.partitions) await waitForNode(partitionPath(disk.device, p.number));
  }
  for (const array of plan.arrays) {
    const members = array.members.map((m) => partitionPath(m.disk, m.partition));
    deps.progress(`creating ${array.device} (RAID-${array.level}) on ${members.join(', ')}`);
    log.info({ array: array.device, level: array.level, members, name: array.volumeName }, 'creating software RAID array');
    await createArray({ device: array.device, level: mdadmLevel(array.level), members, name: array.volumeName });
  }
}

/**
 * The step's work: {} when the config asks for no software RAID (as IPA),
 * else the config applied. Throws SoftwareRaidFailure, before any write, for
 * a config that does not fit the disks.
 */
export async function createSoftwareRaid(raidConfig: unknown, deps: RaidDeps, opts: CreateOptions): Promise<Record<string, unknown>> {
  if (!raidConfig || (typeof raidConfig === 'object' && Object.keys(raidConfig).length === 0)) return {};
  if (!wantsSoftwareRaid(raidConfig)) return {};
  const plan = await planFromConfig(raidConfig, deps, opts);
  await executePlan(plan, deps);
  deps.progress(`created ${plan.arrays.length} software RAID array(s)`);
  return raidConfig as Record<string, unknown>;
}
