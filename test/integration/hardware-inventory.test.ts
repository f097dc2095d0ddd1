import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { listBlockDevices, waitForDisks } from '../../src/hardware/block-devices.ts';
import { collectInventory, inspectionPayload, type Inventory } from '../../src/hardware/inventory.ts';

// The inventory of this machine against facts gathered here independently
// (lsblk columns read one by one, /proc, /sys, ip, uname, hostname,
// dmidecode), plus a loop disk created for the test that must show up with
// its exact size.

const sh = (cmd: string, args: string[]): string =>
  execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
const shOrEmpty = (cmd: string, args: string[]): string => {
  try {
    return sh(cmd, args).trim();
  } catch {
    return '';
  }
};

let dir: string;
let loop: string;
let inv: Inventory;
const LOOP_SIZE = 96 * 1024 * 1024;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'inventory-test-'));
  const file = join(dir, 'disk.img');
  sh('truncate', ['-s', String(LOOP_SIZE), file]);
  loop = sh('losetup', ['-f', '--show', file]).trim();
  inv = await collectInventory({});
});

afterAll(() => {
  if (loop) shOrEmpty('losetup', ['-d', loop]);
  rmSync(dir, { recursive: true, force: true });
});

describe('disks', () => {
  it('are exactly the non-empty whole disks lsblk reports, with their sizes; backed loops included', () => {
    // NAME SIZE TYPE per line, no tree, raw: an independent reading. Other
    // loop devices may come and go while this runs (other tests), so loops
    // are checked one by one rather than as a set.
    const expected = new Map<string, number>();
    for (const line of sh('lsblk', ['-d', '-n', '-b', '-r', '-o', 'NAME,SIZE,TYPE']).trim().split('\n')) {
      const [name, size, type] = line.split(' ');
      if (!name || Number(size) === 0 || /^(ram|zram|fd)/.test(name)) continue;
      if (type === 'disk') expected.set(`/dev/${name}`, Number(size));
    }
    const got = new Map(inv.disks.filter((d) => !d.name.startsWith('/dev/loop')).map((d) => [d.name, d.size]));
    expect(got).toEqual(expected);
    expect(inv.disks.find((d) => d.name === loop)?.size).toBe(LOOP_SIZE);
    for (const d of inv.disks.filter((x) => x.name.startsWith('/dev/loop'))) {
      expect(d.size).toBeGreaterThan(0);
    }
  });

  it('carry rotational and vendor as /sys says', () => {
    for (const d of inv.disks) {
      const k = d.name.slice(5);
      expect(d.rotational).toBe(readFileSync(`/sys/block/${k}/queue/rotational`, 'utf8').trim() === '1');
      const vendorFile = `/sys/class/block/${k}/device/vendor`;
      expect(d.vendor).toBe(existsSync(vendorFile) ? readFileSync(vendorFile, 'utf8').trim() : null);
      expect(d.logical_sectors).toBe(Number(readFileSync(`/sys/block/${k}/queue/logical_block_size`, 'utf8')));
    }
  });

  it('leave out loops when told to (as IPA does in a ramdisk)', async () => {
    const without = await listBlockDevices({ includeLoop: false, skipSettle: true });
    expect(without.some((d) => d.name.startsWith('/dev/loop'))).toBe(false);
  });

  it('waitForDisks finds a hinted disk and gives up on a missing one', async () => {
    expect((await waitForDisks({ attempts: 2, delaySec: 0, hints: { name: loop } }))?.name).toBe(loop);
    expect(await waitForDisks({ attempts: 2, delaySec: 0, hints: { serial: 'no-such-serial-xyz' } })).toBeNull();
  });
});

