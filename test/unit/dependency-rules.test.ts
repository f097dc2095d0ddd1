import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { execa } from 'execa';
import { afterAll, describe, expect, it } from 'vitest';

// The layering checker of `make typecheck` (.dependency-cruiser.cjs, run as
// `depcruise src steps --ignore-known`) on a small fixture tree shaped like
// src/ and steps/, in a temporary directory (nothing is written under src/):
// the tree as the rules want it passes; each kind of wrong import added to it
// fails with the rule that names it; a known-violations baseline silences the
// violations it lists, and only those.

const repo = resolve(import.meta.dirname, '../..');
const depcruise = join(repo, 'node_modules/.bin/depcruise');
const made: string[] = [];
afterAll(() => made.forEach((d) => rmSync(d, { recursive: true, force: true })));

/** One file per layer, each importing the layer below it the way the agent does. */
const GOOD_TREE: Record<string, string> = {
  'src/base/errors.ts': 'export class DomainError extends Error {}\n',
  'src/log.ts': 'export const log = console;\n',
  'src/system/exec.ts': "import { log } from '../log.ts';\nexport const run = () => log;\n",
  'src/system/safety.ts': 'export class Guard {}\n',
  'src/config.ts': "import { DomainError } from './base/errors.ts';\nexport const config = new DomainError('x');\n",
  'src/hardware/disks.ts': "import { run } from '../system/exec.ts';\nexport const disks = () => run();\n",
  'src/system/erase.ts': "import { disks } from '../hardware/disks.ts';\nexport const erase = () => disks();\n",
  'src/io/sink.ts': "import { run } from '../system/exec.ts';\nimport type { Guard } from '../system/safety.ts';\nexport const sink = (g: Guard) => [g, run()];\n",
  'steps/types.ts': 'export interface Step { name: string }\n',
  'steps/erase.ts': "import { erase } from '../src/system/erase.ts';\nimport type { Step } from './types.ts';\nexport const step: Step & { run: () => unknown } = { name: 'erase', run: erase };\n",
  'steps/index.ts': "import { step } from './erase.ts';\nexport const ALL = [step];\n",
  'src/commands/engine.ts': "import { ALL } from '../../steps/index.ts';\nexport const engine = ALL;\n",
  'src/api/server.ts': "import { engine } from '../commands/engine.ts';\nexport const api = engine;\n",
  'src/conductor/client.ts': "import { run } from '../system/exec.ts';\nexport const client = run;\n",
  'src/agent.ts': "import { api } from './api/server.ts';\nimport { client } from './conductor/client.ts';\nimport { config } from './config.ts';\nexport const agent = [api, client, config];\n",
  'src/main.ts': "import { agent } from './agent.ts';\nexport default agent;\n",
};

function fixture(extra: Record<string, string> = {}): string {
  const dir = mkdtempSync(join(tmpdir(), 'depcruise-fixture-'));
  made.push(dir);
  copyFileSync(join(repo, '.dependency-cruiser.cjs'), join(dir, '.dependency-cruiser.cjs'));
  writeFileSync(join(dir, 'tsconfig.json'), JSON.stringify({ compilerOptions: { module: 'NodeNext', moduleResolution: 'NodeNext', allowImportingTsExtensions: true, noEmit: true } }));
  for (const [file, text] of Object.entries({ ...GOOD_TREE, ...extra })) {
    mkdirSync(dirname(join(dir, file)), { recursive: true });
    writeFileSync(join(dir, file), text);
  }
  return dir;
}

async function check(dir: string, ...flags: string[]) {
  const r = await execa(depcruise, ['src', 'steps', '--output-type', 'err', ...flags], { cwd: dir, reject: false, all: true });
  return { ok: r.exitCode === 0, output: r.all ?? '' };
}

