import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

// The API validates with TypeBox (src/api/schema-compilers.ts) so that fastify never loads ajv:
// ~1.3 MiB less heap on the idle agent (docs/footprint.md, lever 11). Checked in a process of
// its own: a refused query still gets ajv's wording in IPA's error body, and ajv is not loaded.
describe('API schema compilers', () => {
  it('refuses a bad query in IPA\'s error body without loading ajv or its fastify compiler', () => {
    const script = fileURLToPath(new URL('../helpers/api-loaded-modules.ts', import.meta.url));
    const out = JSON.parse(execFileSync(process.execPath, ['--import', 'tsx', script], { encoding: 'utf8' }));
    expect([out.status, out.body]).toEqual([400, { faultcode: 'Client', faultstring: '400 Bad Request: querystring/agent_token must be string' }]);
    expect(out.packages).toContain('fastify');
    expect(out.packages).not.toContain('ajv');
    expect(out.packages).not.toContain('@fastify/ajv-compiler');
    expect(out.packages).not.toContain('@fastify/fast-json-stringify-compiler');
  }, 30_000);
});
