import { createServer, type Server } from 'node:http';
import { readFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeConfigDrive, ConfigDriveError, MAX_CONFIG_DRIVE_BYTES } from '../../src/system/configdrive.ts';
import { encodeConfigDrive } from '../helpers/configdrive.ts';

const MiB = 1024 * 1024;
const image = Buffer.concat([Buffer.from('CD001 pretend iso '), Buffer.alloc(3 * MiB + 17, 7)]);

let server: Server;
let base: string;
const routes: Record<string, { status?: number; body: Buffer | string }> = {};
const authorizations: Array<string | undefined> = [];

beforeAll(async () => {
  server = createServer((req, res) => {
    authorizations.push(req.headers.authorization);
    const r = routes[req.url ?? ''];
    res.statusCode = r ? (r.status ?? 200) : 404;
    res.end(r ? r.body : 'nope');
  });
  await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(async () => {
  await new Promise((ok) => server.close(ok));
});

async function decodedBytes(value: string, opts?: Parameters<typeof decodeConfigDrive>[1]): Promise<Buffer> {
  const d = await decodeConfigDrive(value, opts);
  try {
    expect(d.size).toBe((await readFile(d.path)).length);
    return await readFile(d.path);
  } finally {
    await d.cleanup();
  }
}

describe('decodeConfigDrive', () => {
  it('decodes inline base64(gzip(image))', async () => {
    const d = await decodeConfigDrive(encodeConfigDrive(image));
    try {
      expect((await readFile(d.path)).equals(image)).toBe(true);
      expect(d.sizeMiB).toBe(4);
    } finally {
      await d.cleanup();
    }
    await expect(readFile(d.path)).rejects.toThrow(/ENOENT/);
  });

  it('downloads a URL serving base64, gzip or the raw image', async () => {
    routes['/b64'] = { body: encodeConfigDrive(image) };
    routes['/gz'] = { body: gzipSync(image) };
    routes['/raw'] = { body: image };
    for (const path of ['/b64', '/gz', '/raw']) {
      expect((await decodedBytes(`${base}${path}`)).equals(image)).toBe(true);
    }
  });

  it('reports HTTP errors with the status', async () => {
    routes['/gone'] = { status: 410, body: 'expired' };
    await expect(decodeConfigDrive(`${base}/gone`)).rejects.toThrow(/HTTP 410 Gone$/);
  });

  // Command errors can be read without the agent token (Ironic 21.4), and
  // Ironic hands out Swift temp URLs for config drives: the message names the
  // URL without its password or signature, and never quotes the body (an
  // object store may echo the refused request in it, signature and all).
  it('keeps the URL secrets and the body out of download errors; URL credentials go as basic auth', async () => {
    const sig = '0f1e2d3c4b5a69788796a5b4c3d2e1f0aabbccdd';
    const query = `?temp_url_sig=${sig}&temp_url_expires=1900000000`;
    routes[`/denied${query}`] = { status: 403, body: `<Error><StringToSign>GET /denied ${sig}</StringToSign><Secret>body-secret</Secret></Error>` };
    const url = `http://cduser:cdPassw0rd@${base.slice('http://'.length)}/denied${query}`;
    const err = await decodeConfigDrive(url).catch((e: Error) => e);
    expect(err).toBeInstanceOf(ConfigDriveError);
    const message = (err as Error).message;
    expect(message).toContain('HTTP 403');
    expect(message).toContain(`${base.replace('http://', 'http://***@')}/denied?temp_url_sig=***&temp_url_expires=1900000000`);
    for (const secret of ['cdPassw0rd', sig, 'body-secret', 'StringToSign']) expect(message).not.toContain(secret);
    expect(authorizations.at(-1)).toBe(`Basic ${Buffer.from('cduser:cdPassw0rd').toString('base64')}`);

    routes['/private.gz'] = { body: gzipSync(image) };
    expect((await decodedBytes(`http://cduser:cdPassw0rd@${base.slice('http://'.length)}/private.gz`)).equals(image)).toBe(true);

    // Nothing listening: the connection error names the URL redacted too.
    const closed = createServer();
    await new Promise<void>((ok) => closed.listen(0, '127.0.0.1', ok));
    const port = (closed.address() as AddressInfo).port;
    await new Promise((ok) => closed.close(ok));
    const refused = await decodeConfigDrive(`http://u:p4ss@127.0.0.1:${port}/cd${query}`).catch((e: Error) => e);
    expect((refused as Error).message).toContain(`http://***@127.0.0.1:${port}/cd?temp_url_sig=***`);
    for (const secret of ['p4ss', sig]) expect((refused as Error).message).not.toContain(secret);
  });

  it('accepts exactly 64 MiB and refuses one byte more', async () => {
    const limit = Buffer.alloc(MAX_CONFIG_DRIVE_BYTES, 1);
    expect((await decodedBytes(encodeConfigDrive(limit))).length).toBe(64 * MiB);
    const tooBig = Buffer.alloc(MAX_CONFIG_DRIVE_BYTES + 1, 1);
    await expect(decodeConfigDrive(encodeConfigDrive(tooBig))).rejects.toThrow(
      /Config drive size exceeds maximum limit of 64MiB/,
    );
  });

  it('refuses values that are neither base64 nor a URL, and corrupt gzip', async () => {
    await expect(decodeConfigDrive('{"not": "a drive"}')).rejects.toBeInstanceOf(ConfigDriveError);
    const corrupt = gzipSync(image);
    corrupt[corrupt.length - 5]! ^= 0xff;
    await expect(decodeConfigDrive(corrupt.toString('base64'))).rejects.toThrow(/malformed/);
    await expect(decodeConfigDrive('')).rejects.toThrow(/empty/);
  });
});
