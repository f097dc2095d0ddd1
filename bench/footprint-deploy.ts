// The executable's RSS while it writes an image (issue 19, Show it 1), for
// bench/footprint.ts --deploy-mib: the agent runs standalone with one loop
// device allowed; each image is written by deploy.execute_deploy_step
// write_image through its API, as Ironic's direct deploy asks, while VmRSS is
// sampled every 20 ms.
import { spawn, execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { freePort } from '../test/helpers/ironic.ts';
import { ImageServer } from '../test/helpers/http-image-server.ts';
import { agentEnv } from '../test/helpers/agent-env.ts';

const MiB = 1024 * 1024;

function vmRssKiB(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? NaN);
}

function anonKiB(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(/RssAnon:\s+(\d+)/.exec(status)?.[1] ?? NaN);
}

/** Incompressible data, every MiB different; returns its sha256. */
function makeImage(path: string, size: number): string {
  const pool = randomBytes(16 * MiB);
  const fd = openSync(path, 'w');
  const hash = createHash('sha256');
  const block = Buffer.allocUnsafe(MiB);
  for (let off = 0; off < size; off += MiB) {
    pool.copy(block, 0, off % (16 * MiB), (off % (16 * MiB)) + MiB);
    block.writeDoubleLE(off, 0);
    block.writeDoubleLE(Math.random(), 8);
    hash.update(block);
    writeSync(fd, block);
  }
  closeSync(fd);
  return hash.digest('hex');
}

const sha256File = (path: string) => execFileSync('sha256sum', [path]).toString().split(' ')[0]!;

async function command(url: string, body: object): Promise<Record<string, any>> {
  const r = await fetch(`${url}/v1/commands/?wait=true`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  const result = (await r.json()) as Record<string, any>;
  if (!r.ok) throw new Error(`POST /v1/commands: ${r.status} ${JSON.stringify(result)}`);
  return result;
}

/** Polls until the command is no longer RUNNING (wait=true may answer first). */
async function finished(url: string, id: string): Promise<Record<string, any>> {
  for (;;) {
    const r = (await (await fetch(`${url}/v1/commands/${id}`)).json()) as Record<string, any>;
    if (r.command_status !== 'RUNNING') return r;
    await sleep(200);
  }
}

export async function deployPeaks(binary: string, sizeMiB: number): Promise<void> {
  const work = mkdtempSync(join(tmpdir(), 'metal-agent-footprint-deploy-'));
  const server = await new ImageServer().start();
  let loop: string | undefined;
  try {
    const images: Array<{ label: string; url: string; format: string; sha: string }> = [];
    for (const mib of [sizeMiB, Math.max(64, sizeMiB / 8)]) {
      const raw = join(work, `${mib}.raw`);
      const sha = makeImage(raw, mib * MiB);
      const qcow = join(work, `${mib}.qcow2`);
      execFileSync('qemu-img', ['convert', '-f', 'raw', '-O', 'qcow2', raw, qcow]);
      images.push({ label: `${mib} MiB raw`, url: server.serve(`/${mib}.raw`, { path: raw }), format: 'raw', sha });
      images.push({ label: `${mib} MiB qcow2`, url: server.serve(`/${mib}.qcow2`, { path: qcow }), format: 'qcow2', sha: sha256File(qcow) });
    }
    // IPA's root disk rule wants more than 4 GiB; qcow2 is staged beside the image on the disk.
    const diskFile = join(work, 'disk.img');
    execFileSync('truncate', ['-s', `${Math.max(6144, 2 * sizeMiB + 1024)}M`, diskFile]);
    loop = execFileSync('losetup', ['-f', '--show', '--direct-io=on', diskFile]).toString().trim();

    const port = await freePort();
    const child = spawn(binary, [
      '--standalone', '--no-enable-auto-tls', '--cmdline-file', '/dev/null',
      '--listen-host', '127.0.0.1', '--listen-port', String(port), '--allowed-devices', loop,
    ], { stdio: 'ignore', env: { ...process.env, ...agentEnv(), METAL_AGENT_LOG_LEVEL: 'warn' } });
    const url = `http://127.0.0.1:${port}`;
    try {
      for (;;) {
        if (child.exitCode !== null) throw new Error(`${binary} exited ${child.exitCode}`);
        if (await fetch(`${url}/v1/status`).then((r) => r.ok, () => false)) break;
        await sleep(50);
      }
      await sleep(5000); // start-up garbage collected, as at idle
      console.log(`SEA ${binary}, writing images through its API (loop device ${loop}):`);
      for (const img of images) {
        const idle = vmRssKiB(child.pid!);
        const idleAnon = anonKiB(child.pid!);
        let peak = idle;
        let peakAnon = idleAnon;
        const sampler = setInterval(() => {
          peak = Math.max(peak, vmRssKiB(child.pid!));
          peakAnon = Math.max(peakAnon, anonKiB(child.pid!));
        }, 20);
        const t0 = performance.now();
        const started = await command(url, {
          name: 'deploy.execute_deploy_step',
          params: {
            step: {
              interface: 'deploy', step: 'write_image',
              args: { image_info: { urls: [img.url], disk_format: img.format, os_hash_algo: 'sha256', os_hash_value: img.sha, image_type: 'whole-disk' } },
            },
            node: { uuid: 'footprint', properties: {}, instance_info: {}, driver_internal_info: {} },
            ports: [],
          },
        });
        const done = await finished(url, started.id as string);
        const ms = performance.now() - t0;
        clearInterval(sampler);
        if (done.command_status !== 'SUCCEEDED') throw new Error(`${img.label}: ${JSON.stringify(done.command_error)}`);
        console.log(`  ${img.label}: RSS before ${(idle / 1024).toFixed(1)} MiB, peak during ${(peak / 1024).toFixed(1)} MiB (+${((peak - idle) / 1024).toFixed(1)}); anonymous ${(idleAnon / 1024).toFixed(1)} -> ${(peakAnon / 1024).toFixed(1)} MiB; ${(ms / 1000).toFixed(1)} s`);
      }
    } finally {
      child.kill('SIGTERM');
      if (child.exitCode === null) await new Promise((r) => child.once('exit', r));
    }
  } finally {
    await server.stop();
    if (loop) execFileSync('losetup', ['-d', loop]);
    rmSync(work, { recursive: true, force: true });
  }
}
