import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sha256File } from '../helpers/images.ts';
import { startIronic, type Ironic } from '../helpers/ironic.ts';
import { REPO_ROOT } from '../helpers/netns.ts';
import { createVmNetwork, type VmNetwork } from './qemu-network.ts';
import { expectNoLastError } from './qemu-serial.ts';

// Issue 16, "Show it" 2 and the BMC half of 4: Ironic 21.4's `redfish` hardware
// type (redfish power and management, redfish-virtual-media boot) drives two
// qemu machines through our Redfish emulator (lab/redfish), one under OVMF and
// one under SeaBIOS, on a network with NO DHCP server. Ironic builds the deploy
// ISO itself from deploy_kernel + deploy_ramdisk (+ build/metal-agent-esp.img
// for UEFI, isolinux for BIOS) with the node's network_data in it, serves it,
// inserts it through the BMC's VirtualMedia, sets the boot device and powers
// on; the agent takes its static IPv4 address from the ISO's
// network_data.json, and the node is cleaned (provide -> available, Ironic
// powers it off) and deployed to active (build/guest-root.img, a partition image), after which Ironic
// boots it from its disk and the deployed OS prints its console marker. The
// harness only starts the network, Ironic, an HTTP server and the emulator.

const BUILD = process.env.METAL_AGENT_BUILD ?? join(REPO_ROOT, 'build');
const KERNEL = join(BUILD, 'vmlinuz');
const RAMDISK = join(BUILD, 'metal-agent.initramfs');
const ESP = join(BUILD, 'metal-agent-esp.img');
const GUEST = join(BUILD, 'guest.raw');
// build/guest.raw has no boot code in its MBR and no ESP (it boots only from -kernel), so both
// nodes get the same OS as a partition image: the agent partitions the disk (GPT + ESP under
// OVMF, MBR under SeaBIOS) and installs GRUB, which the firmware then boots.
const GUEST_ROOT = join(BUILD, 'guest-root.img');
const EMULATOR = join(REPO_ROOT, 'lab', 'redfish', 'emulator.ts');
const TSX = join(REPO_ROOT, 'node_modules', '.bin', 'tsx');
const HOST = '192.0.2.1';
const HTTP_PORT = 8630; // Ironic's http_root (the ISOs) and the guest image
const BMC_PORT = 8631;
const BMC = `http://127.0.0.1:${BMC_PORT}`; // inside the namespace, where Ironic runs
const PASSWORD = `pw-${process.pid}`;
const LIMIT_MS = 1_500_000; // TCG on 2 shared cores: a hang bound, not a speed check
const GUEST_LINE = /metal-guest: hostname=(\S*) cmdline=([^\r\n]*)/;

const NODES = [
  { id: 'rf-uefi', bootMode: 'uefi', redfishMode: 'UEFI', mac: '52:54:00:7f:16:01', ip: '192.0.2.10', image: GUEST_ROOT, partition: true },
  { id: 'rf-bios', bootMode: 'bios', redfishMode: 'Legacy', mac: '52:54:00:7f:16:02', ip: '192.0.2.11', image: GUEST_ROOT, partition: true },
] as const;

function networkData(mac: string, ip: string) {
  return {
    links: [{ id: 'port0', type: 'phy', ethernet_mac_address: mac }],
    networks: [{ id: 'net0', network_id: 'provisioning', type: 'ipv4', link: 'port0', ip_address: ip, netmask: '255.255.255.0' }],
    services: [],
  };
}

