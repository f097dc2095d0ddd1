import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { addTapToBridge } from './qemu-network.ts';
import { readText, waitForLog } from './qemu-serial.ts';
import { destroyNetns, Netns, REPO_ROOT } from '../helpers/netns.ts';
import { killNamespaceProcesses, onTeardown, runSync, teardownOnSignals } from '../helpers/teardown.ts';

// The real-boot lab (issue 16): a provisioning network in a namespace of its
// own (a bridge at 192.0.2.1/24), the PXE services of lab/pxe (dnsmasq DHCP +
// TFTP, busybox httpd for Ironic's http_root) and one IPMI BMC per node
// (lab/bmc/node.sh: ipmi_sim, which starts the node's qemu on "power on").
// The harness only builds this; Ironic powers and boots the nodes.
//
// Every part registers a synchronous teardown (test/helpers/teardown.ts, as
// startIronic does), and creating the network turns on teardown at SIGINT,
// SIGTERM and SIGHUP: a failed or interrupted run leaves no namespace, dnsmasq,
// httpd, ipmi_sim, qemu or Ironic behind (test/e2e/real-boot-ipmi.test.ts shows it
// with test/e2e/ipmi-lab-child.ts).

const BMC = join(REPO_ROOT, 'lab', 'bmc', 'node.sh');
const PXE = join(REPO_ROOT, 'lab', 'pxe');
export const PXE_HOST_IP = '192.0.2.1';
export const PXE_HTTP_PORT = 8080;

export interface PxeNetwork {
  ns: Netns;
  hostIp: string;
  /** Starts dnsmasq and the http_root server for an Ironic whose state dir is given. */
  startPxe(ironicStateDir: string): Promise<void>;
  addTap(): Promise<string>;
  /** The pids of dnsmasq and httpd once startPxe ran (from their pid files). */
  pids(): { dnsmasq?: number; httpd?: number };
  destroy(): Promise<void>;
}

function readPid(file: string): number | undefined {
  try {
    const pid = Number(readFileSync(file, 'utf8').trim());
    return Number.isInteger(pid) && pid > 1 ? pid : undefined;
  } catch {
    return undefined;
  }
}

/** A namespace `mab-<tag>-<pid>` holding the provisioning bridge (no DHCP until startPxe). */
export async function createPxeNetwork(tag: string): Promise<PxeNetwork> {
  const name = `mab-${tag}-${process.pid}`;
  teardownOnSignals();
  await execa('ip', ['netns', 'del', name], { reject: false }); // a leftover of a crashed run with our pid
  await execa('ip', ['netns', 'add', name]);
  const ns = new Netns(name);
  const pxeState = mkdtempSync(join(tmpdir(), 'mab-pxe-'));
  let taps = 0;
  // At a signal or exit: the PXE services, then anything else still running in
  // the namespace (the image file server, a qemu whose BMC is gone), then the namespace.
  const unregister = onTeardown(`namespace ${name}`, () => {
    runSync(join(PXE, 'stop.sh'), [pxeState]);
    killNamespaceProcesses(name);
    runSync('ip', ['netns', 'del', name]);
    for (const d of [pxeState, ...ns.tempDirs.splice(0)]) rmSync(d, { recursive: true, force: true });
  });
  const destroy = async () => {
    await execa(join(PXE, 'stop.sh'), [pxeState], { reject: false });
    await destroyNetns(ns);
    rmSync(pxeState, { recursive: true, force: true });
    unregister();
  };
  try {
    await ns.ip(['link', 'set', 'lo', 'up']);
    await ns.ip(['link', 'add', 'br0', 'type', 'bridge']);
    await ns.ip(['addr', 'add', `${PXE_HOST_IP}/24`, 'dev', 'br0']);
    await ns.ip(['link', 'set', 'br0', 'up']);
  } catch (err) {
    await destroy();
    throw err;
  }
  return {
    ns,
    hostIp: PXE_HOST_IP,
    addTap: () => addTapToBridge(ns, 'br0', `tap${taps++}`),
    pids: () => ({ dnsmasq: readPid(join(pxeState, 'dnsmasq.pid')), httpd: readPid(join(pxeState, 'httpd.pid')) }),
    async startPxe(ironicStateDir) {
      await ns.must(join(PXE, 'start.sh'), [pxeState], {
        env: {
          ...(process.env as Record<string, string>),
          PXE_INTERFACE: 'br0',
          PXE_HOST_IP,
          PXE_HTTP_PORT: String(PXE_HTTP_PORT),
          PXE_HTTP_ROOT: join(ironicStateDir, 'http'),
          PXE_TFTP_ROOT: join(ironicStateDir, 'tftp'),
        },
      });
    },
    destroy,
  };
}

