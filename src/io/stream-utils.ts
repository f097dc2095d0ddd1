import { Readable, pipeline, type Duplex } from 'node:stream';

// Small async-iterable stages the pipeline is built from. Async iterables
// compose with stream.pipeline and keep backpressure: nothing is read until
// the next stage asks for it.

/** Counts bytes as they pass, feeding each chunk to `see` (the hash) first. */
export async function* tap(
  source: AsyncIterable<Buffer>,
  see: (chunk: Buffer) => void | Promise<void>,
): AsyncGenerator<Buffer> {
  for await (const chunk of source) {
    const pending = see(chunk);
    if (pending) await pending;
    yield chunk;
  }
}

export interface Peeked {
  /** The first `n` bytes (fewer if the stream is shorter). */
  head: Buffer;
  /** The whole stream again, head included. */
  stream: AsyncIterable<Buffer>;
}

/** Reads the first `n` bytes without losing them, so a format can be decided before anything is written. */
export async function peek(source: AsyncIterable<Buffer>, n: number): Promise<Peeked> {
  const it = source[Symbol.asyncIterator]();
  const taken: Buffer[] = [];
  let have = 0;
  let ended = false;
  while (have < n) {
    const r = await it.next();
    if (r.done) {
      ended = true;
      break;
    }
    taken.push(r.value);
    have += r.value.length;
  }
  const head = Buffer.concat(taken);
  async function* replay(): AsyncGenerator<Buffer> {
    if (head.length) yield head;
    if (ended) return;
    for (;;) {
      const r = await it.next();
      if (r.done) return;
      yield r.value;
    }
  }
  return { head: head.subarray(0, n), stream: replay() };
}

/** Runs `source` through a transform stream (decompressor); errors on either side end the iteration. */
export function through(source: AsyncIterable<Buffer>, transform: Duplex): AsyncIterable<Buffer> {
  // The callback only keeps pipeline from throwing unhandled; the error also
  // destroys `transform`, so whoever iterates the result sees it.
  return pipeline(Readable.from(source, { objectMode: false }), transform, () => undefined);
}
