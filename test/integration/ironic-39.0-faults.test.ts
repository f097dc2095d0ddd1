import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createConnection, createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startAgent, type AgentProcess } from '../helpers/agent-process.ts';
import { ironicLikeToken, pregenerateToken } from '../helpers/agent-token.ts';
import { makeRawImage, sha256File } from '../helpers/images.ts';
import { expectDiskHoldsImage } from '../helpers/deployed-disk.ts';
import { startImageServer, type ImageServer } from '../helpers/http-image-server.ts';
import { startIronicRelease, type ReleaseIronic } from '../helpers/ironic-release.ts';
import { freePort } from '../helpers/ironic.ts';
import { createLoopDisk, giveDiskAPartition, type LoopDisk } from '../helpers/loop-disk.ts';
import { filesWith } from '../helpers/files-with.ts';

// Issue 17, "Show it" 4, against a real Ironic 39.0 (one conductor for all
// four cases, one node, our agent as a process on this machine):
//
//   1. inspection endpoint down: the agent's ipa-inspection-callback-url names a
//      port nothing listens on (connection refused); the agent logs why and
//      retries with back-off (5 tries, 5-30 s, src/conductor/inspection-post.ts);
//      once the port opens (a TCP relay to Ironic) the inspection completes
//      (manageable) and the same agent goes on heartbeating;
//   2. inspection payload over Ironic's 16 MiB body limit: the logs collector
//      picks up /var/log/metal-agent.log (src/commands/extensions/log.ts), which
//      the test fills with ~20 MiB of incompressible text; Ironic
//      ([api]max_json_body_size_inspection) accepts the cut payload, the node
//      ends manageable and the stored plugin data holds logs_truncated;
//   3. heartbeat answered 409: the node becomes fake-hardware with fake
//      management and boot, and [fake]management_delay = 15, so `baremetal
//      node boot device set` holds the node's lock 15 s while cleaning (fast
//      track, `provide`) waits in clean wait for the agent's heartbeat (the
//      conductor's own fast-track power check holds it [fake]power_delay too,
//      see 4); a heartbeat gets 409 NodeLocked, the next one follows 5-10 s later
//      (src/conductor/session.ts), and cleaning ends available. (Fake
//      management has no `disk` boot device: no deploy can end on it.)
//   4. heartbeat answered 409 during a deploy that reaches active. Ironic 39.0
//      answers a heartbeat 409 only while the node is locked AND its agent_url
//      is not recorded (conductor/manager.py heartbeat); a power off or reboot
//      wipes agent_url (conductor/utils.py wipe_internal_info_on_power_off) and
//      the token too, unless it was pregenerated (virtual media). So the node
//      goes to manual-management (fake power, noop management, pxe boot), a new
//      agent starts with a pregenerated token (--agent-token, as in
//      security-token.test.ts) after the node is powered off while available
//      (that wipes the old agent's agent_url, which a new callback_url may not
//      replace). Fast track stays on (a deploy without it wipes even a
//      pregenerated token at its start: wipe_deploy_internal_info), yet this
//      deploy is no fast track (is_fast_track needs power on), and the
//      conductor itself wipes agent_url and holds the lock through its power
//      calls (each sleeps [fake]power_delay = 6 s) until deploy wait. Heartbeats
//      come every 1.8-3.6 s, so one always lands in that window: 409 NodeLocked,
//      the token still valid (no lookup again); the next heartbeat follows 5-10
//      s later and records agent_url, and the deploy ends active with the image
//      on the loop disk and the pregenerated token still the node's.
//
// The agent reports only NICs with a /sys device: the node's port is this
// machine's NIC, as in ironic-inspection.test.ts.

const COLLECTORS = 'default,logs,pci-devices,lldp,numa-topology';
const DISK_MIB = 5 * 1024;
const MANAGEMENT_DELAY_S = 15;
/**
 * Every fake power call sleeps this long, under the node's lock. Case 4: from
 * the agent_url wipe (the deploy's power-off check) to deploy wait the lock is
 * held at least this long again (the reboot), longer than a heartbeat interval
 * (1.8-3.6 s), so a heartbeat always meets the lock. A config option of the
 * conductor, not of the node: it slows every fake power call of this file's
 * Ironic (case 3's fast-track power check, case 4's power actions).
 */
const POWER_DELAY_S = 6;
/** Case 4's image. */
const IMAGE_MIB = 16;
/** What the logs collector reads (DEFAULT_SOURCES in src/commands/extensions/log.ts). */
const AGENT_LOG_FILE = '/var/log/metal-agent.log';

