import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startAgent, type AgentProcess } from '../helpers/agent-process.ts';
import { pemBody, servedCertificate } from '../helpers/deployed-disk.ts';
import { startIronic, type Ironic } from '../helpers/ironic.ts';
import { createLoopDisk, giveDiskAPartition, metadataLeft, type LoopDisk } from '../helpers/loop-disk.ts';

// Issue 2, shown end to end: a real Ironic 21.4 cleans a node whose agent is
// ours, over HTTPS with the certificate the agent sent, and the two loop
// disks, full of random data before, come out as zeroes with no partition
// table or signature left (erase_devices_metadata, then erase_devices).

const MAC = '52:54:00:a0:00:01';

describe('automated cleaning through a real Ironic', () => {
  let ironic: Ironic;
  let agent: AgentProcess;
  let disks: LoopDisk[] = [];
  let uuid: string;
  const seen: { agentUrl?: string; verifyCa?: string; version?: string } = {};

  beforeAll(async () => {
    disks = [await createLoopDisk(64, 'clean-a'), await createLoopDisk(64, 'clean-b')];
    // Random data everywhere, then a partition table and a filesystem on top.
    for (const d of disks) writeFileSync(d.device, randomBytes(64 * 1024 * 1024));
    for (const d of disks) await giveDiskAPartition(d.device);
    for (const d of disks) expect(await metadataLeft(d.device)).not.toEqual([]);
    ironic = await startIronic({ extraConf: '[deploy]\ndisk_erasure_concurrency = 1\n' });
    uuid = await ironic.enroll(MAC);
    agent = await startAgent({ apiUrl: ironic.url, mac: MAC, allowedDevices: disks.map((d) => d.device) });
  }, 180_000);

  afterAll(async () => {
    await agent?.stop();
    await ironic?.stop();
    for (const d of disks) await d.destroy();
  });

  it('goes clean wait -> available; both disks lose their metadata and read back as zeroes', async () => {
    // Watch the node while it cleans: Ironic forgets agent_url and the
    // certificate when cleaning ends (no fast track).
    const node = await ironic.waitForState(uuid, ['available', 'clean failed'], 300, {
      everyMs: 100,
      onNode: (n) => {
        const dii = n.driver_internal_info ?? {};
        if (dii.agent_url && !seen.agentUrl) {
          seen.agentUrl = dii.agent_url;
          seen.version = dii.agent_version;
          seen.verifyCa = readFileSync(dii.agent_verify_ca, 'utf8');
        }
      },
    });
    expect(node.last_error ?? null, agent.output().slice(-2000)).toBeNull();
    expect(node.provision_state).toBe('available');
    for (const d of disks) expect(await metadataLeft(d.device)).toEqual([]);
    // erase_devices (priority 10) with Ironic's defaults (1 random pass, zeroize): every byte is zero.
    for (const d of disks) expect(readFileSync(d.device).every((b) => b === 0), d.device).toBe(true);
    expect(agent.output()).toMatch(/"command":"clean.execute_clean_step".*"status":"SUCCEEDED"/);
    // Ironic passes [deploy]disk_erasure_concurrency (set to 1 here): never more disks at once.
    let running = 0;
    let most = 0;
    for (const line of agent.output().split('\n')) {
      if (line.includes('"msg":"disk erase started"')) most = Math.max(most, ++running);
      if (line.includes('"msg":"disk erase finished"')) running--;
    }
    expect(most).toBe(1);
  }, 320_000);

  it('Ironic recorded our version and an https callback, and verified us with the certificate we sent', async () => {
    expect(seen.version).toMatch(/^10\.2\.0\+metal\./);
    expect(seen.agentUrl).toBe(`https://127.0.0.1:${agent.port}`);
    expect(pemBody(seen.verifyCa!)).toBe(await servedCertificate(agent.port));
  });
});
