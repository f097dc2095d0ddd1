import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REPO_ROOT, createNetns, destroyNetns, linkVeth, type Netns } from '../helpers/netns.ts';

// mDNS is unauthenticated: anyone on the segment may answer. A tiny responder
// (multicast-dns, in its own namespace) plays silent, broken and hostile
// peers; the agent's discovery runs in the node namespace. HTTP listeners on
// the advertised address and on an "evil" address show where the agent went.

const ADVERTISED = '10.251.0.1';
const EVIL = '10.251.0.66';
const INSTANCE = 'baremetal._openstack._tcp.local';

interface ResponderConfig {
  /** Answer nothing, only log queries. */
  silent?: boolean;
  /** Answer the first N queries with garbage (random bytes, invalid records) before answering properly. */
  garbageFirst?: number;
  onlyGarbage?: boolean;
  /** TXT strings (base64, so they can be invalid UTF-8). */
  txt?: string[];
  port?: number;
}

const b64 = (s: string | Buffer) => Buffer.from(s).toString('base64');

const RESPONDER = `
import makeMdns from '${REPO_ROOT}/node_modules/multicast-dns/index.js';
import dgram from 'node:dgram';
import http from 'node:http';
import { randomBytes } from 'node:crypto';
const cfg = JSON.parse(process.env.RESPONDER_CONFIG);
for (const [host, port] of [['${ADVERTISED}', 6385], ['${EVIL}', 6385], ['${EVIL}', 80], ['${EVIL}', 5050]]) {
  http.createServer((req, res) => {
    console.log('HIT ' + JSON.stringify({ host, port, url: req.url }));
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ name: 'test conductor', host }));
  }).listen(port, host);
}
const raw4 = dgram.createSocket('udp4');
const records = () => [
  { name: '_openstack._tcp.local', type: 'PTR', data: '${INSTANCE}' },
  { name: '${INSTANCE}', type: 'SRV', data: { port: cfg.port ?? 6385, target: 'conductor-x.local' } },
  { name: '${INSTANCE}', type: 'TXT', data: (cfg.txt ?? []).map((t) => Buffer.from(t, 'base64')) },
  { name: 'conductor-x.local', type: 'A', data: '${ADVERTISED}' },
];
const junk = () => [
  { name: '${INSTANCE}', type: 'SRV', data: { port: 0, target: 'conductor-x.local' } },
  { name: '${INSTANCE}', type: 'TXT', data: [Buffer.from('protocol=gopher'), Buffer.from([0x70, 0x61, 0x74, 0x68, 0x3d, 0xff, 0xfe])] },
  { name: 'conductor-x.local', type: 'A', data: '0.0.0.0' },
  { name: 'conductor-x.local', type: 'AAAA', data: 'ff02::1' },
  { name: 'conductor-x.local', type: 'A', data: '127.0.0.1' },
];
let seen = 0;
function onQuery(mdns, q, rinfo) {
  if (!q.questions.some((x) => x.name.toLowerCase().endsWith('_openstack._tcp.local'))) return;
  seen++;
  console.log('QUERY ' + JSON.stringify({ n: seen, from: rinfo.address, types: q.questions.map((x) => x.type) }));
  if (cfg.silent) return;
  if (cfg.onlyGarbage || seen <= (cfg.garbageFirst ?? 0)) {
    for (let i = 0; i < 3; i++) raw4.send(randomBytes(40 + i * 100), 5353, '224.0.0.251');
    raw4.send(Buffer.from([0, 0, 0x84, 0, 0, 0, 0, 5, 0, 0, 0, 0, 0xc0, 0x0c]), 5353, '224.0.0.251'); // compression loop
    mdns.respond({ answers: junk() });
    return;
  }
  mdns.respond({ answers: records() });
}
const m4 = makeMdns({ interface: '${ADVERTISED}', bind: '0.0.0.0' });
m4.on('query', (q, r) => onQuery(m4, q, r));
m4.on('warning', () => {});
console.log('READY');
`;

/** Node side: discover, then GET the URL; prints what happened (errors included). */
const NODE = `
import { discoverConductor } from '${REPO_ROOT}/src/conductor/mdns.ts';
import { conductorTarget } from '${REPO_ROOT}/src/conductor/discovery-http.ts';
const { request } = await import('${REPO_ROOT}/node_modules/undici/index.js');
try {
  const found = await discoverConductor({ timeoutMs: Number(process.env.DISCOVER_MS) });
  const target = conductorTarget(found.url);
  const res = await request(target.url + '/', { dispatcher: target.dispatcher });
  const body = await res.body.json();
  console.log('RESULT ' + JSON.stringify({ found, status: res.statusCode, body }));
} catch (err) {
  console.log('RESULT ' + JSON.stringify({ error: { name: err.name, message: err.message } }));
}
process.exit(0);
`;

interface NodeOutcome {
  found?: { url: string; params: Record<string, string>; ignoredParams: string[] };
  status?: number;
  body?: { host?: string };
  error?: { name: string; message: string };
}

