import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { agentCommand, serialShell, startVm, type Vm } from './qemu.ts';

// Issue 3 inside a VM: the inventory agrees with what the guest's own lsblk
// and /proc say about virtio, NVMe and SATA disks, and the NVMe disk is
// erased by a real `nvme format` against qemu's emulated controller.

const LIMIT_MS = 600_000;
const MiB = 1024 * 1024;

describe('hardware inside a VM booted from the ramdisk', () => {
  let vm: Vm;
  const dir = mkdtempSync(join(tmpdir(), 'metal-agent-e2e-hw-'));
  const files = { virtio: join(dir, 'virtio.raw'), nvme: join(dir, 'nvme.raw'), sata: join(dir, 'sata.raw') };

  const shell = (cmd: string) => serialShell(vm, cmd);
  const command = (name: string, params: unknown) => agentCommand(vm, name, params);

  beforeAll(async () => {
    for (const f of Object.values(files)) writeFileSync(f, randomBytes(64 * MiB));
    vm = await startVm({
      memoryMiB: 512,
      disks: [
        { file: files.virtio, bus: 'virtio', serial: 'HW-VIRTIO' },
        { file: files.nvme, bus: 'nvme', serial: 'HW-NVME' },
        { file: files.sata, bus: 'sata', serial: 'HW-SATA' },
      ],
      kernelArgs: ['ipa-standalone=1', 'ipa-enable-auto-tls=0', 'metal.shell'],
    });
    await vm.waitForSerial(/"msg":"API listening"/, LIMIT_MS);
  }, LIMIT_MS);

  afterAll(async () => {
    await vm?.stop();
    rmSync(dir, { recursive: true, force: true });
  }, 120_000);

  it('reports every disk as the guest\'s lsblk sees it', async () => {
    const res = await vm.httpGet('/v1/inventory', { timeoutSec: 120 });
    expect(res.status, res.body).toBe(200);
    const inv = JSON.parse(res.body);
    const lsblk = (await shell('lsblk -d -b -n -o NAME,SIZE,SERIAL,ROTA,TYPE'))
      .trim()
      .split('\n')
      .map((l) => l.trim().split(/\s+/))
      .filter((f) => f[4] === 'disk');
    expect(lsblk.length).toBe(3);
    for (const [name, size, serial, rota] of lsblk) {
      const d = inv.disks.find((x: { name: string }) => x.name === `/dev/${name}`);
      expect(d, `inventory lacks /dev/${name}`).toBeDefined();
      expect(d.size).toBe(Number(size));
      expect(d.serial).toBe(serial);
      expect(d.rotational).toBe(rota === '1');
    }
    expect(inv.disks.map((d: { tran?: string }) => d.tran).sort()).toEqual(expect.arrayContaining(['nvme', 'sata']));
    const memKb = Number(/MemTotal:\s+(\d+)/.exec(await shell('cat /proc/meminfo'))![1]);
    expect(inv.memory.total).toBe(memKb * 1024);
    expect(inv.interfaces.map((i: { mac_address: string }) => i.mac_address)).toContain(vm.mac);
  }, LIMIT_MS);

  it('erases the NVMe disk with nvme format (express erase), leaving zeroes', async () => {
    const r = await command('clean.execute_clean_step', {
      step: { step: 'erase_devices_express', interface: 'deploy', args: {} },
      node: { uuid: 'e2e', driver_internal_info: { agent_enable_nvme_secure_erase: true } },
      ports: [],
    });
    expect(r.command_status, JSON.stringify(r.command_error)).toBe('SUCCEEDED');
    const methods = r.command_result.clean_result;
    expect(methods['/dev/nvme0n1']).toBe('nvme-secure-erase');
    await shell('sync');
    const nvme = readFileSync(files.nvme);
    expect(nvme.every((b) => b === 0)).toBe(true);
    // The other disks only lost their metadata: their data area is untouched.
    expect(readFileSync(files.virtio).subarray(8 * MiB, 9 * MiB).some((b) => b !== 0)).toBe(true);
  }, LIMIT_MS);
});
