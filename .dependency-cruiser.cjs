// The layering of metal-agent, checked by `make typecheck`.
// docs/architecture.md explains it; this file is the law it describes.
//
// Imports go one way, from a higher layer to a lower one (or within a layer):
//
//   7 agent      src/main.ts, src/agent.ts, src/hardware-view.ts, src/node-session.ts: wire everything together
//   6 edge       src/api/ (IPA's REST API), src/conductor/ (Ironic client, discovery);
//                neither imports the other
//   5 commands   src/commands/: the command engine, the extensions, and the one
//                table that maps domain errors to IPA's wire classes
//   4 steps      steps/: one file per step, a descriptor plus a function
//   3 machine    src/system/ (partitions, erase, boot loader, kexec, network, ...)
//                and src/io/ (the image pipeline)
//   2 hardware   src/hardware/: inventory, block devices, root device hints (reads the machine)
//   1 config     src/config.ts: the kernel command line, env and flags -> one config;
//                only the agent layer reads it, everyone else is handed what it needs
//   0 base       src/base/ (error taxonomy, shared types, pure helpers), src/log.ts,
//                src/redact.ts, src/version.ts, and three files that still live under
//                src/system/ for history: exec.ts (the exec wrapper), tools.ts (the
//                tool list), safety.ts (the guard). The base imports nothing above it.
//
// Besides the order: no import cycles (type-only imports count: they are still
// knowledge of the other module); a step does not import another step (only
// steps/index.ts and steps/registry.ts gather them, and steps/types.ts and steps/define.ts are shared);
// product code never imports tests or tools; a folder with an index.ts is entered
// from other folders through that index.ts only.
//
// Violations that existed when the checker came and could not be fixed yet are
// listed in .dependency-cruiser-known-violations.json and ignored (--ignore-known);
// any other one fails the check. Fix one, then regenerate the list:
//   npx depcruise src steps --output-type baseline --output-to .dependency-cruiser-known-violations.json

const fs = require('node:fs');
const path = require('node:path');

const LAYERS = [
  { name: 'base', path: '^src/(base/|(log|redact|version)\\.ts$|system/(exec|tools|safety)\\.ts$)' },
  { name: 'config', path: '^src/config\\.ts$' },
  { name: 'hardware', path: '^src/hardware/' },
  { name: 'machine', path: '^src/(system|io)/' },
  { name: 'steps', path: '^steps/' },
  { name: 'commands', path: '^src/commands/' },
  { name: 'edge', path: '^src/(api|conductor)/' },
  { name: 'agent', path: '^src/(main|agent|hardware-view|node-session)\\.ts$' },
];

/** The layer of a module: the first (lowest) whose pattern matches, so base files under src/system/ are base. */
function layerOf(file) {
  return LAYERS.findIndex((l) => new RegExp(l.path).test(file));
}

// Every source file must be in a layer: a new top-level file or folder is
// placed here on purpose, not left unchecked.
function listSources(dir) {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.posix.join(dir, e.name);
    if (e.isDirectory()) return listSources(p);
    return /\.ts$/.test(e.name) ? [p] : [];
  });
}
const root = __dirname;
const unplaced = ['src', 'steps']
  .flatMap((d) => listSources(path.join(root, d)).map((f) => path.relative(root, f).split(path.sep).join('/')))
  .filter((f) => layerOf(f) < 0);
if (unplaced.length) {
  throw new Error(`.dependency-cruiser.cjs: these files are in no layer, add them to LAYERS: ${unplaced.join(', ')}`);
}

/** Files of layer i that are not files of a lower layer (base files live under src/system/). */
function layerFrom(i) {
  const lower = LAYERS.slice(0, i).map((l) => l.path);
  return lower.length ? { path: LAYERS[i].path, pathNot: lower } : { path: LAYERS[i].path };
}

/** Files of the layers above i (a file matching a lower pattern, e.g. src/system/exec.ts, is not "above"). */
function layersAbove(i) {
  return { path: LAYERS.slice(i + 1).map((l) => l.path), pathNot: LAYERS.slice(0, i + 1).map((l) => l.path) };
}

const layerRules = LAYERS.slice(0, -1).map((layer, i) => ({
  name: `layer-${layer.name}-imports-upward`,
  severity: 'error',
  comment: `${layer.name} (layer ${i}) may import only layers 0..${i}: ${LAYERS.slice(0, i + 1).map((l) => l.name).join(', ')}`,
  from: layerFrom(i),
  to: layersAbove(i),
}));

// A folder with an index.ts shows the rest of the code that face only: files
// outside the folder import index.ts, not the files behind it, so what the
// folder offers is written in one place and its insides can change freely.
const esc = (s) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
const faceRules = ['src', 'steps']
  .flatMap((d) => listSources(path.join(root, d)).map((f) => path.relative(root, f).split(path.sep).join('/')))
  .filter((f) => f.endsWith('/index.ts'))
  .map((f) => path.posix.dirname(f))
  .map((dir) => ({
    name: 'import-folders-through-their-index',
    severity: 'error',
    comment: `${dir}/index.ts is the face of ${dir}/: other folders import it, not the files behind it.`,
    from: { pathNot: `^${esc(dir)}/` },
    to: { path: `^${esc(dir)}/`, pathNot: `^${esc(dir)}/index\\.ts$` },
  }));

module.exports = {
  forbidden: [
    {
      name: 'no-circular',
      severity: 'error',
      comment: 'Import cycles make the layering a lie; break one with an interface in the lower module (see src/commands/extensions/host.ts).',
      from: {},
      to: { circular: true },
    },
    ...layerRules,
    {
      name: 'config-read-by-agent-only',
      severity: 'error',
      comment: 'src/config.ts is read by main/agent only; everything else is handed the values it needs.',
      from: { pathNot: ['^src/config\\.ts$', LAYERS.at(-1).path] },
      to: { path: '^src/config\\.ts$' },
    },
    {
      name: 'api-and-conductor-apart',
      severity: 'error',
      comment: 'The REST API and the Ironic client are siblings: the agent connects them.',
      from: { path: '^src/api/' },
      to: { path: '^src/conductor/' },
    },
    {
      name: 'conductor-and-api-apart',
      severity: 'error',
      comment: 'The REST API and the Ironic client are siblings: the agent connects them.',
      from: { path: '^src/conductor/' },
      to: { path: '^src/api/' },
    },
    {
      name: 'steps-do-not-import-steps',
      severity: 'error',
      comment: 'A step is one file (the four burn-ins, one pattern, share steps/burnin.ts); what two steps share belongs in a lower layer. Only steps/index.ts and steps/registry.ts gather steps; steps/types.ts and steps/define.ts are shared.',
      from: { path: '^steps/', pathNot: '^steps/(index|registry)\\.ts$' },
      to: { path: '^steps/', pathNot: '^steps/(types|define)\\.ts$' },
    },
    ...faceRules,
    {
      name: 'product-does-not-import-tests-or-tools',
      severity: 'error',
      comment: 'The agent ships without test/, scripts/, bench/, lab/ and ramdisk-build/.',
      from: { path: '^(src|steps)/' },
      to: { path: '^(test|scripts|bench|lab|ramdisk-build)/' },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    tsConfig: { fileName: 'tsconfig.json' },
    // Type-only imports count: an import cycle through types is still a cycle.
    tsPreCompilationDeps: true,
    enhancedResolveOptions: { extensions: ['.ts', '.js', '.json'] },
    reporterOptions: { text: { highlightFocused: true } },
  },
};
