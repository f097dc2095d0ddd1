import { readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

// Every runtime dependency in package.json is imported by product code (src/,
// steps/): a package nothing imports only adds to `npm ci` and to what has to
// be reviewed (issue 15 found systeminformation and the TypeBox type provider
// listed but unused).

const repo = resolve(import.meta.dirname, '../..');

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile() && e.name.endsWith('.ts'))
    .map((e) => join(e.parentPath, e.name));
}

/** Packages named by `from '...'` or `import('...')` (type-only imports count: they are what the types come from). */
function importedPackages(text: string): string[] {
  return [...text.matchAll(/(?:from\s+|import\s*\(\s*)'([^'.][^']*)'/g)].map(([, spec]) => {
    const parts = spec!.split('/');
    return spec!.startsWith('@') ? parts.slice(0, 2).join('/') : parts[0]!;
  });
}

describe('runtime dependencies', () => {
  it('are each imported by src/ or steps/', () => {
    const pkg = JSON.parse(readFileSync(join(repo, 'package.json'), 'utf8')) as { dependencies: Record<string, string> };
    const imported = new Set(['src', 'steps'].flatMap((d) => sourceFiles(join(repo, d))).flatMap((f) => importedPackages(readFileSync(f, 'utf8'))));
    const unused = Object.keys(pkg.dependencies).filter((name) => !imported.has(name));
    expect(unused).toEqual([]);
  });
});
