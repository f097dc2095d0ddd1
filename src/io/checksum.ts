import { basename } from 'node:path';
import { ImageDownloadError, ImageFormatError } from './errors.ts';

// Which hash to compute and what it must equal, following Ironic/IPA rules:
// `os_hash_algo` + `os_hash_value` win over the legacy `checksum`; a legacy
// checksum's algorithm is told by its length (IPA >= 9: md5 32, sha256 64,
// sha512 128 hex digits); either value may be a URL of a checksums file.

export type HashAlgo = 'md5' | 'sha256' | 'sha512';
export const HASH_ALGOS: readonly HashAlgo[] = ['md5', 'sha256', 'sha512'];

export interface ExpectedChecksum {
  algo: HashAlgo;
  /** Hex digest, or an http(s)/file URL of a checksums file. */
  value: string;
  /** Legacy `checksum`: the algorithm follows from the digest's length once known. */
  algoFromLength?: boolean;
}

const LENGTH_TO_ALGO: Record<number, HashAlgo> = { 32: 'md5', 64: 'sha256', 128: 'sha512' };

export function isHashAlgo(s: string): s is HashAlgo {
  return (HASH_ALGOS as readonly string[]).includes(s);
}

export function isChecksumUrl(value: string): boolean {
  return /^(https?|file):\/\//i.test(value);
}

/** Algorithm of a legacy checksum by its hex length; URLs default to md5 like IPA (overridden by the file's length). */
export function algoByLength(value: string): HashAlgo {
  const algo = LENGTH_TO_ALGO[value.length];
  if (!algo || !/^[0-9a-fA-F]+$/.test(value)) {
    throw new ImageFormatError(`checksum '${value}' is not a hex md5, sha256 or sha512 digest`);
  }
  return algo;
}

/** Ironic's image_info fields → what to verify (undefined: nothing to verify). */
export function checksumFromImageInfo(info: {
  checksum?: unknown;
  os_hash_algo?: unknown;
  os_hash_value?: unknown;
}): ExpectedChecksum | undefined {
  if (typeof info.os_hash_algo === 'string' && typeof info.os_hash_value === 'string' && info.os_hash_value) {
    const algo = info.os_hash_algo.toLowerCase();
    if (!isHashAlgo(algo)) throw new ImageFormatError(`unsupported os_hash_algo '${info.os_hash_algo}'`);
    return { algo, value: info.os_hash_value };
  }
  if (typeof info.checksum === 'string' && info.checksum) {
    const value = info.checksum.trim();
    return isChecksumUrl(value)
      ? { algo: 'md5', value, algoFromLength: true }
      : { algo: algoByLength(value), value };
  }
  return undefined;
}

/** A hex digest of one of the lengths an md5, sha256 or sha512 has. */
const HEX_DIGEST = /^(?:[0-9a-fA-F]{32}|[0-9a-fA-F]{64}|[0-9a-fA-F]{128})$/;

/**
 * Pick the digest for `imageUrl` out of a checksums file: either a single bare
 * digest, or `DIGEST  NAME` / `DIGEST *NAME` lines (sha256sum style) matched on
 * the image URL's file name. BSD-style `SHA256 (NAME) = DIGEST` lines too.
 * Only a well-formed digest comes back, and errors never quote the file: its
 * text is not ours to echo (it may be any file a URL can name).
 */
export function pickChecksumLine(text: string, imageUrl: string): string {
  const digest = (value: string) => {
    if (!HEX_DIGEST.test(value)) throw new ImageDownloadError('checksum file holds no md5, sha256 or sha512 hex digest for the image');
    return value;
  };
  const lines = text.split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#'));
  if (lines.length === 0) throw new ImageDownloadError('checksum file is empty');
  if (lines.length === 1 && !/\s/.test(lines[0]!)) return digest(lines[0]!);
  const wanted = basename(new URL(imageUrl).pathname);
  for (const line of lines) {
    const bsd = /^\w+\s*\((.+)\)\s*=\s*([0-9a-fA-F]+)$/.exec(line);
    if (bsd) {
      if (basename(bsd[1]!) === wanted) return digest(bsd[2]!);
      continue;
    }
    const m = /^([0-9a-fA-F]+)\s+\*?(.+)$/.exec(line);
    if (m && basename(m[2]!.trim()) === wanted) return digest(m[1]!);
  }
  throw new ImageDownloadError(`checksum file does not list '${wanted}'`);
}