export interface IpmiNode {
  name: string;
  mac: string;
  firmware: 'uefi' | 'bios';
  disk: string;
  /** Ironic's driver_info for this BMC (ipmitool power). */
  driverInfo: Record<string, string>;
  /** The serial console across power cycles; each power-on adds "=== bmc: power on N". */
  console(): Promise<string>;
  waitForConsole(re: RegExp, timeoutMs: number): Promise<RegExpExecArray>;
  /** How many times the BMC started the VM. */
  powerOns(): number;
  /** The BMC's own answer (ipmitool chassis power status), as Ironic would read it. */
  bmcPowerStatus(): Promise<string>;
  /** ipmi_sim's pid, and qemu's while the BMC has the VM running (pid files of lab/bmc/node.sh). */
  pids(): { ipmiSim?: number; qemu?: number };
  stop(): Promise<void>;
}

export interface IpmiNodeOptions {
  name: string;
  mac: string;
  firmware: 'uefi' | 'bios';
  lanPort: number;
  linkPort: number;
  diskGiB?: number;
  memoryMiB?: number;
}

/** Writes the node's BMC + VM definition and starts its BMC (the VM stays off). */
export async function startIpmiNode(net: PxeNetwork, o: IpmiNodeOptions): Promise<IpmiNode> {
  const dir = mkdtempSync(join(tmpdir(), `mab-node-${o.firmware}-`));
  const state = join(dir, 'bmc');
  const disk = join(dir, 'disk.raw');
  const consoleLog = join(state, 'console.log');
  const unregister = onTeardown(`BMC ${o.name}`, () => {
    runSync(BMC, ['stop', state]);
    rmSync(dir, { recursive: true, force: true });
  });
  const stop = async () => {
    await execa(BMC, ['stop', state], { reject: false });
    rmSync(dir, { recursive: true, force: true });
    unregister();
  };
  try {
    // Sparse, over the 4 GiB a root disk needs without hints (IPA's rule, which the agent keeps).
    await execa('truncate', ['-s', `${o.diskGiB ?? 6}G`, disk]);
    const tap = await net.addTap();
    await net.ns.must(BMC, ['start', state], {
      env: {
        ...(process.env as Record<string, string>),
        NODE_NAME: o.name,
        NODE_MAC: o.mac,
        NODE_TAP: tap,
        NODE_DISK: disk,
        NODE_FIRMWARE: o.firmware,
        NODE_MEMORY: String(o.memoryMiB ?? 512),
        BMC_LAN_PORT: String(o.lanPort),
        BMC_LINK_PORT: String(o.linkPort),
      },
    });
  } catch (err) {
    await stop();
    throw err;
  }
  const driverInfo = {
    ipmi_address: '127.0.0.1',
    ipmi_port: String(o.lanPort),
    ipmi_username: 'admin',
    ipmi_password: 'secret',
    // ipmi_sim does not answer ipmitool's cipher suite probe (5 s lost per call without this).
    ipmi_cipher_suite: '3',
  };
  return {
    name: o.name,
    mac: o.mac,
    firmware: o.firmware,
    disk,
    driverInfo,
    console: () => readText(consoleLog),
    waitForConsole: (re, timeoutMs) => waitForLog(consoleLog, re, { timeoutMs }),
    powerOns: () => {
      const f = join(state, 'power-ons');
      return existsSync(f) ? Number(readFileSync(f, 'utf8').trim()) : 0;
    },
    pids: () => ({ ipmiSim: readPid(join(state, 'ipmi_sim.pid')), qemu: readPid(join(state, 'qemu.pid')) }),
    async bmcPowerStatus() {
      const args = ['-I', 'lanplus', '-C', '3', '-H', '127.0.0.1', '-p', String(o.lanPort), '-U', 'admin', '-P', 'secret'];
      return (await net.ns.must('ipmitool', [...args, 'chassis', 'power', 'status'])).trim();
    },
    stop,
  };
}
