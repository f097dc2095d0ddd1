// The executable's RSS while it writes an image (issue 19, Show it 1), for
// bench/footprint.ts --deploy-mib: the agent runs standalone with one loop
// device allowed; each image is written by deploy.execute_deploy_step
// write_image through its API, as Ironic's direct deploy asks, while VmRSS is
// sampled every 20 ms.
import { execFileSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { ImageServer } from '../test/helpers/http-image-server.ts';
import { MiB, directLoop, removeRig, makeImage, procStatus, sha256File, startStandaloneAgent, withPeaks, writeThroughApi, type TestImage } from './standalone-writes.ts';

export async function deployPeaks(binary: string, sizeMiB: number, env: Record<string, string> = {}): Promise<void> {
  const work = mkdtempSync(join(tmpdir(), 'metal-agent-footprint-deploy-'));
  const server = await new ImageServer().start();
  let loop: string | undefined;
  try {
    const images: TestImage[] = [];
    for (const mib of [sizeMiB, Math.max(64, sizeMiB / 8)]) {
      const raw = join(work, `${mib}.raw`);
      const sha = makeImage(raw, mib * MiB);
      const qcow = join(work, `${mib}.qcow2`);
      execFileSync('qemu-img', ['convert', '-f', 'raw', '-O', 'qcow2', raw, qcow]);
      images.push({ label: `${mib} MiB raw`, url: server.serve(`/${mib}.raw`, { path: raw }), format: 'raw', sha });
      images.push({ label: `${mib} MiB qcow2`, url: server.serve(`/${mib}.qcow2`, { path: qcow }), format: 'qcow2', sha: sha256File(qcow) });
    }
    // IPA's root disk rule wants more than 4 GiB; qcow2 is staged beside the image on the disk.
    loop = directLoop(join(work, 'disk.img'), Math.max(6144, 2 * sizeMiB + 1024));
    const agent = await startStandaloneAgent(binary, loop, { env });
    const pid = agent.child.pid!;
    try {
      await sleep(5000); // start-up done (the agent collects its garbage then), as at idle
      console.log(`SEA ${binary}, writing images through its API (loop device ${loop}):`);
      for (const img of images) {
        const before = procStatus(pid);
        const { result, peakRss, peakAnon } = await withPeaks(pid, () => writeThroughApi(agent.url, img));
        const m = (k: number) => (k / 1024).toFixed(1);
        await sleep(3000); // the agent gives a command's memory back when it ends (lever 12): what stays
        const after = procStatus(pid);
        console.log(
          `  ${img.label}: RSS before ${m(before.rss)} MiB, peak during ${m(peakRss)} MiB (+${m(peakRss - before.rss)}), 3 s after ${m(after.rss)} MiB;` +
            ` anonymous ${m(before.anon)} -> ${m(peakAnon)} MiB; ${(result.ms / 1000).toFixed(1)} s`,
        );
      }
    } finally {
      await agent.stop();
    }
  } finally {
    await removeRig(server, [loop], work);
  }
}
