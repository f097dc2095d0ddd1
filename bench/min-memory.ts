// The smallest VM memory the ramdisk works in (issue 19, Show it 2): for each
// size, largest first, a VM (qemu TCG, SeaBIOS) boots build/vmlinuz +
// build/metal-agent.initramfs for a node at a real Ironic 21.4, which cleans
// it (clean wait -> available: lookup, heartbeats, metadata erase) and then
// deploys a raw whole-disk image (64 MiB; make bench: 2 GiB) to it (fast track: the same agent,
// download + sha256 + write) to `active`. A size passes when the node got
// there with no OOM kill on the console. The search stops at the first
// failure (--all tries every size); it prints the smallest size that passed
// and the largest that failed, with the console line that says why.
// --formats raw,qcow2 deploys each format to a node of its own at every size
// (a qcow2 is staged on the disk, verified, then converted by qemu-img in the
// node: its memory counts too); a size passes when every format did.
//
//   npx tsx bench/min-memory.ts [--sizes 256,224,192,160,128] [--all] [--image-mib 64] [--formats raw,qcow2]
//
// Each try boots a VM under TCG (minutes each). Root, qemu, an Ironic: under
// flock /tmp/metal-heavy.lock.
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { makeRawImage, sha256File, toQcow2 } from '../test/helpers/images.ts';
import { bootNode, ConsoleWatch, enrollForCleaning, pollFor, startLab, type Lab } from './vm-lab.ts';

const { values } = parseArgs({
  options: {
    sizes: { type: 'string', default: '256,224,192,160,128' },
    all: { type: 'boolean', default: false },
    'image-mib': { type: 'string', default: '64' },
    formats: { type: 'string', default: 'raw' },
  },
});
const formats = values.formats.split(',').map((f) => {
  if (f !== 'raw' && f !== 'qcow2') throw new Error(`--formats: ${f} is neither raw nor qcow2`);
  return f;
});
const sizes = values.sizes.split(',').map(Number).sort((a, b) => b - a);

/** Console lines that say why a small VM failed, most telling first (the whole line: who invoked the OOM killer). */
const REASONS = [
  /[^\n]*Out of memory: Killed process[^\n]*/,
  /[^\n]*invoked oom-killer[^\n]*/,
  /[^\n]*Kernel panic[^\n]*/,
  /[^\n]*Initramfs unpacking failed[^\n]*/,
  /[^\n]*metal-agent exited with status[^\n]*/,
  /[^\n]*cannot mount \/usr[^\n]*/,
];

/** The OOM story in one line: who invoked the killer, what it killed (or the panic), once the kernel has printed it. */
async function oomStory(watch: ConsoleWatch): Promise<string | undefined> {
  const text = () => watch.lines.map((l) => l.text).join('\n');
  const invoked = REASONS[1]!.exec(text())?.[0] ?? REASONS[0]!.exec(text())?.[0];
  if (!invoked) return undefined;
  for (let i = 0; i < 10 && !/Out of memory: Killed process|Kernel panic/.test(text()); i++) {
    await new Promise((r) => setTimeout(r, 500));
    await watch.poll();
  }
  const outcome = REASONS[0]!.exec(text())?.[0] ?? REASONS[2]!.exec(text())?.[0];
  return outcome && outcome !== invoked ? `${invoked.trim()} / ${outcome.trim()}` : invoked.trim();
}

interface Outcome {
  ok: boolean;
  why: string;
  seconds: number;
}

interface TestImage {
  url: string;
  sha: string;
  format: 'raw' | 'qcow2';
}

