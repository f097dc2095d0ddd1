import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AGENT_VERSION } from '../../src/version.ts';
import type { AgentProcess } from '../helpers/agent-process.ts';
import { configDriveHostname, expectDiskHoldsImage, pemBody, servedCertificate } from '../helpers/deployed-disk.ts';
import type { ImageServer } from '../helpers/http-image-server.ts';
import { compress, makeRawImage, sha256File, toQcow2 } from '../helpers/images.ts';
import { RELEASES, type AgentSeen, type IronicRelease, type ReleaseIronic } from '../helpers/ironic-release.ts';
import { metadataLeft, type LoopDisk } from '../helpers/loop-disk.ts';
import { startReleaseLab, type ReleaseLab } from '../helpers/release-lab.ts';

// One suite, run against each Ironic release (ironic-21.4.test.ts and
// ironic-29.0.test.ts call it) with the same conductor configuration: Ironic's
// defaults (no fast track), one erase at a time. Only the release differs, and
// the agent is the same process with the same flags: it adapts to what each
// conductor sends. Every test name starts with "Ironic <release>:", which is
// how `make test` reports the results per release (scripts/release-report.ts).
//
//   - automated cleaning to available (two loop disks of random data end as zeroes);
//   - the https callback, verified by Ironic with the certificate the agent sent;
//   - a raw image + config drive deploy to active (byte-identical disk);
//   - the token on GETs of /v1/commands: whatever the release sends works, and once a
//     token came with a GET, a GET without one is refused (IPA 10's rule);
//   - rebuilds from qcow2, zstd and gzip images, and one checked by a checksums file named by
//     URL; a wrong checksum fails the deploy.

const IMAGE_MIB = 24;

interface ApiRequest {
  method: string;
  path: string;
  status: number;
  token: 'given' | 'none';
}

/** The agent's debug access log (src/api/server.ts): one line per request, token given or not. */
function apiRequests(output: string): ApiRequest[] {
  const out: ApiRequest[] = [];
  for (const line of output.split('\n')) {
    if (!line.includes('"msg":"api request"')) continue;
    try {
      out.push(JSON.parse(line) as ApiRequest);
    } catch {
      // a partial line while the agent writes
    }
  }
  return out;
}

