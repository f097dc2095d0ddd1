import { createHash, randomBytes } from 'node:crypto';
import { closeSync, openSync, readFileSync, writeSync } from 'node:fs';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startAgent, type AgentProcess } from '../helpers/agent-process.ts';
import { giveDiskAPartition, loopDiskPool, type LoopDisk } from '../helpers/loop-disk.ts';

// Software RAID steps (issue 18) through the agent's API on loop disks of this
// host: every config the agent must refuse fails raid.create_configuration
// with a message naming the problem, and the disks stay byte-identical.
// The arrays themselves are built inside the ramdisk VM (test/e2e/vm-raid.test.ts):
// loop devices here take no partitions and this host's kernel may lack md.

const MiB = 1024 * 1024;
const SIZE = 64 * MiB;

const sha = (file: string) => createHash('sha256').update(readFileSync(file)).digest('hex');

describe('software RAID steps on loop disks: bad input fails the step and leaves the disks as they were', () => {
  const pool = loopDiskPool();
  let disks: LoopDisk[];
  let agent: AgentProcess;
  let before: string[];

  async function cleanStep(step: string, node: Record<string, unknown>): Promise<any> {
    const body = JSON.stringify({ name: 'clean.execute_clean_step', params: { step: { step, interface: 'raid', args: {} }, node: { uuid: 'raid-loop', ...node }, ports: [] } });
    const r = await fetch(`${agent.url}/v1/commands/?wait=true`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
    return r.json();
  }

  beforeAll(async () => {
    disks = [await pool.disk(SIZE), await pool.disk(SIZE), await pool.disk(SIZE)];
    for (const d of disks) {
      const fd = openSync(d.device, 'r+');
      writeSync(fd, randomBytes(SIZE));
      closeSync(fd);
      await execa('blockdev', ['--flushbufs', d.device]);
    }
    before = disks.map((d) => sha(d.file));
    agent = await startAgent({ allowedDevices: disks.map((d) => d.device), tls: false });
  }, 120_000);

  afterAll(async () => {
    await agent?.stop();
    await pool.cleanup();
  }, 60_000);

  const cases: Array<[string, () => Promise<object>, RegExp]> = [
    ['more disks than exist (RAID-6 on 3 disks)', async () => ({ logical_disks: [{ controller: 'software', raid_level: '6', size_gb: 'MAX' }] }), /RAID level 6 needs at least 4 disks, 3 found/],
    ['more space than exists (10 GiB on 64 MiB disks)', async () => ({ logical_disks: [{ controller: 'software', raid_level: '1', size_gb: 10 }] }), /needs 10240 MiB on each member; \/dev\/loop\d+ has \d+ MiB left/],
    ['an unknown level', async () => ({ logical_disks: [{ controller: 'software', raid_level: '7', size_gb: 'MAX' }] }), /does not support RAID level "7"/],
    ['a physical_disks hint that matches nothing', async () => ({ logical_disks: [{ controller: 'software', raid_level: '1', size_gb: 'MAX', physical_disks: [{ name: disks[0]!.device }, { size: '>= 500' }] }] }), /no disk matches physical_disks hint \{"size":">= 500"\}/],
  ];

  for (const [what, config, message] of cases) {
    it(`refuses ${what}`, async () => {
      const r = await cleanStep('create_configuration', { target_raid_config: await config() });
      expect(r.command_status, JSON.stringify(r)).toBe('FAILED');
      expect(r.command_error.type).toBe('SoftwareRAIDError');
      expect(r.command_error.details).toMatch(message);
      expect(disks.map((d) => sha(d.file))).toEqual(before);
    });
  }

  it('refuses disks that already hold partitions, and (on this host) loop disks that cannot take any', async () => {
    const r = await cleanStep('create_configuration', { target_raid_config: { logical_disks: [{ controller: 'software', raid_level: '1', size_gb: 'MAX', volume_name: 'root' }] } });
    expect(r.command_status, JSON.stringify(r)).toBe('FAILED');
    // No partition scanning on these loop devices (and maybe no md in this kernel): named, and nothing written.
    expect(r.command_error.details).toMatch(/cannot hold RAID member partitions|no software RAID support/);
    expect(disks.map((d) => sha(d.file))).toEqual(before);

    const extra = await pool.disk(SIZE);
    await giveDiskAPartition(extra.device);
    const withTable = sha(extra.file);
    await agent.stop();
    agent = await startAgent({ allowedDevices: [...disks, extra].map((d) => d.device), tls: false });
    const r2 = await cleanStep('create_configuration', { target_raid_config: { logical_disks: [{ controller: 'software', raid_level: '5', size_gb: 'MAX' }] } });
    expect(r2.command_status, JSON.stringify(r2)).toBe('FAILED');
    expect(r2.command_error.details).toMatch(new RegExp(`Partitions detected on devices during RAID config: ${extra.device} has a gpt partition table`));
    expect(sha(extra.file)).toBe(withTable);
    expect(disks.map((d) => sha(d.file))).toEqual(before);
    await agent.stop();
    agent = await startAgent({ allowedDevices: disks.map((d) => d.device), tls: false });
  }, 120_000);

  it('does nothing without a software RAID config, as IPA', async () => {
    const r = await cleanStep('create_configuration', { target_raid_config: { logical_disks: [{ raid_level: '1', size_gb: 10 }] } });
    expect(r.command_status, JSON.stringify(r)).toBe('SUCCEEDED');
    expect(r.command_result.clean_result).toEqual({});
    expect(disks.map((d) => sha(d.file))).toEqual(before);
  });

  it('delete_configuration with no arrays leaves the disks as they were', async () => {
    const r = await cleanStep('delete_configuration', {});
    expect(r.command_status, JSON.stringify(r)).toBe('SUCCEEDED');
    expect(disks.map((d) => sha(d.file))).toEqual(before);
  });
});
