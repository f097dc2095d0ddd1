import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { afterAll, describe, expect, it } from 'vitest';
import { collectSystemLogs } from '../../src/commands/extensions/log.ts';
import { log } from '../../src/log.ts';

// log.collect_system_logs after a virtual-media boot: the kernel command line
// carries ipa-agent-token, dmesg repeats it, and the agent's log and command
// results quote image URLs with a password and a Swift signature. With Ironic
// 21.4 anyone can read that result without the token, so none of it may be in
// the tarball, while everything around the secrets still is.

const TOKEN = 'vMedIaT0kenAbCdEfGhIjKlMnOpQrStUvWxYz0123';
const PASSWORD = 'sw1ftPassw0rd';
const SIG = 'da39a3ee5e6b4b0d3255bfef95601890afd80709';
const IMAGE_URL = `https://glance:${PASSWORD}@swift.example:8080/v1/AUTH_abc/glance/img.raw?temp_url_sig=${SIG}&temp_url_expires=1900000000`;
const CMDLINE = `BOOT_IMAGE=/vmlinuz console=ttyS0 ipa-api-url=http://[fd00::1]:6385 boot_method=vmedia ipa-agent-token=${TOKEN} ipa-debug=1\n`;

describe('collect_system_logs redacts secrets', () => {
  const dir = mkdtempSync(join(tmpdir(), 'log-redaction-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('ships the cmdline, dmesg, journal and command results without the token, password or URL signature', async () => {
    const cmdline = join(dir, 'cmdline');
    writeFileSync(cmdline, CMDLINE);
    const dmesg = `[    0.000000] Linux version 6.1.0\n[    0.000000] Kernel command line: ${CMDLINE}[   12.5] virtio_net virtio0 eth0: renamed\n`;
    const level = log.level;
    log.level = 'debug'; // tests run the logger silent; these lines must reach the ring
    log.warn({ url: IMAGE_URL, offset: 0 }, 'image download attempt failed');
    log.info(`downloading ${IMAGE_URL} to /dev/sda`);
    log.debug({ agent_token: TOKEN }, 'lookup answered');
    log.level = level;

    const b64 = await collectSystemLogs({
      inventory: async () => ({ boot: { current_boot_mode: 'uefi' } }),
      commands: () => [
        {
          id: 'c1',
          command_name: 'write_image',
          command_status: 'FAILED',
          command_result: null,
          command_error: { type: 'ImageDownloadError', code: 500, message: 'Error downloading image', details: `HTTP 403 from ${IMAGE_URL}` },
        },
      ],
      sources: { files: [cmdline], dmesg: async () => dmesg, facts: [] },
    });

    // A tar keeps file contents as they are: the gunzipped archive is searchable text.
    const tar = gunzipSync(Buffer.from(b64, 'base64')).toString('latin1');
    for (const secret of [TOKEN, PASSWORD, SIG]) expect(tar).not.toContain(secret);
    // What is around the secrets is still there, so the files did make it in.
    expect(tar).toContain('tmp_');
    expect(tar).toContain('boot_method=vmedia ipa-agent-token=*** ipa-debug=1');
    expect(tar).toContain('Kernel command line: BOOT_IMAGE=/vmlinuz');
    expect(tar).toContain('https://***@swift.example:8080/v1/AUTH_abc/glance/img.raw?temp_url_sig=***&temp_url_expires=1900000000');
    expect(tar).toContain('"msg":"image download attempt failed"');
    expect(tar).toContain('HTTP 403 from https://***@swift.example');
  });
});
