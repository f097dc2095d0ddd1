import { connect, type ConnectionOptions } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startIronicRelease, type ReleaseIronic } from '../helpers/ironic-release.ts';
import { startReleaseLab, type ReleaseLab } from '../helpers/release-lab.ts';

// What Ironic 39.0 (OpenStack 2026.2) asks of an agent, with real conductors:
//   - two API URLs, the first an Ironic whose ramdisk endpoints are off
//     ([api]enable_ramdisk_endpoints = false: 403 to lookup and heartbeat):
//     the agent goes on with the second one, and cleaning ends in available;
//   - the lookup's tls_min_version (39.0's [agent]tls_minimum_version
//     defaults to "1.3"): the agent's HTTPS server refuses TLS 1.2 from then
//     on, and Ironic (which talks 1.3 to it) still drives every command.

describe('Ironic 39.0: a 403 API first, and the TLS floor the lookup sets', () => {
  let off: ReleaseIronic;
  let lab: ReleaseLab;

  beforeAll(async () => {
    off = await startIronicRelease('39.0', { extraConf: '[api]\nenable_ramdisk_endpoints = false\n' });
    lab = await startReleaseLab('39.0', { mac: '52:54:00:a0:39:03', diskMiB: [32], agentApiUrl: (url) => `${off.url},${url}` });
  }, 900_000);

  afterAll(async () => {
    await lab?.stop();
    await off?.stop();
  });

  it('the first API refuses the lookup with 403; the agent uses the second, and cleaning ends in available', async () => {
    const node = await lab.watch(['available', 'clean failed'], 300);
    expect(node.last_error ?? null, lab.agent.output().slice(-3000)).toBeNull();
    expect(node.provision_state).toBe('available');
    expect(off.log()).toMatch(/GET \/v1\/lookup\S* - 403/);
    expect(lab.agent.output()).toMatch(/"msg":"API refused the ramdisk endpoint \(403\): trying the next API URL"/);
    expect(lab.agent.output()).toMatch(/"msg":"using this API URL from now on"/);
  }, 320_000);

  it('the lookup asked for TLS 1.3 at least: a TLS 1.2 client is refused, TLS 1.3 is served', async () => {
    expect(lab.agent.output()).toMatch(/"minVersion":"TLSv1.3".*"msg":"serving TLS as the conductor asks"/);
    const hello = (o: ConnectionOptions) =>
      new Promise<string>((resolve) => {
        const s = connect({ host: '127.0.0.1', port: lab.agent.port, ca: lab.seen.verifyCa, servername: undefined, ...o }, () => {
          resolve(s.getProtocol() ?? '?');
          s.end();
        });
        s.on('error', (e) => resolve(`refused: ${e.message}`));
      });
    expect(await hello({})).toBe('TLSv1.3');
    expect(await hello({ maxVersion: 'TLSv1.2' })).toMatch(/^refused: .*protocol version/);
  });
});
