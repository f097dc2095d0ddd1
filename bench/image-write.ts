// Benchmark: our write_image pipeline against `curl | dd` (raw) and against
// `curl -o FILE && qemu-img convert` (qcow2), same image, same loop device,
// alternating, medians of N runs. The agent side runs in a child process so
// its peak RSS is its own.
//
// The disk is a loop device with direct I/O on (`losetup --direct-io=on`): what
// is written to it goes to the backing storage, as with a real disk. A loop
// device over the host's page cache has a second cache below it that no real
// disk has: `dd` closes while gigabytes sit there unwritten (the kernel flushes
// a block device's own cache on its last close, not the backing file's), while
// the agent's fdatasync must wait for them. That rig is measured too, at the
// end, for the headline pair only.
//
// Two floors bound the raw write (issue 19, Show it 3), measured in the same
// run, alternating with the agent: the disk's own speed (`dd if=IMAGE
// of=DISK bs=4M oflag=direct` with the image in the page cache: no network,
// no hash) and the hash alone on one core (`openssl dgst -sha256` of the
// cached image). The agent (download, sha256 in the same pass, O_DIRECT
// writes, fdatasync) is shown as a ratio to each; the aim is >= 0.9 of the
// lower. The source alone (`curl -s URL -o /dev/null` from the same server)
// is timed beside them: what the agent cannot go faster than here either.
// --floors-only runs just that comparison; --cpu-prof DIR has each agent child
// write a V8 CPU profile of its main thread (which receives, hashes and hands out the writes) into DIR.
//
//   npx tsx bench/image-write.ts [--size-mib 2048] [--repeats 5] [--write-mib 4] [--in-flight 2] [--floors-only] [--cpu-prof DIR] [--node-server]
//
// Root is needed (loop devices). Everything is created under a temp dir and
// removed at the end; only 127.0.0.1 is used.

import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, openSync, closeSync, readFileSync, writeFileSync, ftruncateSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const MiB = 1024 * 1024;
const args = process.argv.slice(2);
const flag = (name: string, dflt: number) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? Number(args[i + 1]) : dflt;
};

interface ChildResult {
  ms: number;
  /** user + system CPU of the whole child (every thread: libuv's write pool too) during writeImage. */
  cpuMs: number;
  /** CPU of the main thread alone: it receives, hashes and hands out the writes. */
  mainCpuMs: number;
  /** The machine's CPUs during the write: busy share of all of them, and their count. */
  hostBusy: number;
  hostCpus: number;
  maxRssKiB: number;
  bytesWritten: number;
  checksum: string;
}

/** Child mode: run writeImage once with the request from argv, report time and RSS. */
async function child(): Promise<void> {
  const { writeImage } = await import('../src/io/index.ts');
  if (args.includes('--idle')) {
    // Same process shape with nothing written: the RSS floor of node + tsx + our modules.
    process.stdout.write(`${JSON.stringify({ ms: 0, cpuMs: 0, mainCpuMs: 0, hostBusy: 0, hostCpus: 0, maxRssKiB: process.resourceUsage().maxRSS, bytesWritten: 0, checksum: '' })}\n`);
    return;
  }
  const req = JSON.parse(args[args.indexOf('--child') + 1]!);
  const t0 = performance.now();
  const cpu0 = process.cpuUsage();
  const main0 = mainThreadTicks();
  const host0 = hostTicks();
  const res = await writeImage(req);
  const ms = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  const host1 = hostTicks();
  const out: ChildResult = {
    ms,
    cpuMs: (cpu.user + cpu.system) / 1000,
    mainCpuMs: (mainThreadTicks() - main0) * TICK_MS,
    hostBusy: (host1.busy - host0.busy) / (host1.all - host0.all),
    hostCpus: host1.cpus,
    maxRssKiB: process.resourceUsage().maxRSS,
    bytesWritten: res.bytesWritten,
    checksum: res.checksum.value,
  };
  process.stdout.write(`${JSON.stringify(out)}\n`);
}