export function ironicReleaseSuite(release: IronicRelease, mac: string): void {
  const traits = RELEASES[release];
  describe(`Ironic ${release}: cleaning, TLS, raw + config drive deploy, token on GETs, image formats`, () => {
    let lab: ReleaseLab;
    let ironic: ReleaseIronic;
    let agent: AgentProcess;
    let disks: LoopDisk[];
    let server: ImageServer;
    let uuid: string;
    let dir: string;
    let raw: string;
    let seen: AgentSeen;
    const watch = (states: string[], timeoutSec: number) => lab.watch(states, timeoutSec);
    const getCommands = async (token?: string) => (await lab.getCommands(token)).status;

    let checksumForm: 'hash' | 'url' | undefined;

    /** Deploys (or rebuilds) from `path`, checked by sha256 (os_hash_*), or by a checksums file named by URL (image_checksum). */
    async function deploy(path: string, opts: { format: string; hash?: string; checksumUrl?: string; hostname: string; rebuild?: boolean }) {
      const url = server.serve(`/${path.split('/').pop()}`, { path });
      const [set, unset] = opts.checksumUrl
        ? [[`image_checksum=${opts.checksumUrl}`], ['image_os_hash_algo', 'image_os_hash_value']]
        : [['image_os_hash_algo=sha256', `image_os_hash_value=${opts.hash ?? (await sha256File(path))}`], ['image_checksum']];
      // Ironic refuses to unset what is not set: only the other form, and only once it was used.
      if (checksumForm && checksumForm !== (opts.checksumUrl ? 'url' : 'hash')) {
        await ironic.baremetal(['node', 'unset', uuid, ...unset.flatMap((k) => ['--instance-info', k])]);
      }
      checksumForm = opts.checksumUrl ? 'url' : 'hash';
      await ironic.baremetal([
        'node', 'set', uuid,
        '--instance-info', `image_source=${url}`,
        '--instance-info', `image_disk_format=${opts.format}`,
        ...set.flatMap((kv) => ['--instance-info', kv]),
      ]);
      const cd = JSON.stringify({ meta_data: { hostname: opts.hostname } });
      await ironic.baremetal(['node', opts.rebuild ? 'rebuild' : 'deploy', uuid, '--config-drive', cd]);
      if (opts.rebuild) await watch(['deploying', 'wait call-back', 'deploy failed'], 60);
      return watch(['active', 'deploy failed'], 300);
    }

    function expectDeployed(node: Record<string, any>, hostname: string) {
      expect(node.last_error ?? null, agent.output().slice(-3000)).toBeNull();
      expect(node.provision_state).toBe('active');
      expectDiskHoldsImage(disks[0]!.device, raw);
      return configDriveHostname(disks[0]!.device).then((h) => expect(h).toBe(hostname));
    }

    beforeAll(async () => {
      // Random data everywhere, then a partition table and a filesystem on top.
      lab = await startReleaseLab(release, {
        mac,
        diskMiB: [96, 64],
        randomFill: true,
        ironic: { extraConf: '[deploy]\ndisk_erasure_concurrency = 1\n' },
        beforeAgent: async (tmp, fresh) => {
          // What cleaning must remove is there before the agent (and cleaning) starts.
          for (const d of fresh) expect(await metadataLeft(d.device)).not.toEqual([]);
          raw = join(tmp, 'disk.raw');
          await makeRawImage(raw, IMAGE_MIB);
        },
      });
      ({ ironic, agent, disks, server, uuid, dir, seen } = lab);
    }, 900_000);

    afterAll(async () => {
      await lab?.stop();
    });

    it(`the conductor is Ironic ${release} (OpenStack ${traits.openstack})`, async () => {
      expect(await ironic.packageVersion()).toMatch(traits.packageVersion);
      const rootDoc = (await (await fetch(`${ironic.url}/`)).json()) as { default_version: { version: string } };
      expect(Number(rootDoc.default_version.version.split('.')[1])).toBeGreaterThanOrEqual(traits.minApiVersion);
    });

    it('automated cleaning: clean wait -> available; both disks lose their metadata and read back as zeroes', async () => {
      const node = await watch(['available', 'clean failed'], 300);
      expect(node.last_error ?? null, agent.output().slice(-3000)).toBeNull();
      expect(node.provision_state).toBe('available');
      for (const d of disks) expect(await metadataLeft(d.device)).toEqual([]);
      // erase_devices (priority 10) with Ironic's defaults (1 random pass, zeroize): every byte is zero.
      for (const d of disks) expect(readFileSync(d.device).every((b) => b === 0), d.device).toBe(true);
      // Ironic passes [deploy]disk_erasure_concurrency (1 here): never more disks at once.
      let running = 0;
      let most = 0;
      for (const line of agent.output().split('\n')) {
        if (line.includes('"msg":"disk erase started"')) most = Math.max(most, ++running);
        if (line.includes('"msg":"disk erase finished"')) running--;
      }
      expect(most).toBe(1);
    }, 320_000);

    it('TLS: Ironic recorded our version and an https callback, and verified us with the certificate we sent', async () => {
      expect(seen.version).toBe(AGENT_VERSION);
      expect(seen.agentUrl).toBe(`https://127.0.0.1:${agent.port}`);
      expect(pemBody(seen.verifyCa!)).toBe(await servedCertificate(agent.port));
      expect(ironic.log()).not.toMatch(/does not use TLS/);
    });

    it('raw image + config drive: deploying -> active, disk holds the image, config-2 holds the meta_data', async () => {
      const before = apiRequests(agent.output()).length;
      const node = await deploy(raw, { format: 'raw', hostname: `raw-${release}` });
      await expectDeployed(node, `raw-${release}`);
      // Ironic followed the deploy steps by reading their results.
      const reads = apiRequests(agent.output()).slice(before).filter((r) => r.method === 'GET' && r.path.startsWith('/v1/commands'));
      expect(reads.length).toBeGreaterThan(0);
    }, 320_000);

    it(
      traits.tokenOnGets
        ? 'token on GETs: Ironic sends it, every read succeeded; since then a GET without it (or with a wrong one) gets 401'
        : 'token on GETs: Ironic sends none, every read succeeded; a token-less GET still works, a wrong token gets 401 without locking Ironic out',
      async () => {
        const reads = apiRequests(agent.output()).filter((r) => r.method === 'GET' && r.path.startsWith('/v1/commands'));
        expect(reads.length).toBeGreaterThan(0);
        expect(reads.filter((r) => r.status !== 200)).toEqual([]);
        expect(new Set(reads.map((r) => r.token))).toEqual(new Set([traits.tokenOnGets ? 'given' : 'none']));
        // The agent still holds the deploy's token (Ironic dropped it when the node went active).
        const token = seen.tokens[seen.tokens.length - 1]!;
        expect(token.length).toBeGreaterThanOrEqual(32);
        expect(await getCommands('x'.repeat(token.length))).toBe(401);
        if (traits.tokenOnGets) {
          expect(await getCommands()).toBe(401);
          expect(await getCommands(token)).toBe(200);
        } else {
          // Only the conductor's own token switches the rule on (IPA takes any token), so the
          // wrong one above did not, and the rebuilds below still run with token-less reads.
          expect(await getCommands()).toBe(200);
        }
      },
    );

    it('rebuild from a qcow2 image', async () => {
      const qcow = join(dir, 'disk.qcow2');
      await toQcow2(raw, qcow);
      await execa('wipefs', ['-a', disks[0]!.device]);
      await expectDeployed(await deploy(qcow, { format: 'qcow2', hostname: `qcow-${release}`, rebuild: true }), `qcow-${release}`);
    }, 320_000);

    for (const kind of ['zstd', 'gzip'] as const) {
      it(`rebuild from a ${kind}-compressed raw image`, async () => {
        const packed = await compress(raw, kind);
        await expectDeployed(await deploy(packed, { format: 'raw', hostname: `${kind}-${release}`, rebuild: true }), `${kind}-${release}`);
      }, 320_000);
    }

    it('rebuild with the checksum given as a URL of a checksums file (image_checksum=URL)', async () => {
      const sums = `${'0'.repeat(64)}  other.img\n${await sha256File(raw)}  disk.raw\n`;
      const checksumUrl = server.serve('/SHA256SUMS', { body: sums });
      const node = await deploy(raw, { format: 'raw', checksumUrl, hostname: `sums-${release}`, rebuild: true });
      await expectDeployed(node, `sums-${release}`);
      expect(server.requests.some((r) => r.path === '/SHA256SUMS' && r.status === 200)).toBe(true);
    }, 320_000);

    it('a wrong checksum fails the deploy with a clear error', async () => {
      const node = await deploy(raw, { format: 'raw', hostname: 'bad', hash: 'a'.repeat(64), rebuild: true });
      expect(node.provision_state).toBe('deploy failed');
      expect(node.last_error).toMatch(/checksum/i);
    }, 320_000);
  });
}
