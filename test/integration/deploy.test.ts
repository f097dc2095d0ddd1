import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startAgent, type AgentProcess } from '../helpers/agent-process.ts';
import { configDriveHostname, expectDiskHoldsImage } from '../helpers/deployed-disk.ts';
import { startImageServer, type ImageServer } from '../helpers/http-image-server.ts';
import { compress, makeRawImage, sha256File, toQcow2 } from '../helpers/images.ts';
import { startIronic, type Ironic } from '../helpers/ironic.ts';
import { createLoopDisk, type LoopDisk } from '../helpers/loop-disk.ts';

// Issue 4, shown through a real Ironic 21.4 `direct` deploy: raw + config
// drive, then rebuilds from qcow2 and zstd/gzip images; a wrong checksum
// fails the deploy and is never reported as success.

const MAC = '52:54:00:a0:00:02';
const IMAGE_MIB = 24;

describe('direct deploy through a real Ironic', () => {
  let ironic: Ironic;
  let agent: AgentProcess;
  let disk: LoopDisk;
  let server: ImageServer;
  let uuid: string;
  const dir = mkdtempSync(join(tmpdir(), 'metal-agent-deploy-'));
  const raw = join(dir, 'disk.raw');

  async function deploy(path: string, opts: { format: string; hash?: string; hostname: string; rebuild?: boolean }) {
    const url = server.serve(`/${path.split('/').pop()}`, { path });
    await ironic.baremetal([
      'node', 'set', uuid,
      '--instance-info', `image_source=${url}`,
      '--instance-info', 'image_os_hash_algo=sha256',
      '--instance-info', `image_os_hash_value=${opts.hash ?? (await sha256File(path))}`,
      '--instance-info', `image_disk_format=${opts.format}`,
    ]);
    const cd = JSON.stringify({ meta_data: { hostname: opts.hostname } });
    await ironic.baremetal(['node', opts.rebuild ? 'rebuild' : 'deploy', uuid, '--config-drive', cd]);
    return ironic.waitForState(uuid, ['active', 'deploy failed'], 300);
  }

  beforeAll(async () => {
    await makeRawImage(raw, IMAGE_MIB);
    disk = await createLoopDisk(96, 'deploy');
    server = await startImageServer();
    ironic = await startIronic();
    uuid = await ironic.enroll(MAC, { rootDevice: { name: disk.device }, driverInfo: { deploy_forces_oob_reboot: 'true' } });
    agent = await startAgent({ apiUrl: ironic.url, mac: MAC, allowedDevices: [disk.device] });
    await ironic.waitForState(uuid, ['available'], 300);
  }, 400_000);

  afterAll(async () => {
    await agent?.stop();
    await ironic?.stop();
    await server?.stop();
    await disk?.destroy();
    rmSync(dir, { recursive: true, force: true });
  });

  it('raw image + config drive: deploying -> active, disk holds the image, config-2 holds the meta_data', async () => {
    const node = await deploy(raw, { format: 'raw', hostname: 'raw-node' });
    expect(node.last_error ?? null, agent.output().slice(-3000)).toBeNull();
    expect(node.provision_state).toBe('active');
    expectDiskHoldsImage(disk.device, raw);
    expect(await configDriveHostname(disk.device)).toBe('raw-node');
  }, 400_000);

  it('rebuild from a qcow2 image', async () => {
    const qcow = join(dir, 'disk.qcow2');
    await toQcow2(raw, qcow);
    await execa('wipefs', ['-a', disk.device]);
    const node = await deploy(qcow, { format: 'qcow2', hostname: 'qcow-node', rebuild: true });
    expect(node.last_error ?? null, agent.output().slice(-3000)).toBeNull();
    expect(node.provision_state).toBe('active');
    expectDiskHoldsImage(disk.device, raw);
    expect(await configDriveHostname(disk.device)).toBe('qcow-node');
  }, 400_000);

  for (const kind of ['zstd', 'gzip'] as const) {
    it(`rebuild from a ${kind}-compressed raw image`, async () => {
      const packed = await compress(raw, kind);
      const node = await deploy(packed, { format: 'raw', hostname: `${kind}-node`, rebuild: true });
      expect(node.last_error ?? null, agent.output().slice(-3000)).toBeNull();
      expect(node.provision_state).toBe('active');
      expectDiskHoldsImage(disk.device, raw);
      expect(await configDriveHostname(disk.device)).toBe(`${kind}-node`);
    }, 400_000);
  }

  it('a wrong checksum fails the deploy with a clear error', async () => {
    const node = await deploy(raw, { format: 'raw', hostname: 'bad', hash: 'a'.repeat(64), rebuild: true });
    expect(node.provision_state).toBe('deploy failed');
    expect(node.last_error).toMatch(/checksum/i);
  }, 400_000);
});
