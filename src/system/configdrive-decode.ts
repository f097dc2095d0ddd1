import { createWriteStream } from 'node:fs';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import { log } from '../log.ts';
import { redactText, redactUrl } from '../redact.ts';

// Ironic's configdrive: a gzip+base64 string (or a URL serving one, or the raw
// image) holding an ISO9660/vfat filesystem labelled config-2. This file turns
// it into an image file. Two writers use it: configdrive.ts (a partition at
// the end of a whole disk image, as IPA does; it uses the partitions folder)
// and the partition layout of a partition image (partitions/layout.ts). Kept
// apart from configdrive.ts so that the layout does not import its own user.

export const MiB = 1024 * 1024;
/** IPA/ironic-lib MAX_CONFIG_DRIVE_SIZE_MB: the decoded image may be at most 64 MiB. */
export const MAX_CONFIG_DRIVE_BYTES = 64 * MiB;
/** Bound on what we accept over HTTP: base64 of a gzip of <= 64 MiB, with slack. */
const MAX_DOWNLOAD_BYTES = 128 * MiB;
export const CONFIG_DRIVE_LABEL = 'config-2';

export class ConfigDriveError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigDriveError';
  }
}

export interface DecodedConfigDrive {
  path: string;
  size: number;
  /** Size rounded up to whole MiB, as ironic-lib sizes the partition. */
  sizeMiB: number;
  cleanup(): Promise<void>;
}

const isUrl = (v: string) => /^https?:\/\//i.test(v.trim());
const isGzip = (b: Buffer) => b.length >= 2 && b[0] === 0x1f && b[1] === 0x8b;
const looksBase64 = (b: Buffer) => /^[A-Za-z0-9+/=\s_-]*$/.test(b.subarray(0, 4096).toString('latin1'));

/**
 * Fetches a config drive. Messages name the URL redacted (no userinfo, no
 * signed query: Ironic hands out Swift temp URLs) and never quote the body,
 * which an object store may fill with the request it refused, signature and
 * all: command errors can be read without the agent token on Ironic 21.4.
 * Credentials in the URL are sent as basic auth, as IPA's requests does.
 */
async function download(url: string, timeoutMs: number): Promise<Buffer> {
  const shown = redactUrl(url);
  let res: Response;
  try {
    const target = new URL(url);
    const headers: Record<string, string> = {};
    if (target.username || target.password) {
      const user = decodeURIComponent(target.username);
      const pass = decodeURIComponent(target.password);
      headers.authorization = `Basic ${Buffer.from(`${user}:${pass}`).toString('base64')}`;
      target.username = '';
      target.password = '';
    }
    res = await fetch(target, { headers, signal: AbortSignal.timeout(timeoutMs) });
  } catch (err) {
    throw new ConfigDriveError(`cannot download the config drive from ${shown}: ${redactText((err as Error).message)}`);
  }
  if (!res.ok) {
    await res.body?.cancel().catch(() => undefined);
    throw new ConfigDriveError(`cannot download the config drive from ${shown}: HTTP ${res.status} ${res.statusText}`.trimEnd());
  }
  const declared = Number(res.headers.get('content-length') ?? 0);
  if (declared > MAX_DOWNLOAD_BYTES) {
    await res.body?.cancel();
    throw new ConfigDriveError(`config drive at ${shown} is too large (${declared} bytes)`);
  }
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of res.body ?? []) {
    total += chunk.length;
    if (total > MAX_DOWNLOAD_BYTES) throw new ConfigDriveError(`config drive at ${shown} is larger than ${MAX_DOWNLOAD_BYTES} bytes`);
    chunks.push(Buffer.from(chunk));
  }
  return Buffer.concat(chunks);
}

/** Passes bytes through, failing as soon as more than `limit` went by. */
function byteLimit(limit: number): Transform {
  let seen = 0;
  return new Transform({
    transform(chunk: Buffer, _enc, cb) {
      seen += chunk.length;
      if (seen > limit) {
        cb(
          new ConfigDriveError(
            `Config drive size exceeds maximum limit of ${limit / MiB}MiB (the decoded image is larger)`,
          ),
        );
      } else cb(null, chunk);
    },
  });
}

/**
 * Turns Ironic's configdrive value into an image file in a fresh temp dir.
 * Inline values must be base64(gzip(image)); downloaded ones may also be the
 * gzip or the raw image (IPA accepts non-base64 bytes as binary).
 */
export async function decodeConfigDrive(
  value: string,
  opts: { downloadTimeoutMs?: number; maxBytes?: number } = {},
): Promise<DecodedConfigDrive> {
  const maxBytes = opts.maxBytes ?? MAX_CONFIG_DRIVE_BYTES;
  let data: Buffer;
  if (isUrl(value)) {
    data = await download(value.trim(), opts.downloadTimeoutMs ?? 60_000);
    if (!isGzip(data) && looksBase64(data)) data = Buffer.from(data.toString('latin1'), 'base64');
  } else {
    if (!looksBase64(Buffer.from(value.slice(0, 4096), 'latin1'))) {
      throw new ConfigDriveError('config drive is neither a URL nor base64 encoded');
    }
    data = Buffer.from(value, 'base64');
  }
  if (data.length === 0) throw new ConfigDriveError('config drive is empty');

  const dir = await mkdtemp(join(tmpdir(), 'configdrive-'));
  const path = join(dir, 'configdrive.img');
  const cleanup = () => rm(dir, { recursive: true, force: true });
  try {
    const source = Readable.from([data]);
    if (isGzip(data)) {
      await pipeline(source, createGunzip(), byteLimit(maxBytes), createWriteStream(path));
    } else {
      log.debug('config drive is not gzip compressed, using it as the raw image');
      await pipeline(source, byteLimit(maxBytes), createWriteStream(path));
    }
    const { size } = await stat(path);
    if (size === 0) throw new ConfigDriveError('config drive decodes to an empty image');
    return { path, size, sizeMiB: Math.ceil(size / MiB), cleanup };
  } catch (err) {
    await cleanup();
    if (err instanceof ConfigDriveError) throw err;
    throw new ConfigDriveError(`config drive is malformed (not gzip+base64): ${(err as Error).message}`);
  }
}