describe('Ironic 21.4 redfish + redfish-virtual-media, no DHCP: our emulator, OVMF and SeaBIOS nodes to active', () => {
  const dir = mkdtempSync(join(tmpdir(), 'mar-redfish-'));
  let net: VmNetwork;
  let ironic: Ironic;
  let emulator: ReturnType<VmNetwork['ns']['spawn']> | undefined;
  let emulatorOut = '';
  const uuids: Record<string, string> = {};

  const emulatorEvents = () =>
    emulatorOut
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as Record<string, any>);

  beforeAll(async () => {
    for (const f of [KERNEL, RAMDISK, ESP, GUEST, GUEST_ROOT]) if (!existsSync(f)) throw new Error(`${f} is missing: run make ramdisk and the guest image build`);
    net = await createVmNetwork('marrf', { dhcp: false });
    ironic = await startIronic({
      netns: net.ns.name,
      hostIp: HOST,
      port: 6385,
      heartbeatTimeoutSec: 30,
      fileUrlPaths: [BUILD],
      extraConf: [
        '[DEFAULT]',
        'isolinux_bin = /usr/lib/ISOLINUX/isolinux.bin', // Debian's path (Ironic's default is Fedora's)
        '[deploy]',
        `http_url = http://${HOST}:${HTTP_PORT}`,
        'erase_devices_priority = 0', // metadata erase only: the disks are blank, TCG is slow
        '[redfish]',
        'use_swift = false',
        'kernel_append_params = console=ttyS0,115200 ipa-disk-wait-attempts=1',
        '',
      ].join('\n'),
    });
    mkdirSync(join(ironic.stateDir, 'http'), { recursive: true });
    for (const f of [GUEST, GUEST_ROOT]) symlinkSync(f, join(ironic.stateDir, 'http', basename(f)));
    // /usr/bin/python3 itself: a version manager's shim would leave the server behind when stopped.
    net.ns.spawn('/usr/bin/python3', ['-m', 'http.server', '--bind', HOST, '--directory', join(ironic.stateDir, 'http'), String(HTTP_PORT)]);

    const machines = [];
    for (const n of NODES) {
      const disk = join(dir, `${n.id}.raw`);
      await execa('truncate', ['-s', '6G', disk]); // sparse; the agent wants a root disk over 4 GiB
      machines.push({ id: n.id, bootMode: n.redfishMode === 'UEFI' ? 'Legacy' : 'UEFI', disk, mac: n.mac, tap: await net.addTap(), serialLog: join(dir, `${n.id}.serial`), memoryMiB: 512 });
    }
    // A machine only the wrong-password node points at: it must never power on.
    machines.push({ id: 'rf-spare', bootMode: 'Legacy', disk: join(dir, 'spare.raw'), mac: '52:54:00:7f:16:09', tap: 'tap-none', serialLog: join(dir, 'spare.serial') });
    const cfg = join(dir, 'emulator.json');
    writeFileSync(cfg, JSON.stringify({ host: '127.0.0.1', port: BMC_PORT, username: 'admin', password: PASSWORD, workDir: join(dir, 'bmc'), machines }));
    emulator = net.ns.spawn(TSX, [EMULATOR, cfg]);
    emulator.stdout?.on('data', (d: Buffer) => (emulatorOut += d.toString()));
    for (let i = 0; i < 100 && !/"msg":"listening"/.test(emulatorOut); i++) await sleep(200);
    if (!/"msg":"listening"/.test(emulatorOut)) throw new Error(`emulator did not start: ${emulatorOut}`);
  }, 300_000);

  afterAll(async () => {
    if (emulator && emulator.exitCode === null) {
      emulator.kill('SIGTERM'); // the emulator powers its machines off before it exits
      await Promise.race([emulator, sleep(20_000)]);
    }
    // Whatever qemu is left (an emulator killed hard): by its pid file, only if it is our qemu.
    for (const m of NODES) {
      const pidFile = join(dir, 'bmc', `${m.id}-qemu.pid`);
      const pid = existsSync(pidFile) ? Number(readFileSync(pidFile, 'utf8').trim()) : NaN;
      if (!Number.isInteger(pid) || pid <= 1) continue;
      const cmd = existsSync(`/proc/${pid}/cmdline`) ? readFileSync(`/proc/${pid}/cmdline`, 'utf8') : '';
      if (cmd.includes('qemu-system') && cmd.includes(dir)) process.kill(pid, 'SIGKILL');
    }
    await ironic?.stop();
    await net?.destroy();
    rmSync(dir, { recursive: true, force: true });
  }, 120_000);

  async function enroll(name: string, systemId: string, password: string, mac: string, bootMode: string, nd?: object): Promise<string> {
    const ndFile = join(dir, `${name}-network-data.json`);
    if (nd) writeFileSync(ndFile, JSON.stringify(nd));
    const created = await ironic.baremetalJson([
      'node', 'create', '--driver', 'redfish', '--name', name,
      '--boot-interface', 'redfish-virtual-media', '--deploy-interface', 'direct',
      '--power-interface', 'redfish', '--management-interface', 'redfish',
      '--driver-info', `redfish_address=${BMC}`,
      '--driver-info', `redfish_system_id=/redfish/v1/Systems/${systemId}`,
      '--driver-info', 'redfish_username=admin',
      '--driver-info', `redfish_password=${password}`,
      '--driver-info', `deploy_kernel=file://${KERNEL}`,
      '--driver-info', `deploy_ramdisk=file://${RAMDISK}`,
      '--driver-info', `bootloader=file://${ESP}`,
      '--property', `capabilities=boot_mode:${bootMode}`,
      ...(nd ? ['--network-data', ndFile] : []),
    ]);
    await ironic.baremetal(['port', 'create', mac, '--node', created.uuid]);
    return created.uuid as string;
  }

  it('the emulator refuses a wrong password with 401 and takes the right one', async () => {
    const wrong = await net.ns.exec('curl', ['-sS', '-o', '/dev/null', '-w', '%{http_code}', '-u', 'admin:nope', `${BMC}/redfish/v1/Systems/rf-spare`]);
    const none = await net.ns.exec('curl', ['-sS', '-o', '/dev/null', '-w', '%{http_code}', `${BMC}/redfish/v1/Systems/rf-spare`]);
    const right = await net.ns.exec('curl', ['-sS', '-u', `admin:${PASSWORD}`, `${BMC}/redfish/v1/Systems/rf-spare`]);
    expect(wrong.stdout).toBe('401');
    expect(none.stdout).toBe('401');
    expect(JSON.parse(right.stdout)).toMatchObject({ Id: 'rf-spare', PowerState: 'Off' });
  });

  it('Ironic reports a power failure for a node enrolled with a wrong password, and nothing boots', async () => {
    const uuid = await enroll('rf-badpw', 'rf-spare', 'wrong-password', '52:54:00:7f:16:09', 'bios');
    await ironic.baremetal(['node', 'manage', uuid]).catch(() => undefined);
    let node = await ironic.node(uuid);
    for (let i = 0; i < 120 && node.provision_state !== 'enroll'; i++) {
      await sleep(500);
      node = await ironic.node(uuid);
    }
    expect(node.provision_state).toBe('enroll'); // manage failed its power check
    expect(String(node.last_error)).toMatch(/power|redfish|Access|401|authent/i);
    const power = await execa('ip', ['netns', 'exec', net.ns.name, 'baremetal', 'node', 'power', 'on', uuid], {
      env: { OS_ENDPOINT: ironic.url, OS_AUTH_TYPE: 'none', OS_BAREMETAL_API_VERSION: '1.78' },
      reject: false,
    });
    node = await ironic.node(uuid);
    for (let i = 0; i < 60 && node.target_power_state; i++) {
      await sleep(500);
      node = await ironic.node(uuid);
    }
    expect(power.exitCode !== 0 || /power|redfish|Access|401/i.test(String(node.last_error))).toBe(true);
    const events = emulatorEvents();
    expect(events.some((e) => e.msg === 'session refused' || e.msg === 'unauthorized')).toBe(true);
    expect(events.filter((e) => e.system === 'rf-spare' && (e.msg === 'power on' || e.msg === 'reset'))).toEqual([]);
    await ironic.baremetal(['node', 'delete', uuid]);
  }, 120_000);

  it('cleans and deploys both nodes to active over virtual media with network_data, then each boots its deployed OS', async () => {
    const sha = { [GUEST]: await sha256File(GUEST), [GUEST_ROOT]: await sha256File(GUEST_ROOT) };
    await Promise.all(
      NODES.map(async (n) => {
        const uuid = await enroll(n.id, n.id, PASSWORD, n.mac, n.bootMode, networkData(n.mac, n.ip));
        uuids[n.id] = uuid;
        await ironic.baremetal(['node', 'manage', uuid]);
        await ironic.waitForState(uuid, ['manageable'], 120);
        await ironic.baremetal(['node', 'provide', uuid]);
        const cleaned = await ironic.waitForState(uuid, ['available', 'clean failed'], LIMIT_MS / 2000);
        const serial = () => readFileSync(join(dir, `${n.id}.serial`), 'latin1');
        await expectNoLastError(expect, cleaned, serial);
        expect(cleaned.provision_state).toBe('available');
        expect(cleaned.power_state).toBe('power off'); // no fast track: Ironic powered it off after cleaning

        await ironic.baremetal([
          'node', 'set', uuid,
          '--instance-info', `image_source=http://${HOST}:${HTTP_PORT}/${basename(n.image)}`,
          '--instance-info', 'image_os_hash_algo=sha256',
          '--instance-info', `image_os_hash_value=${sha[n.image]}`,
          '--instance-info', 'image_disk_format=raw',
          ...(n.partition ? ['--instance-info', 'image_type=partition', '--instance-info', 'root_gb=2'] : []),
        ]);
        await ironic.baremetal(['node', 'deploy', uuid, '--config-drive', JSON.stringify({ meta_data: { hostname: `${n.id}-${process.pid}` } })]);
        const deployed = await ironic.waitForState(uuid, ['active', 'deploy failed'], LIMIT_MS / 2000);
        await expectNoLastError(expect, deployed, serial);
        expect(deployed.provision_state).toBe('active');
        expect(deployed.power_state).toBe('power on');

        // Ironic powered it on to boot from its disk; the deployed OS says so on the console.
        const sinceLastPowerOn = () => serial().slice(serial().lastIndexOf('[redfish-emulator] power on'));
        let m: RegExpExecArray | null = null;
        for (let i = 0; i < 1200 && !m; i++) {
          m = GUEST_LINE.exec(sinceLastPowerOn());
          if (!m) await sleep(500);
        }
        expect(m?.[1], serial().slice(-3000)).toBe(`${n.id}-${process.pid}`);
      }),
    );

    const text = (id: string) => readFileSync(join(dir, `${id}.serial`), 'latin1');
    for (const n of NODES) {
      const serial = text(n.id);
      // The agent booted from the ISO Ironic built: its kernel parameters, its network_data.json, no DHCP.
      expect(serial).toMatch(/Command line: [^\n]*boot_method=vmedia/);
      expect(serial).toMatch(/"found":true[^\n]*"msg":"virtual media network_data.json"/);
      expect(serial).toMatch(new RegExp(`"address":"${n.ip.replace(/\./g, '\\.')}"[^\\n]*"staticConfig":true[^\\n]*"msg":"network ready"`));
      const events = emulatorEvents().filter((e) => e.system === n.id);
      // Ironic set the boot mode the node's capability asks (the emulator started in the other one).
      expect(events.filter((e) => e.msg === 'power on').every((e) => e.mode === n.redfishMode)).toBe(true);
      // Two ramdisk boots from the CD (cleaning, deploy) and then one from the disk.
      const inserts = events.filter((e) => e.msg === 'media inserted');
      expect(inserts.length).toBeGreaterThanOrEqual(2);
      for (const e of inserts) expect(e.image).toMatch(new RegExp(`^http://${HOST}:${HTTP_PORT}/redfish/boot-.*\\.iso$`));
      const ons = events.filter((e) => e.msg === 'power on');
      expect(ons.filter((e) => e.bootOrder.Cd === 1).length).toBeGreaterThanOrEqual(2);
      expect(ons.at(-1)).toMatchObject({ cd: null });
      expect(ons.at(-1)!.bootOrder.Hdd).toBe(1);
    }
  }, LIMIT_MS);
});