describe('the layering checker', { timeout: 120_000 }, () => {
  it('passes the tree as the rules want it', async () => {
    const r = await check(fixture());
    expect(r.output).toMatch(/no dependency violations found/);
    expect(r.ok).toBe(true);
  });

  it('fails on each kind of wrong import, naming the rule', async () => {
    const r = await check(
      fixture({
        // io (layer 3) importing the command engine (layer 5): the example.
        'src/io/upward.ts': "import { engine } from '../commands/engine.ts';\nexport const up = engine;\n",
        // A base file that lives under src/system/ is still base: it may not import hardware.
        'src/system/safety.ts': "import { disks } from '../hardware/disks.ts';\nexport class Guard { d = disks; }\n",
        // A step importing another step.
        'steps/other.ts': "import { step } from './erase.ts';\nexport const other = step;\n",
        // A type-only cycle inside one layer.
        'src/system/p.ts': "import type { Q } from './q.ts';\nexport interface P { q?: Q }\n",
        'src/system/q.ts': "import type { P } from './p.ts';\nexport interface Q { p?: P }\n",
        // The config read below the agent.
        'src/hardware/tuning.ts': "import { config } from '../config.ts';\nexport const t = config;\n",
        // The API reaching into the conductor.
        'src/api/lookup.ts': "import { client } from '../conductor/client.ts';\nexport const l = client;\n",
        // Product code importing a test helper.
        'src/system/uses-test.ts': "import { helper } from '../../test/helpers/h.ts';\nexport const u = helper;\n",
        'test/helpers/h.ts': 'export const helper = 1;\n',
        // A folder with a face (index.ts) entered from outside through a file behind it.
        'src/system/partitions/index.ts': "export { table } from './table.ts';\n",
        'src/system/partitions/table.ts': 'export const table = 1;\n',
        'src/system/behind-face.ts': "import { table } from './partitions/table.ts';\nexport const b = table;\n",
        'src/system/through-face.ts': "import { table } from './partitions/index.ts';\nexport const t = table;\n",
      }),
    );
    expect(r.ok).toBe(false);
    const violations = r.output.split('\n').filter((l) => /^\s*error /.test(l)).map((l) => l.trim());
    expect(violations).toEqual(
      expect.arrayContaining([
        'error layer-machine-imports-upward: src/io/upward.ts → src/commands/engine.ts',
        'error layer-base-imports-upward: src/system/safety.ts → src/hardware/disks.ts',
        'error steps-do-not-import-steps: steps/other.ts → steps/erase.ts',
        'error config-read-by-agent-only: src/hardware/tuning.ts → src/config.ts',
        'error api-and-conductor-apart: src/api/lookup.ts → src/conductor/client.ts',
        'error product-does-not-import-tests-or-tools: src/system/uses-test.ts → test/helpers/h.ts',
        'error import-folders-through-their-index: src/system/behind-face.ts → src/system/partitions/table.ts',
      ]),
    );
    expect(r.output).not.toMatch(/through-face\.ts/);
    expect(r.output).toMatch(/error no-circular: src\/system\/(p|q)\.ts →/);
  });

  it('refuses a source file that is in no layer', async () => {
    const r = await check(fixture({ 'src/newroom/thing.ts': 'export const x = 1;\n' }));
    expect(r.ok).toBe(false);
    expect(r.output).toMatch(/in no layer, add them to LAYERS: src\/newroom\/thing\.ts/);
  });

  it('ignores the violations in the known-violations baseline, and only those', async () => {
    const dir = fixture({ 'src/io/upward.ts': "import { engine } from '../commands/engine.ts';\nexport const up = engine;\n" });
    const baseline = await execa(depcruise, ['src', 'steps', '--output-type', 'baseline', '--output-to', '.dependency-cruiser-known-violations.json'], { cwd: dir, reject: false });
    expect(baseline.exitCode).toBe(0);
    const known = await check(dir, '--ignore-known');
    expect(known.output).toMatch(/1 known violations ignored/);
    expect(known.ok).toBe(true);

    writeFileSync(join(dir, 'src/hardware/upward.ts'), "import { ALL } from '../../steps/index.ts';\nexport const h = ALL;\n");
    const added = await check(dir, '--ignore-known');
    expect(added.ok).toBe(false);
    expect(added.output).toMatch(/error layer-hardware-imports-upward: src\/hardware\/upward\.ts → steps\/index\.ts/);
    expect(added.output).not.toMatch(/src\/io\/upward\.ts/);
  });
});