describe('cpu, memory, host', () => {
  it('cpu agrees with /proc/cpuinfo, os.cpus() and uname', () => {
    const cpuinfo = readFileSync('/proc/cpuinfo', 'utf8');
    expect(inv.cpu.count).toBe(cpus().length);
    expect(inv.cpu.architecture).toBe(sh('uname', ['-m']).trim());
    const model = /^model name\s*:\s*(.*)$/m.exec(cpuinfo)?.[1]?.trim();
    if (model) expect(inv.cpu.model_name).toBe(model);
    const flags = /^flags\s*:\s*(.*)$/m.exec(cpuinfo)?.[1]?.trim().split(/\s+/) ?? [];
    expect(inv.cpu.flags).toEqual(flags);
  });

  it('memory total is MemTotal', () => {
    const kb = Number(/^MemTotal:\s+(\d+)/m.exec(readFileSync('/proc/meminfo', 'utf8'))![1]);
    expect(inv.memory.total).toBe(kb * 1024);
  });

  it('hostname, boot mode, BMC', () => {
    expect(inv.hostname).toBe(sh('hostname', []).trim());
    expect(inv.boot.current_boot_mode).toBe(existsSync('/sys/firmware/efi') ? 'uefi' : 'bios');
    const bootif = /(?:^|\s)BOOTIF=(\S+)/.exec(readFileSync('/proc/cmdline', 'utf8'))?.[1] ?? null;
    expect(inv.boot.pxe_interface).toBe(bootif);
    if (!['/dev/ipmi0', '/dev/ipmi/0', '/dev/ipmidev/0'].some(existsSync)) {
      expect(inv.bmc_address).toBe('0.0.0.0');
      expect(inv.bmc_v6address).toBe('::/0');
    }
  });

  it('system vendor matches dmidecode (empty strings when SMBIOS is unreadable)', () => {
    expect(inv.system_vendor.manufacturer).toBe(shOrEmpty('dmidecode', ['-s', 'system-manufacturer']));
    expect(inv.system_vendor.product_name).toBe(shOrEmpty('dmidecode', ['-s', 'system-product-name']));
    expect(inv.system_vendor.serial_number).toBe(shOrEmpty('dmidecode', ['-s', 'system-serial-number']));
    expect(inv.system_vendor.firmware.version).toBe(shOrEmpty('dmidecode', ['-s', 'bios-version']));
  });
});

describe('interfaces', () => {
  it('are the device-backed links ip knows, with their MAC and first addresses', () => {
    const links = JSON.parse(sh('ip', ['-j', 'link', 'show'])) as Array<{ ifname: string; address?: string }>;
    const withDevice = links.filter((l) => existsSync(`/sys/class/net/${l.ifname}/device`) || /\.\d+$/.test(l.ifname));
    expect(inv.interfaces.map((i) => i.name).sort()).toEqual(withDevice.map((l) => l.ifname).sort());
    for (const iface of inv.interfaces) {
      const link = links.find((l) => l.ifname === iface.name)!;
      expect(iface.mac_address).toBe(link.address);
      const v4 = JSON.parse(sh('ip', ['-j', '-4', 'addr', 'show', 'dev', iface.name]))[0]?.addr_info?.[0]?.local ?? null;
      expect(iface.ipv4_address).toBe(v4);
      const v6 = JSON.parse(sh('ip', ['-j', '-6', 'addr', 'show', 'dev', iface.name]))[0]?.addr_info?.[0]?.local ?? null;
      expect(iface.ipv6_address).toBe(v6);
      expect(iface.has_carrier).toBe(readFileSync(`/sys/class/net/${iface.name}/carrier`, 'utf8').trim() === '1');
      expect(iface.lldp).toBeNull();
    }
    // loopback and device-less links (ifb, bridges without ports...) are not inventory
    expect(inv.interfaces.some((i) => i.name === 'lo')).toBe(false);
    expect(readdirSync('/sys/class/net').length).toBeGreaterThanOrEqual(inv.interfaces.length);
  });
});

describe('inspection payload', () => {
  it("has IPA's shape and picks the same default root disk as a deploy would", () => {
    const p = inspectionPayload(inv, { logs: 'bG9ncw==' });
    expect(Object.keys(p).sort()).toEqual(['boot_interface', 'configuration', 'error', 'inventory', 'logs', 'root_disk'].filter(
      (k) => k !== 'root_disk' || inv.disks.some((d) => d.size >= 4 * 1024 ** 3),
    ).sort());
    expect(p.configuration.collectors).toEqual(['default', 'logs']);
    expect(p.error).toBeNull();
    const big = inv.disks.filter((d) => d.size >= 4 * 1024 ** 3).sort((x, y) => x.size - y.size)[0];
    expect(p.root_disk?.name).toBe(big?.name);
    expect(JSON.parse(JSON.stringify(p)).inventory.disks.length).toBe(inv.disks.length);
  });
});