/** Linux's USER_HZ (clock ticks in /proc's stat files): 100 on every architecture Linux runs on. */
const TICK_MS = 10;

/** utime + stime of this process's main thread (its task id is the pid), in ticks. */
function mainThreadTicks(): number {
  const stat = readFileSync(`/proc/self/task/${process.pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return Number(fields[11]) + Number(fields[12]);
}

/** The machine's CPU ticks from /proc/stat: busy (all but idle and iowait) and all, summed over CPUs. */
function hostTicks(): { busy: number; all: number; cpus: number } {
  const lines = readFileSync('/proc/stat', 'utf8').split('\n');
  const t = lines[0]!.split(/\s+/).slice(1, 9).map(Number);
  const all = t.reduce((a, b) => a + b, 0);
  return { busy: all - t[3]! - t[4]!, all, cpus: lines.filter((l) => /^cpu\d/.test(l)).length };
}

function runAgent(req: object, idle = false): Promise<ChildResult> {
  const self = fileURLToPath(import.meta.url);
  return new Promise((resolve, reject) => {
    const prof = args.indexOf('--cpu-prof');
    const profArgs = prof >= 0 && !idle ? ['--cpu-prof', `--cpu-prof-dir=${args[prof + 1]}`] : [];
    const p = spawn(process.execPath, [...profArgs, '--import', 'tsx', self, '--child', JSON.stringify(req), ...(idle ? ['--idle'] : [])], {
      stdio: ['ignore', 'pipe', 'inherit'],
      env: { ...process.env, METAL_AGENT_LOG_LEVEL: 'warn' },
    });
    let out = '';
    p.stdout.on('data', (c) => (out += c));
    p.on('exit', (code) => (code === 0 ? resolve(JSON.parse(out.trim().split('\n').at(-1)!)) : reject(new Error(`agent child exit ${code}`))));
  });
}

/** Async on purpose: the image server lives in this process and must keep serving. */
function timeShell(cmd: string): Promise<number> {
  const t0 = performance.now();
  return new Promise((resolve, reject) => {
    const p = spawn('sh', ['-c', cmd], { stdio: ['ignore', 'ignore', 'inherit'] });
    p.on('exit', (code) => (code === 0 ? resolve(performance.now() - t0) : reject(new Error(`'${cmd}' exited ${code}`))));
  });
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const mbps = (bytes: number, ms: number) => (bytes / MiB / (ms / 1000)).toFixed(0);

async function main(): Promise<void> {
  if (args.includes('--child')) return child();
  const sizeMiB = flag('size-mib', 2048);
  const repeats = flag('repeats', 5);
  const floorsOnly = args.includes('--floors-only');
  const { DEFAULT_WRITE_BYTES, DEFAULT_WRITE_BUFFERS } = await import('../src/io/block-sink.ts');
  // The agent's own write size and buffer count unless asked for others.
  const tuning = { writeBytes: flag('write-mib', DEFAULT_WRITE_BYTES / MiB) * MiB, inFlight: flag('in-flight', DEFAULT_WRITE_BUFFERS) };
  const size = sizeMiB * MiB;
  const work = mkdtempSync(join(tmpdir(), 'bench-image-write-'));
  const { ImageServer } = await import('../test/helpers/http-image-server.ts');
  const { makeImage, startBusyboxServer } = await import('./standalone-writes.ts');
  const server = await new ImageServer().start();
  // The headline runs fetch from busybox httpd (sendfile), so that the server takes as little of
  // the CPU as one on another machine would; --node-server uses the test suite's server instead.
  const nodeServer = args.includes('--node-server');
  let busybox: import('./standalone-writes.ts').BusyboxServer | undefined;
  let loop: string | undefined;
  const cleanUp = () => {
    void busybox?.stop();
    if (loop) execFileSync('losetup', ['-d', loop]);
    loop = undefined;
    rmSync(work, { recursive: true, force: true });
  };
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.once(sig, () => {
      cleanUp();
      process.exit(130);
    });
  }
  try {
    console.log(`making a ${sizeMiB} MiB image...`);
    const rawPath = join(work, 'image.raw');
    const rawSha = makeImage(rawPath, size, 64 * MiB);
    const qcowPath = join(work, 'image.qcow2');
    execFileSync('qemu-img', ['convert', '-f', 'raw', '-O', 'qcow2', rawPath, qcowPath]);
    const qcowSha = execFileSync('sha256sum', [qcowPath]).toString().split(' ')[0]!;
    if (!nodeServer) busybox = await startBusyboxServer(work);
    const rawUrl = busybox ? `${busybox.url}/image.raw` : server.serve('/image.raw', { path: rawPath });
    const qcowUrl = busybox ? `${busybox.url}/image.qcow2` : server.serve('/image.qcow2', { path: qcowPath });
    console.log(`image server: ${busybox ? 'busybox httpd (sendfile)' : "the test suite's Node server"}`);

    // Room for the image plus a staged qcow2 beside it.
    const diskFile = join(work, 'disk.img');
    const deviceSize = 2 * size + 256 * MiB;
    const fd = openSync(diskFile, 'w');
    ftruncateSync(fd, deviceSize);
    closeSync(fd);
    loop = execFileSync('losetup', ['-f', '--show', '--direct-io=on', diskFile]).toString().trim();
    const dio = () => execFileSync('losetup', ['-n', '-O', 'DIO', loop!]).toString().trim() === '1';
    console.log(`disk: ${loop} over ${diskFile}, direct I/O ${dio() ? 'on' : 'off (the backing filesystem refused it)'}`);
    // Allocate the backing file once, untimed: otherwise whoever writes first
    // pays for the sparse file's block allocation.
    console.log('warming up the loop device...');
    await timeShell(`dd if=/dev/zero of=${loop} bs=4M count=${deviceSize / (4 * MiB)} oflag=direct status=none`);
    const base = { device: loop, deviceSize, deepInspection: true, retries: 3, retryIntervalSec: 1, timeoutSec: 60, tuning };

    const agentRaw: ChildResult[] = [];
    const ddRaw: number[] = [];
    const ddDirect: number[] = [];
    const ddPlain: number[] = [];
    const ddHashed: number[] = [];
    const agentQcow: ChildResult[] = [];
    const qemuQcow: number[] = [];
    const floorDisk: number[] = [];
    const floorHash: number[] = [];
    const sourceOnly: number[] = [];
    const staged = join(work, 'dl.qcow2');
    // The floors read the image from the page cache: make sure it is there (24 GiB of RAM here; it was just written).
    await timeShell(`cat ${rawPath} >/dev/null`);
    for (let i = 0; i < repeats; i++) {
      const a = await runAgent({ ...base, urls: [rawUrl], diskFormat: 'raw', checksum: { algo: 'sha256', value: rawSha } });
      if (a.checksum !== rawSha || a.bytesWritten !== size) throw new Error('agent raw run wrote the wrong thing');
      agentRaw.push(a);
      floorDisk.push(await timeShell(`dd if=${rawPath} of=${loop} bs=4M oflag=direct status=none`));
      floorHash.push(await timeShell(`openssl dgst -sha256 ${rawPath} >/dev/null`));
      sourceOnly.push(await timeShell(`curl -s ${rawUrl} -o /dev/null`));
      if (floorsOnly) {
        console.log(`run ${i + 1}: raw agent ${a.ms.toFixed(0)} ms (cpu ${a.cpuMs.toFixed(0)} ms) / dd from cache ${floorDisk.at(-1)!.toFixed(0)} ms / openssl sha256 ${floorHash.at(-1)!.toFixed(0)} ms / curl -o /dev/null ${sourceOnly.at(-1)!.toFixed(0)} ms`);
        continue;
      }
      ddRaw.push(await timeShell(`curl -s ${rawUrl} | dd of=${loop} bs=4M iflag=fullblock conv=fsync status=none`));
      ddDirect.push(await timeShell(`curl -s ${rawUrl} | dd of=${loop} bs=4M iflag=fullblock oflag=direct status=none`));
      // The literal `curl | dd`: ends when the data is in the page cache, not on the disk.
      ddPlain.push(await timeShell(`curl -s ${rawUrl} | dd of=${loop} bs=4M status=none`));
      await timeShell(`sync ${loop}`);
      // The same work as the agent's: the served bytes hashed in the same pass, on the disk at the end.
      ddHashed.push(
        await timeShell(
          `f=${join(work, 'hash.fifo')}; mkfifo $f; sha256sum $f >/dev/null & ` +
            `curl -s ${rawUrl} | tee $f | dd of=${loop} bs=4M iflag=fullblock oflag=direct status=none; wait; rm -f $f`,
        ),
      );
      const q = await runAgent({ ...base, urls: [qcowUrl], diskFormat: 'qcow2', checksum: { algo: 'sha256', value: qcowSha } });
      agentQcow.push(q);
      qemuQcow.push(
        await timeShell(`curl -s -o ${staged} ${qcowUrl} && sha256sum ${staged} >/dev/null && qemu-img convert -n -O raw ${staged} ${loop} && sync ${loop}; rm -f ${staged}`),
      );
      console.log(
        `run ${i + 1}: raw agent ${a.ms.toFixed(0)} ms (cpu ${a.cpuMs.toFixed(0)} ms) / dd from cache ${floorDisk.at(-1)!.toFixed(0)} ms / openssl sha256 ${floorHash.at(-1)!.toFixed(0)} ms / curl|dd fsync ${ddRaw.at(-1)!.toFixed(0)} ms, ` +
          `direct ${ddDirect.at(-1)!.toFixed(0)} ms, unsynced ${ddPlain.at(-1)!.toFixed(0)} ms; ` +
          `qcow2 agent ${q.ms.toFixed(0)} ms / curl+sha256sum+qemu-img ${qemuQcow.at(-1)!.toFixed(0)} ms`,
      );
    }
    const aRaw = median(agentRaw.map((r) => r.ms));
    const fDisk = median(floorDisk);
    const fHash = median(floorHash);
    const lower = Math.max(fDisk, fHash); // the slower floor is the lower throughput
    console.log(`\nthe raw write against its floors, ${sizeMiB} MiB image, medians of ${repeats} (same run, alternating):`);
    console.log(`raw   agent (http, sha256 in the same pass, O_DIRECT, fdatasync): ${aRaw.toFixed(0)} ms = ${mbps(size, aRaw)} MiB/s, cpu ${median(agentRaw.map((r) => r.cpuMs)).toFixed(0)} ms`);
    console.log(`floor disk: dd if=IMAGE of=DISK bs=4M oflag=direct (image cached): ${fDisk.toFixed(0)} ms = ${mbps(size, fDisk)} MiB/s; agent/floor ${(fDisk / aRaw).toFixed(3)}`);
    console.log(`floor hash: openssl dgst -sha256 IMAGE (cached, one core):          ${fHash.toFixed(0)} ms = ${mbps(size, fHash)} MiB/s; agent/floor ${(fHash / aRaw).toFixed(3)}`);
    console.log(`agent / the lower floor (${fDisk >= fHash ? 'disk' : 'hash'}): ${(lower / aRaw).toFixed(3)} (aim >= 0.9)`);
    // Where the write waits: its main thread receives and hashes every byte, so it is the limit
    // when it is on a CPU most of the write; the rest of the machine (this server, the loop
    // device's copies, the kernel's network path) shares the other CPUs, as a real node would not.
    const mainBusy = median(agentRaw.map((r) => r.mainCpuMs / r.ms));
    const host = median(agentRaw.map((r) => r.hostBusy));
    console.log(
      `where the agent's write goes: its main thread on a CPU ${(100 * mainBusy).toFixed(0)}% of the write (${median(agentRaw.map((r) => r.mainCpuMs)).toFixed(0)} ms: receive + hash);` +
        ` the machine's ${agentRaw[0]!.hostCpus} CPUs ${(100 * host).toFixed(0)}% busy (server, loop device, network, writes included)`,
    );
    const src = median(sourceOnly);
    console.log(`the source alone: curl -s URL -o /dev/null (same server): ${src.toFixed(0)} ms = ${mbps(size, src)} MiB/s; agent/source ${(src / aRaw).toFixed(3)}`);
    if (floorsOnly) return;
    const dRaw = median(ddRaw);
    const aQ = median(agentQcow.map((r) => r.ms));
    const bQ = median(qemuQcow);
    console.log(`\nimage ${sizeMiB} MiB, writes ${tuning.writeBytes / MiB} MiB x ${tuning.inFlight} in flight, medians of ${repeats}:`);
    const dDirect = median(ddDirect);
    const dPlain = median(ddPlain);
    console.log(`raw   agent (sha256 verified, fdatasync): ${aRaw.toFixed(0)} ms = ${mbps(size, aRaw)} MiB/s`);
    console.log(`raw   curl -s | dd bs=4M:                  ${dPlain.toFixed(0)} ms = ${mbps(size, dPlain)} MiB/s`);
    console.log(`raw   throughput ratio agent/baseline: ${(dPlain / aRaw).toFixed(3)}`);
    console.log(`raw   curl -s | dd bs=4M conv=fsync:       ${dRaw.toFixed(0)} ms = ${mbps(size, dRaw)} MiB/s (ratio ${(dRaw / aRaw).toFixed(3)})`);
    console.log(`raw   curl -s | dd bs=4M oflag=direct:      ${dDirect.toFixed(0)} ms = ${mbps(size, dDirect)} MiB/s (ratio ${(dDirect / aRaw).toFixed(3)})`);
    const dHashed = median(ddHashed);
    console.log(`raw   curl -s | tee FIFO | dd oflag=direct, sha256sum FIFO: ${dHashed.toFixed(0)} ms = ${mbps(size, dHashed)} MiB/s (ratio ${(dHashed / aRaw).toFixed(3)})`);
    console.log(`qcow2 agent (staged on disk, verified, qemu-img): ${aQ.toFixed(0)} ms`);
    console.log(`qcow2 curl -o + sha256sum + qemu-img convert + sync: ${bQ.toFixed(0)} ms`);
    console.log(`qcow2 throughput ratio agent/baseline: ${(bQ / aQ).toFixed(3)}`);
    const idle = await runAgent({}, true);
    const peakMiB = (runs: ChildResult[]) => (Math.max(...runs.map((r) => r.maxRssKiB)) / 1024).toFixed(0);
    console.log(`agent child RSS with modules loaded, before any write: ${(idle.maxRssKiB / 1024).toFixed(0)} MiB`);
    console.log(`agent peak RSS, ${sizeMiB} MiB image: raw ${peakMiB(agentRaw)} MiB, qcow2 ${peakMiB(agentQcow)} MiB`);

    // Memory must not grow with the image: the same writes from an image an
    // eighth of the size should peak at the same RSS.
    const smallMiB = Math.max(64, sizeMiB / 8);
    const smallPath = join(work, 'small.raw');
    const smallSha = makeImage(smallPath, smallMiB * MiB, 64 * MiB);
    const smallQcow = join(work, 'small.qcow2');
    execFileSync('qemu-img', ['convert', '-f', 'raw', '-O', 'qcow2', smallPath, smallQcow]);
    const smallQcowSha = execFileSync('sha256sum', [smallQcow]).toString().split(' ')[0]!;
    const sRaw = await runAgent({ ...base, urls: [server.serve('/small.raw', { path: smallPath })], diskFormat: 'raw', checksum: { algo: 'sha256', value: smallSha } });
    if (sRaw.checksum !== smallSha) throw new Error('agent small raw run wrote the wrong thing');
    const sQcow = await runAgent({ ...base, urls: [server.serve('/small.qcow2', { path: smallQcow })], diskFormat: 'qcow2', checksum: { algo: 'sha256', value: smallQcowSha } });
    console.log(`agent peak RSS, ${smallMiB} MiB image: raw ${peakMiB([sRaw])} MiB, qcow2 ${peakMiB([sQcow])} MiB`);
    console.log(`agent peak RSS growth for ${sizeMiB / smallMiB}x the image: raw ${(Number(peakMiB(agentRaw)) - Number(peakMiB([sRaw]))).toFixed(0)} MiB, qcow2 ${(Number(peakMiB(agentQcow)) - Number(peakMiB([sQcow]))).toFixed(0)} MiB`);

    // The headline pair over https (Metal3 with TLS, object stores): the agent
    // decrypts into its write buffers; curl decrypts, dd copies.
    const { generateSelfSigned } = await import('../src/api/tls.ts');
    const tls = generateSelfSigned('127.0.0.1');
    const caFile = join(work, 'ca.pem');
    writeFileSync(caFile, tls.cert);
    const secure = await new ImageServer(tls).start();
    const httpsUrl = secure.serve('/image.raw', { path: rawPath });
    const httpsAgent: number[] = [];
    const httpsDd: number[] = [];
    try {
      for (let i = 0; i < repeats; i++) {
        const a = await runAgent({ ...base, urls: [httpsUrl], ca: tls.cert, diskFormat: 'raw', checksum: { algo: 'sha256', value: rawSha } });
        if (a.checksum !== rawSha) throw new Error('agent https run wrote the wrong thing');
        httpsAgent.push(a.ms);
        httpsDd.push(await timeShell(`curl -s --cacert ${caFile} ${httpsUrl} | dd of=${loop} bs=4M status=none`));
      }
    } finally {
      await secure.stop();
    }
    const hA = median(httpsAgent);
    const hD = median(httpsDd);
    console.log(`\nhttps, medians of ${repeats}:`);
    console.log(`raw   agent ${hA.toFixed(0)} ms, curl -s --cacert | dd bs=4M ${hD.toFixed(0)} ms: ratio ${(hD / hA).toFixed(3)}`);

    // The same headline pair with the loop device over the host's page cache.
    execFileSync('losetup', ['--direct-io=off', loop]);
    const cachedAgent: number[] = [];
    const cachedDd: number[] = [];
    for (let i = 0; i < repeats; i++) {
      const a = await runAgent({ ...base, urls: [rawUrl], diskFormat: 'raw', checksum: { algo: 'sha256', value: rawSha } });
      if (a.checksum !== rawSha) throw new Error('agent raw run wrote the wrong thing');
      cachedAgent.push(a.ms);
      cachedDd.push(await timeShell(`curl -s ${rawUrl} | dd of=${loop} bs=4M status=none`));
      await timeShell(`sync ${loop}`);
    }
    const cA = median(cachedAgent);
    const cD = median(cachedDd);
    console.log(`\nloop device over the host page cache (direct I/O ${dio() ? 'on' : 'off'}), medians of ${repeats}:`);
    console.log(`raw   agent ${cA.toFixed(0)} ms, curl -s | dd bs=4M ${cD.toFixed(0)} ms: ratio ${(cD / cA).toFixed(3)}`);
    console.log('      (dd ends with the image still in the host cache; the agent waits until it is written)');
  } finally {
    await busybox?.stop();
    await server.stop();
    cleanUp();
  }
}

await main();
