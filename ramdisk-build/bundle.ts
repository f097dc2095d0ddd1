// Bundles the agent into one CommonJS file for a Node single executable
// application. SEA runs the main script as CommonJS whose require() only sees
// built-in modules, so everything else must be inside the bundle.
//
//   npx tsx ramdisk-build/bundle.ts [entry.ts] [out.cjs]
import { build } from 'esbuild';
import { builtinModules } from 'node:module';
import { resolve } from 'node:path';

const entry = resolve(process.argv[2] ?? 'src/main.ts');
const outfile = resolve(process.argv[3] ?? 'build/metal-agent.cjs');

const result = await build({
  entryPoints: [entry],
  outfile,
  bundle: true,
  platform: 'node',
  format: 'cjs',
  target: 'node20',
  minify: true,
  legalComments: 'none',
  metafile: true,
  logLevel: 'warning',
  // ESM sources (ours and execa's) read import.meta.url; CommonJS has no
  // import.meta, so point it at a variable the banner fills from __filename.
  define: { 'import.meta.url': '__metalAgentImportMetaUrl' },
  banner: { js: 'var __metalAgentImportMetaUrl=require("node:url").pathToFileURL(__filename).href;' },
});

// A require() of a package that esbuild could not inline would fail at run time
// inside the SEA; list what stayed external so a build log shows it.
const external = new Set<string>();
for (const input of Object.values(result.metafile.inputs)) {
  for (const imp of input.imports) {
    if (imp.external && !imp.path.startsWith('node:') && !isBuiltin(imp.path)) external.add(imp.path);
  }
}
if (external.size) {
  console.error(`bundle: left external (will fail in the SEA if reached): ${[...external].join(', ')}`);
}

function isBuiltin(name: string): boolean {
  return builtinModules.includes(name);
}
