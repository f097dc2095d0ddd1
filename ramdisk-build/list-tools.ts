// Prints "tool package" per line for every external tool the agent may run,
// straight from src/system/tools.ts, so the ramdisk cannot drift from it.
//   npx tsx ramdisk-build/list-tools.ts
import { TOOLS } from '../src/system/tools.ts';

for (const [name, { pkg }] of Object.entries(TOOLS)) console.log(`${name} ${pkg}`);