function hostNic(): { name: string; mac: string } {
  for (const name of readdirSync('/sys/class/net').sort()) {
    if (existsSync(`/sys/class/net/${name}/device`)) return { name, mac: readFileSync(`/sys/class/net/${name}/address`, 'utf8').trim() };
  }
  throw new Error('no NIC with a /sys device on this machine');
}

/** The agent's JSON log lines (pino: time in ms, msg). */
function logLines(out: string): Array<Record<string, any>> {
  return out
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .flatMap((l) => {
      try {
        return [JSON.parse(l) as Record<string, any>];
      } catch {
        return [];
      }
    });
}

/** A TCP relay from `port` to Ironic's: the inspection endpoint "coming back". */
function relay(port: number, target: URL): Promise<Server> {
  const srv = createServer((c) => {
    const up = createConnection({ host: target.hostname, port: Number(target.port) });
    c.pipe(up).pipe(c);
    c.on('error', () => up.destroy());
    up.on('error', () => c.destroy());
  });
  return new Promise((res, rej) => {
    srv.once('error', rej);
    srv.listen(port, '127.0.0.1', () => res(srv));
  });
}

describe('Ironic 39.0: faults (inspection endpoint down, logs over 16 MiB, heartbeat 409 in cleaning and in a deploy) against the real conductor', () => {
  const nic = hostNic();
  let ironic: ReleaseIronic;
  let disk: LoopDisk;
  let dir: string;
  let uuid: string;
  let relayServer: Server | undefined;
  let images: ImageServer | undefined;
  let wroteLogFile = false;
  const agents: AgentProcess[] = [];

  async function api(method: string, path: string, body?: unknown): Promise<any> {
    const res = await fetch(`${ironic.url}${path}`, {
      method,
      headers: { 'X-OpenStack-Ironic-API-Version': '1.96', 'Content-Type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${text}`);
    return text ? JSON.parse(text) : undefined;
  }

  /** `baremetal node inspect`, then the kernel command line Ironic wrote into the node's PXE config. */
  async function inspectCmdline(): Promise<string> {
    await ironic.baremetal(['node', 'inspect', uuid]);
    await ironic.waitForState(uuid, ['inspect wait', 'inspect failed'], 60);
    const [config] = filesWith(join(ironic.stateDir, 'tftp'), 'ipa-inspection-callback-url=');
    expect(config, 'Ironic wrote no PXE config with ipa-inspection-callback-url').toBeDefined();
    const append = readFileSync(config!, 'utf8').split('\n').find((l) => l.includes('ipa-inspection-callback-url='))!;
    return `${append.trim().replace(/^append\s+/, '')} ipa-inspection-collectors=${COLLECTORS} ipa-lldp-timeout=2`;
  }

  async function startInspectionAgent(cmdline: string): Promise<AgentProcess> {
    const file = join(dir, `cmdline-${agents.length}`);
    writeFileSync(file, cmdline);
    const agent = await startAgent({ mac: nic.mac, allowedDevices: [disk.device], cmdlineFile: file, standalone: false });
    agents.push(agent);
    return agent;
  }

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'metal-agent-faults-'));
    disk = await createLoopDisk(DISK_MIB, 'faults39');
    await giveDiskAPartition(disk.device);
    ironic = await startIronicRelease('39.0', {
      fastTrack: true,
      // Heartbeats every 1.8-3.6 s: a 12 s (power, case 4) or 15 s (management, case 3) lock always meets one.
      heartbeatTimeoutSec: 6,
      extraConf: `[deploy]\nerase_devices_priority = 0\n[fake]\nmanagement_delay = ${MANAGEMENT_DELAY_S}\npower_delay = ${POWER_DELAY_S}\n`,
    });
    uuid = await ironic.enroll('52:54:00:a0:17:f4', { provide: false, name: 'faults-39' });
    await ironic.baremetal(['node', 'set', uuid, '--inspect-interface', 'agent']);
    await ironic.baremetal(['port', 'create', nic.mac, '--node', uuid, '--pxe-enabled', 'False']);
  }, 600_000);

  afterAll(async () => {
    for (const a of agents) await a.stop();
    relayServer?.close();
    await images?.stop();
    await ironic?.stop();
    await disk?.destroy();
    if (wroteLogFile) rmSync(AGENT_LOG_FILE, { force: true });
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('inspection endpoint down: the agent logs why, retries with back-off, does not crash, and the inspection completes when the port opens', async () => {
    const cmdline = await inspectCmdline();
    const callback = `${ironic.url}/v1/continue_inspection`;
    expect(cmdline).toContain(`ipa-inspection-callback-url=${callback}`);
    const downPort = await freePort();
    const agent = await startInspectionAgent(cmdline.replace(callback, `http://127.0.0.1:${downPort}/v1/continue_inspection`));
    // Two refused tries, then the port opens.
    await agent.waitForLog(/"msg":"inspection callback failed, retrying"[\s\S]*"msg":"inspection callback failed, retrying"/, 120);
    relayServer = await relay(downPort, new URL(ironic.url));
    const node = await ironic.waitForState(uuid, ['manageable', 'inspect failed'], 120);
    expect(node.last_error ?? null, agent.output().slice(-3000)).toBeNull();
    expect(node.provision_state).toBe('manageable');
    await agent.waitForLog(/"msg":"inspection data sent"/, 10);
    const fails = logLines(agent.output()).filter((l) => l.msg === 'inspection callback failed, retrying');
    expect(fails.length).toBeGreaterThanOrEqual(2);
    for (const f of fails) {
      expect(f.reason).toMatch(/^unreachable: .*ECONNREFUSED/);
      expect(f.of).toBe(5);
    }
    // Back-off: 5 s nominal first (jitter 25 %), twice as long the next time.
    expect(fails[0]!.retryInMs).toBeGreaterThanOrEqual(3_750);
    expect(fails[0]!.retryInMs).toBeLessThan(6_250);
    expect(fails[1]!.retryInMs).toBeGreaterThanOrEqual(7_500);
    expect(fails[1]!.retryInMs).toBeLessThan(12_500);
    expect(agent.output()).not.toMatch(/giving up/);
    // Still alive: it heartbeats to the API with the token from the inspection answer.
    await agent.waitForLog(/"msg":"heartbeat accepted"/, 60);
    console.log(
      `Ironic 39.0 fault: inspection endpoint down: ${fails.length} refused tries (${fails.map((f) => `${f.reason.slice(0, 60)}; retry in ${f.retryInMs} ms`).join(' | ')}), ` +
        `then the port opened: ${uuid} manageable, agent pid ${agent.pid} still heartbeating`,
    );
  }, 300_000);

  it('inspection payload over 16 MiB (a 20 MiB log file): Ironic accepts it with the logs cut, manageable, logs_truncated stored', async () => {
    await agents[0]!.stop();
    agents.splice(0);
    relayServer?.close();
    relayServer = undefined;
    expect(existsSync(AGENT_LOG_FILE), `${AGENT_LOG_FILE} exists already: not overwriting it`).toBe(false);
    // Random base64 text in log-sized lines: gzip cannot shrink it below ~15 MiB, its base64 is ~20 MiB.
    const text = randomBytes(15 * 2 ** 20).toString('base64').replace(/.{76}/g, '$&\n');
    wroteLogFile = true;
    writeFileSync(AGENT_LOG_FILE, text);
    const cmdline = await inspectCmdline();
    const agent = await startInspectionAgent(cmdline);
    const node = await ironic.waitForState(uuid, ['manageable', 'inspect failed'], 180);
    rmSync(AGENT_LOG_FILE, { force: true });
    wroteLogFile = false;
    expect(node.last_error ?? null, agent.output().slice(-3000)).toBeNull();
    expect(node.provision_state).toBe('manageable');
    const cut = logLines(agent.output()).find((l) => l.msg?.startsWith('inspection logs cut'));
    expect(cut, agent.output().slice(-3000)).toBeDefined();
    expect(cut!.originalChars).toBeGreaterThan(16 * 2 ** 20);
    expect(cut!.sentChars).toBeLessThan(16 * 2 ** 20);
    const inv = await api('GET', `/v1/nodes/${uuid}/inventory`);
    expect(inv.plugin_data.logs_truncated).toMatchObject({ original_chars: cut!.originalChars, sent_chars: cut!.sentChars });
    expect(inv.plugin_data.logs_truncated.reason).toMatch(/max_json_body_size_inspection/);
    expect(inv.inventory.cpu.architecture).toBeTruthy();
    expect(inv.plugin_data.root_disk.name).toBe(disk.device);
    console.log(
      `Ironic 39.0 fault: logs of ${cut!.originalChars} base64 chars cut to ${cut!.sentChars}: ${uuid} manageable, ` +
        `plugin_data.logs_truncated=${JSON.stringify(inv.plugin_data.logs_truncated)}`,
    );
  }, 300_000);

  it('heartbeat answered 409 (node locked by a 15 s management call): the next heartbeat follows within 10 s, and cleaning ends available', async () => {
    const agent = agents[0]!;
    // fake-hardware with fake management (set_boot_device sleeps [fake]management_delay), fake boot and power.
    await ironic.baremetal([
      'node', 'set', uuid, '--driver', 'fake-hardware', '--reset-interfaces',
      '--management-interface', 'fake', '--boot-interface', 'fake', '--power-interface', 'fake',
      '--deploy-interface', 'direct', '--inspect-interface', 'agent', '--network-interface', 'noop',
    ]);
    const before = agent.output().length;
    await ironic.baremetal(['node', 'provide', uuid]);
    // Fast track: cleaning waits for the agent's next heartbeat (1.8-3.6 s away) in clean wait.
    await ironic.waitForState(uuid, ['clean wait', 'clean failed', 'available'], 120, { everyMs: 100 });
    // Hold the node's lock 15 s; while Ironic holds it the API answers 409 to us too: try until ours is taken.
    let held: { start: number; end: number } | undefined;
    for (let i = 0; i < 120 && !held; i++) {
      const start = Date.now();
      try {
        await ironic.baremetal(['node', 'boot', 'device', 'set', uuid, 'pxe']);
        held = { start, end: Date.now() };
      } catch (err) {
        if (!/locked|409/i.test((err as Error).message)) throw err;
        await sleep(250);
      }
    }
    expect(held).toBeDefined();
    const node = await ironic.waitForState(uuid, ['available', 'clean failed'], 180);
    const cleanedAt = Date.now();
    expect(node.last_error ?? null, agent.output().slice(-3000)).toBeNull();
    expect(node.provision_state).toBe('available');
    // Ironic ran the metadata erase through this agent (fast track: the same process).
    expect(ironic.log()).toMatch(/erase_devices_metadata/);

    // The heartbeat outcomes since provide, with the agent's timestamps.
    const beats = logLines(agent.output().slice(before)).filter(
      (l) => l.msg === 'heartbeat accepted' || l.msg?.startsWith('heartbeat answered 409') || l.msg?.startsWith('heartbeat failed'),
    );
    // The lock is held by our boot device call, and by the conductor's own fast-track check of the power
    // state ([fake]power_delay, set for case 4) while it starts cleaning: a 409 while cleaning ran, from either.
    const i409 = beats.findIndex((l) => l.msg.startsWith('heartbeat answered 409') && l.time <= cleanedAt);
    expect(i409, JSON.stringify(beats)).toBeGreaterThanOrEqual(0);
    const locked = beats[i409]!;
    const next = beats[i409 + 1];
    expect(next, JSON.stringify(beats)).toBeDefined();
    expect(locked.retryInMs).toBeGreaterThanOrEqual(5_000);
    expect(locked.retryInMs).toBeLessThanOrEqual(10_000);
    // Between the 409 answer and the next answer: the retry wait, plus the next request's own time
    // (Ironic tries a locked node 3 times, 1 s apart, before it answers 409).
    const gap = next!.time - locked.time;
    expect(gap).toBeGreaterThanOrEqual(locked.retryInMs);
    expect(gap).toBeLessThanOrEqual(10_000 + 3_500);
    console.log(
      `Ironic 39.0 fault: heartbeat 409 while the lock was held ${((held!.end - held!.start) / 1000).toFixed(1)} s: "${String(locked.message).slice(0, 100)}", ` +
        `retry in ${locked.retryInMs} ms, next answer ${gap} ms later (${next!.msg}); ` +
        `${beats.filter((b) => b.msg.startsWith('heartbeat answered 409')).length} x 409 during cleaning; ${uuid} available, cleaned by agent pid ${agent.pid}`,
    );
  }, 420_000);

  it('heartbeat answered 409 during a deploy (pregenerated token kept, agent URL wiped by the conductor power actions that hold the lock): the next heartbeat follows within 10 s, and the deploy ends active with the image written', async () => {
    // Back to a driver a deploy can end on: noop management (no boot device to set), fake power, pxe boot.
    await ironic.baremetal(['node', 'set', uuid, '--driver', 'manual-management', '--reset-interfaces']);
    await ironic.baremetal([
      'node', 'set', uuid,
      '--management-interface', 'noop', '--boot-interface', 'pxe', '--power-interface', 'fake',
      '--deploy-interface', 'direct', '--inspect-interface', 'agent', '--network-interface', 'noop',
      // The agent is no ramdisk: it does not power this machine off, so Ironic powers the node off itself at the end.
      '--driver-info', 'deploy_forces_oob_reboot=true',
      '--property', `root_device=${JSON.stringify({ name: disk.device })}`,
    ]);
    expect(await ironic.node(uuid)).toMatchObject({ driver: 'manual-management', power_interface: 'fake', management_interface: 'noop', boot_interface: 'pxe', provision_state: 'available' });
    const image = join(dir, 'deploy.img');
    await makeRawImage(image, IMAGE_MIB);
    images = await startImageServer();
    await ironic.baremetal([
      'node', 'set', uuid,
      '--instance-info', `image_source=${images.serve('/deploy.img', { path: image })}`, '--instance-info', 'image_disk_format=raw',
      '--instance-info', 'image_os_hash_algo=sha256', '--instance-info', `image_os_hash_value=${await sha256File(image)}`,
    ]);

    // A ramdisk booted from virtual media: its token was pregenerated, the node powered off (which wipes the old
    // agent's agent_url: Ironic refuses a changed callback_url while one is recorded, but keeps a pregenerated
    // token), then the agent boots with the token on its command line.
    for (const a of agents) await a.stop();
    agents.splice(0);
    const token = ironicLikeToken();
    await pregenerateToken(ironic, uuid, token);
    await ironic.baremetal(['node', 'power', 'off', uuid]);
    for (let i = 0; i < 600 && (await ironic.node(uuid)).power_state !== 'power off'; i++) await sleep(100);
    expect((await ironic.node(uuid)).power_state).toBe('power off');
    expect(await ironic.secretToken(uuid)).toBe(token);
    // --agent-token=VALUE: one token in 64 starts with '-', which '--agent-token VALUE' would take for a flag.
    const agent = await startAgent({ apiUrl: ironic.url, mac: nic.mac, allowedDevices: [disk.device], extraArgs: [`--agent-token=${token}`] });
    agents.push(agent);
    await agent.waitForLog(/"msg":"heartbeat accepted"/, 60);
    // Still powered off: the deploy cannot be a fast track (is_fast_track needs power on), so its prepare
    // "powers the node off" (wiping agent_url, keeping the pregenerated token) and its deploy step reboots it.
    const before = agent.output().length;
    const deployAt = Date.now();
    await ironic.baremetal(['node', 'deploy', uuid]);
    const node = await ironic.waitForState(uuid, ['active', 'deploy failed'], 300);
    const activeAt = Date.now();
    expect(node.last_error ?? null, agent.output().slice(-3000)).toBeNull();
    expect(node.provision_state).toBe('active');
    // The agent wrote the image to the loop disk.
    expect(images.requests.filter((r) => r.path === '/deploy.img' && r.status === 200).length).toBeGreaterThanOrEqual(1);
    expectDiskHoldsImage(disk.device, image);
    // The pregenerated token survived every power action: still the node's, and the agent never looked it up again.
    expect(await ironic.secretToken(uuid)).toBe(token);

    const lines = logLines(agent.output().slice(before));
    expect(lines.filter((l) => l.msg?.startsWith('heartbeat refused') || l.msg === 'lookup succeeded'), agent.output().slice(-3000)).toEqual([]);
    const beats = lines.filter(
      (l) => l.msg === 'heartbeat accepted' || l.msg?.startsWith('heartbeat answered 409') || l.msg?.startsWith('heartbeat failed'),
    );
    const i409 = beats.findIndex((l) => l.msg.startsWith('heartbeat answered 409') && l.time >= deployAt && l.time <= activeAt);
    expect(i409, JSON.stringify(beats)).toBeGreaterThanOrEqual(0);
    const locked = beats[i409]!;
    const next = beats[i409 + 1];
    expect(next, JSON.stringify(beats)).toBeDefined();
    expect(locked.message).toMatch(/is locked by host/);
    expect(locked.retryInMs).toBeGreaterThanOrEqual(5_000);
    expect(locked.retryInMs).toBeLessThanOrEqual(10_000);
    // The retry wait, plus the next request's own time.
    const gap = next!.time - locked.time;
    expect(gap).toBeGreaterThanOrEqual(locked.retryInMs);
    expect(gap).toBeLessThanOrEqual(10_000 + 3_500);
    const n409 = beats.filter((b) => b.msg.startsWith('heartbeat answered 409') && b.time >= deployAt).length;
    console.log(
      `Ironic 39.0 fault: deploy: heartbeat 409 "${String(locked.message).slice(0, 100)}", retry in ${locked.retryInMs} ms, ` +
        `next answer ${gap} ms later (${next!.msg}); ${n409} x 409 during the deploy; pregenerated token kept, no lookup again; ` +
        `${uuid} active ${((activeAt - deployAt) / 1000).toFixed(1)} s after deploy, ${IMAGE_MIB} MiB image on ${disk.device} (agent pid ${agent.pid})`,
    );
  }, 600_000);
});