async function tryOne(lab: Lab, memoryMiB: number, image: TestImage, n: number): Promise<Outcome> {
  const mac = `52:54:00:3e:3e:${(16 + n).toString(16)}`;
  const uuid = await enrollForCleaning(lab, mac, `mem-${memoryMiB}-${image.format}`);
  const vm = await bootNode(lab, mac, memoryMiB);
  const watch = new ConsoleWatch(vm).start();
  const t0 = Date.now();
  /** A console line that ends the try, or the node once it is in one of `states`. */
  // At the end of a deploy the agent powers the VM off (standby.power_off): qemu exiting after a clean power down is expected then.
  const until = (states: string[], timeoutMs: number, powerOffExpected = false) =>
    pollFor(`node in ${states.join('/')}`, async () => {
      await watch.poll();
      const text = watch.lines.map((l) => l.text).join('\n');
      const oom = await oomStory(watch);
      if (oom) return { failed: oom.trim() };
      if (!vm.alive() && !(powerOffExpected && /reboot: Power down/.test(text))) return { failed: `qemu exited: ${REASONS.map((re) => re.exec(text)?.[0]).find(Boolean) ?? watch.lines.at(-1)?.text}` };
      const node = await lab.ironic.node(uuid);
      return states.includes(node.provision_state) ? { node } : undefined;
    }, timeoutMs, 1000);
  const outcome = async (): Promise<Outcome> => {
    const seconds = () => Math.round((Date.now() - t0) / 1000);
    const cleaned = await until(['available', 'clean failed'], 900_000);
    if ('failed' in cleaned) return { ok: false, why: `during boot/cleaning: ${cleaned.failed}`, seconds: seconds() };
    if (cleaned.node.provision_state !== 'available') return { ok: false, why: `clean failed: ${cleaned.node.last_error}`, seconds: seconds() };
    await lab.ironic.baremetal([
      'node', 'set', uuid,
      '--instance-info', `image_source=${image.url}`,
      '--instance-info', 'image_os_hash_algo=sha256',
      '--instance-info', `image_os_hash_value=${image.sha}`,
      '--instance-info', `image_disk_format=${image.format}`,
    ]);
    await lab.ironic.baremetal(['node', 'deploy', uuid]);
    // The wait grows with the image (1.5 s a MiB beyond 15 minutes): a 2 GiB deploy took 1-2 minutes
    // under TCG here, but a loaded machine's TCG can be many times slower.
    const deployed = await until(['active', 'deploy failed'], Math.max(900_000, Number(values['image-mib']) * 1500), true);
    if ('failed' in deployed) return { ok: false, why: `during the deploy: ${deployed.failed}`, seconds: seconds() };
    if (deployed.node.provision_state !== 'active') return { ok: false, why: `deploy failed: ${deployed.node.last_error}`, seconds: seconds() };
    const oom = await oomStory(watch);
    if (oom) return { ok: false, why: `active, but the console shows ${oom.trim()}`, seconds: seconds() };
    return { ok: true, why: `booted, cleaned (available), deployed the ${image.format} image (active)`, seconds: seconds() };
  };
  try {
    return await outcome().catch((err: Error) => {
      const text = watch.lines.map((l) => l.text).join('\n');
      const line = REASONS.map((re) => re.exec(text)?.[0]).find(Boolean);
      return { ok: false, why: `${err.message}${line ? `; console: ${line}` : `; last console line: ${watch.lines.at(-1)?.text ?? ''}`}`, seconds: Math.round((Date.now() - t0) / 1000) };
    });
  } finally {
    watch.stop();
    await vm.stop();
  }
}

const lab = await startLab('mem');
try {
  const raw = join(lab.dir, 'image.raw');
  await makeRawImage(raw, Number(values['image-mib']));
  const images: TestImage[] = [];
  for (const format of formats) {
    const path = format === 'raw' ? raw : join(lab.dir, 'image.qcow2');
    if (format === 'qcow2') await toQcow2(raw, path);
    images.push({ url: await lab.net.serveFile(path), sha: await sha256File(path), format });
  }
  const results: Array<{ memoryMiB: number } & Outcome> = [];
  let tries = 0;
  for (const memoryMiB of sizes) {
    // Each format on a node of its own; the size's outcome is its first failure, or its last pass.
    let r: Outcome | undefined;
    for (const image of images) {
      r = await tryOne(lab, memoryMiB, image, tries++);
      console.log(`${memoryMiB} MiB, ${image.format}: ${r.ok ? 'passed' : 'FAILED'} in ${r.seconds} s: ${r.why}`);
      if (!r.ok) break;
    }
    results.push({ memoryMiB, ...r! });
    if (!r!.ok && !values.all) break;
  }
  const passed = results.filter((r) => r.ok).map((r) => r.memoryMiB);
  const failed = results.filter((r) => !r.ok);
  const largestFailure = failed.sort((a, b) => b.memoryMiB - a.memoryMiB)[0];
  console.log(`\nramdisk in qemu (TCG, SeaBIOS, 1 vCPU), boot + cleaning + ${values['image-mib']} MiB ${formats.join(' and ')} deploy through Ironic 21.4, sizes tried ${results.map((r) => r.memoryMiB).join(', ')} MiB:`);
  console.log(`  smallest that passed: ${passed.length ? `${Math.min(...passed)} MiB` : 'none'}`);
  console.log(`  largest that failed:  ${largestFailure ? `${largestFailure.memoryMiB} MiB: ${largestFailure.why}` : `none (down to ${Math.min(...sizes)} MiB)`}`);
} finally {
  await lab.stop();
}
