// Run as its own process (test/unit/api-schema-compilers.test.ts): builds the API, sends it one
// request its query schema refuses, and prints the answer and which validator/serializer
// packages Node's require cache then holds. A process of its own, as a test worker's cache
// also holds what other test files loaded.
import { createRequire } from 'node:module';
import { buildApi } from '../../src/api/server.ts';
import { TokenKeeper } from '../../src/api/token.ts';
import { CommandEngine } from '../../src/commands/engine.ts';

const app = buildApi({ engine: new CommandEngine(), tokens: new TokenKeeper('t'.repeat(32)), status: () => ({ started_at: 0, version: 'probe' }), steps: () => [], inventory: async () => ({}) });
await app.ready();
const refused = await app.inject({ url: '/v1/commands/?agent_token=a&agent_token=b' });
const loaded = Object.keys(createRequire(import.meta.url).cache)
  .map((path) => path.match(/node_modules\/((?:@[^/]+\/)?[^/]+)\//)?.[1])
  .filter((pkg): pkg is string => pkg !== undefined);
await app.close();
console.log(JSON.stringify({ status: refused.statusCode, body: refused.json(), packages: [...new Set(loaded)].sort() }));
