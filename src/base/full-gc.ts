import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

// A full garbage collection on demand. A command's big buffers (the image
// pipeline's write buffers) go back to the system only when a major GC frees
// them, and an idle agent heartbeating rarely runs one: its RSS kept what its
// last write used until the next write (docs/footprint.md, lever 12). The agent
// runs one when a long command ends, and one when its start-up is done.
//
// --expose-gc set at run time puts gc() only into contexts made afterwards,
// hence the new context; the function it hands out collects the whole isolate.

let gc: (() => void) | undefined;

/** Runs a full (mark-compact) GC of the process's heap now; returns how long it took, in ms. */
export function fullGc(): number {
  if (!gc) {
    setFlagsFromString('--expose-gc');
    gc = runInNewContext('gc') as () => void;
  }
  const t0 = performance.now();
  gc();
  return performance.now() - t0;
}
