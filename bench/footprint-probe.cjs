// Preloaded by bench/footprint.ts (node --expose-gc -r bench/footprint-probe.cjs ...):
// on SIGUSR2, a full GC, then V8's heap figures written as JSON to $FP_OUT.
'use strict';
const fs = require('node:fs');
const v8 = require('node:v8');
process.on('SIGUSR2', () => {
  if (global.gc) global.gc();
  const spaces = v8.getHeapSpaceStatistics().map((s) => [s.space_name, Math.round(s.space_used_size / 1024), Math.round(s.physical_space_size / 1024)]);
  fs.writeFileSync(process.env.FP_OUT, JSON.stringify({ mem: process.memoryUsage(), spaces, heap: v8.getHeapStatistics() }));
});
