import type { Duplex } from 'node:stream';
import { createGunzip } from 'node:zlib';
import { spawnStreaming } from '../system/exec.ts';
import type { Compression } from './format-detect.ts';

// On-the-fly decompression of compressed raw images. gzip stays in-process
// (zlib); zstd and xz run as child processes, which also puts their work on a
// second CPU. Output chunks are large so the hash/write loop stays cheap.

const OUT_CHUNK = 1024 * 1024;

export function decompressor(kind: Compression, signal?: AbortSignal): Duplex {
  if (kind === 'gzip') return createGunzip({ chunkSize: OUT_CHUNK });
  // timeoutMs 0: no timeout; a large image may take longer than any fixed bound,
  // and a stalled download is caught by the source's read timeout instead.
  const { child } = spawnStreaming(kind, ['-d', '-c', '-q'], { timeoutMs: 0 });
  const duplex = child.duplex({ from: 'stdout', to: 'stdin' }) as unknown as Duplex;
  signal?.addEventListener('abort', () => child.kill(), { once: true });
  return duplex;
}