describe('mDNS discovery against silent, broken and hostile responders', () => {
  let node: Netns | undefined;
  let peer: Netns | undefined;

  beforeAll(async () => {
    peer = await createNetns('mhp');
    node = await createNetns('mhn');
    await linkVeth(peer, 'eth0', node, 'eth0');
    await peer.ip(['addr', 'add', `${ADVERTISED}/24`, 'dev', 'eth0']);
    await peer.ip(['addr', 'add', `${EVIL}/24`, 'dev', 'eth0']);
    await node.ip(['addr', 'add', '10.251.0.10/24', 'dev', 'eth0']);
    // A multicast route so the peer's responder sends on eth0 (no default route here).
    await peer.ip(['route', 'add', '224.0.0.0/4', 'dev', 'eth0']);
  }, 60_000);

  afterAll(async () => {
    await destroyNetns(node, peer);
  });

  async function scenario(cfg: ResponderConfig, discoverMs: number): Promise<{ outcome: NodeOutcome; log: string }> {
    const responder = await peer!.spawnScript(RESPONDER, { env: { RESPONDER_CONFIG: JSON.stringify(cfg) } });
    try {
      for (let i = 0; i < 200 && !responder.output().includes('READY'); i++) await new Promise((r) => setTimeout(r, 100));
      const r = await node!.runScript(NODE, { env: { DISCOVER_MS: String(discoverMs) }, timeoutMs: 120_000 });
      if (r.result === undefined) throw new Error(`node script crashed (${r.exitCode}):\n${r.stderr.slice(-3000)}`);
      return { outcome: r.result as NodeOutcome, log: await responder.stop() };
    } finally {
      await responder.stop();
    }
  }

  const hits = (log: string) =>
    log.split('\n').filter((l) => l.startsWith('HIT ')).map((l) => JSON.parse(l.slice(4)) as { host: string; port: number; url: string });
  const queries = (log: string) => log.split('\n').filter((l) => l.startsWith('QUERY ')).length;

  it('retries while nobody answers, then fails with a clear error', async () => {
    const { outcome, log } = await scenario({ silent: true }, 4000);
    expect(outcome.error?.name).toBe('ConductorNotFoundError');
    expect(outcome.error?.message).toMatch(/baremetal\._openstack\._tcp\.local.*nothing answered/);
    expect(queries(log)).toBeGreaterThan(1); // it asked again, not once
    expect(hits(log)).toEqual([]);
  }, 60_000);

  it('survives garbage and invalid records, and reports them when nothing valid comes', async () => {
    const { outcome, log } = await scenario({ onlyGarbage: true }, 4000);
    expect(outcome.error?.name).toBe('ConductorNotFoundError');
    expect(outcome.error?.message).toMatch(/rejected answers/);
    expect(outcome.error?.message).toMatch(/SRV port 0 is invalid/);
    expect(outcome.error?.message).toMatch(/A 0\.0\.0\.0 is unspecified/);
    expect(outcome.error?.message).toMatch(/not http or https/);
    expect(hits(log)).toEqual([]);
  }, 60_000);

  it('still finds a valid answer that follows garbage', async () => {
    const { outcome, log } = await scenario({ garbageFirst: 2, txt: [b64('protocol=http')] }, 20_000);
    expect(outcome.error).toBeUndefined();
    expect(outcome.found?.url).toBe(`http://${ADVERTISED}:6385`);
    expect(outcome.body?.host).toBe(ADVERTISED);
    expect(hits(log)).toEqual([{ host: ADVERTISED, port: 6385, url: '/' }]);
  }, 60_000);

  const hostilePaths = ['@evil.host/', `@${EVIL}/`, `//${EVIL}/x`, '/v1\r\nHost: evil', '/../../x', `http://${EVIL}/`, '/a?b=@evil', '/%2e%2e/x', '\\\\evil\\x'];
  for (const path of hostilePaths) {
    it(`refuses TXT path ${JSON.stringify(path)} and talks to nobody`, async () => {
      const { outcome, log } = await scenario({ txt: [b64('protocol=http'), b64(`path=${path}`)] }, 3000);
      expect(outcome.error?.name).toBe('ConductorNotFoundError');
      expect(outcome.error?.message).toMatch(/rejected answers: .*TXT path/);
      expect(hits(log)).toEqual([]);
    }, 60_000);
  }

  it('honours only allow-listed TXT parameters and only talks to the advertised address', async () => {
    const txt = [
      'protocol=http',
      'path=/api',
      'ipa_debug=1',
      'ipa_ntp_server=10.251.0.1',
      `ipa_api_url=http://${EVIL}/`,
      'ipa_agent_token=stolen',
      'ipa_insecure=1',
      `ipa_inspection_callback_url=http://${EVIL}:5050/v1/continue`,
      'ipa_collect_lldp=1',
    ].map(b64);
    const { outcome, log } = await scenario({ txt }, 20_000);
    expect(outcome.error).toBeUndefined();
    expect(outcome.found?.url).toBe(`http://${ADVERTISED}:6385/api`);
    expect(outcome.found?.params).toEqual({ 'ipa-debug': 'true' });
    expect(outcome.found?.ignoredParams.map((p) => p.split(' ')[0]).sort()).toEqual(
      ['ipa_agent_token', 'ipa_api_url', 'ipa_collect_lldp', 'ipa_insecure', 'ipa_inspection_callback_url', 'ipa_ntp_server'].sort(),
    );
    expect(hits(log)).toEqual([{ host: ADVERTISED, port: 6385, url: '/api/' }]);
  }, 60_000);
});
