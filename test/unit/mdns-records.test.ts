import { createServer, type Server } from 'node:http';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { conductorTarget, splitZone, zoneAgent } from '../../src/conductor/discovery-http.ts';
import {
  SERVICE_INSTANCE,
  ServiceCollector,
  allowedParams,
  buildConductorUrl,
  parseAddressRecord,
  parseTxt,
  urlHost,
  validPath,
} from '../../src/conductor/discovery-records.ts';

// The pure half of mDNS discovery: every field of an answer is untrusted.

const txt = (...entries: Array<string | Buffer>) => entries.map((e) => (typeof e === 'string' ? Buffer.from(e) : e));

describe('TXT properties', () => {
  it('reads protocol, path and the rest; first occurrence wins; keys are case-insensitive', () => {
    const r = parseTxt(txt('protocol=HTTP', 'path=/baremetal/', 'IPA_debug=True', 'ipa_debug=false', 'flag'));
    expect(r).toEqual({ ok: true, value: { protocol: 'http', path: '/baremetal', other: { ipa_debug: 'True', flag: '' } }, dropped: [] });
  });

  it('drops malformed unimportant entries but keeps the record', () => {
    const r = parseTxt(txt('protocol=https', Buffer.from([0x6b, 0x3d, 0xff]), 'bad key=1', 'x=a\nb'));
    expect(r.ok).toBe(true);
    if (r.ok) {
      expect(r.value.protocol).toBe('https');
      expect(r.dropped).toEqual(['(not UTF-8)', '"bad key"', 'x']);
    }
  });

  it('refuses the record for a bad protocol or path', () => {
    expect(parseTxt(txt('protocol=ftp'))).toMatchObject({ ok: false, reason: expect.stringMatching(/not http or https/) });
    expect(parseTxt(txt('path=@evil.host/'))).toMatchObject({ ok: false });
    expect(parseTxt(txt('path=/v1\r\nHost: evil'))).toMatchObject({ ok: false, reason: expect.stringMatching(/control characters/) });
    expect(parseTxt(new Array(65).fill(Buffer.from('a=b')))).toMatchObject({ ok: false, reason: expect.stringMatching(/too many/) });
  });

  it('a single Buffer (not a list) is read too', () => {
    expect(parseTxt(Buffer.from('protocol=http'))).toMatchObject({ ok: true, value: { protocol: 'http' } });
  });
});

describe('TXT path', () => {
  it('accepts plain absolute paths', () => {
    expect(validPath('')).toBe('');
    expect(validPath('/')).toBe('');
    expect(validPath('/baremetal')).toBe('/baremetal');
    expect(validPath('/a/b-c_d.e~f/')).toBe('/a/b-c_d.e~f');
    expect(validPath('/v%31')).toBe('/v%31');
  });
  for (const p of [
    '@evil.host/', 'evil.host', '//evil.host/', '/a//b', '/../x', '/a/./b', '/%2e%2E/x', '/a?x=1', '/a#f', '/a b', '/a\\b',
    '/a@b', '/a:b', 'http://evil/', '/%zz', '/a\r\n', `/${'a'.repeat(300)}`,
  ]) {
    it(`refuses ${JSON.stringify(p.slice(0, 40))}`, () => expect(validPath(p)).toBeUndefined());
  }
});

describe('A/AAAA records', () => {
  it('keeps the interface of a link-local answer from the packet source', () => {
    expect(parseAddressRecord('AAAA', 'FE80::1', { address: 'fe80::99%eth3' })).toEqual({ address: 'fe80::1', family: 6, zone: 'eth3', linkLocal: true });
    expect(parseAddressRecord('AAAA', 'fe80::1', { address: '10.0.0.5', soleInterface: 'eno1' })).toMatchObject({ zone: 'eno1' });
    expect(parseAddressRecord('AAAA', 'fe80::1', { address: '10.0.0.5' })).toMatch(/cannot tell which interface/);
    expect(parseAddressRecord('AAAA', 'fe80::1', { address: 'fe80::2%../../x' })).toMatch(/cannot tell which interface/);
  });
  it('refuses what cannot be a conductor', () => {
    for (const [type, data] of [['A', '0.0.0.0'], ['A', '127.0.0.1'], ['A', '224.0.0.251'], ['A', '255.255.255.255'], ['AAAA', '::'], ['AAAA', '::1'], ['AAAA', 'ff02::fb'], ['AAAA', '::ffff:10.0.0.1'], ['A', 'fd00::1'], ['AAAA', '10.0.0.1'], ['A', 'evil.host'], ['A', 42]] as const) {
      expect(typeof parseAddressRecord(type, data, { address: '10.0.0.1' })).toBe('string');
    }
    expect(parseAddressRecord('A', '10.0.0.1', { address: '10.0.0.1' })).toEqual({ address: '10.0.0.1', family: 4, linkLocal: false });
  });
});

describe('ServiceCollector', () => {
  const srv = (port: unknown, target: unknown) => ({ name: `${SERVICE_INSTANCE}.`, type: 'SRV', data: { port, target } });

  it('assembles SRV, TXT and addresses from answers and additionals, ignoring other names', () => {
    const c = new ServiceCollector();
    c.addPacket(
      {
        answers: [{ name: '_openstack._tcp.local', type: 'PTR', data: SERVICE_INSTANCE }, srv(6385, 'Conductor.local.')],
        additionals: [
          { name: SERVICE_INSTANCE, type: 'TXT', data: txt('protocol=http') },
          { name: 'conductor.local', type: 'AAAA', data: 'fd00::1' },
          { name: 'other.local', type: 'A', data: '10.0.0.66' },
          { name: 'other.baremetal._openstack._tcp.local', type: 'SRV', data: { port: 1, target: 'x.local' } },
        ],
      },
      { address: 'fe80::1%eth0' },
    );
    expect(c.sawPtr).toBe(true);
    expect(c.srv).toEqual({ port: 6385, target: 'conductor.local' });
    expect(c.targetAddresses()).toEqual([{ address: 'fd00::1', family: 6, linkLocal: false }]);
    expect(c.hasEndpoint).toBe(true);
  });

  it('never throws on garbage and remembers why it refused things', () => {
    const c = new ServiceCollector();
    for (const p of [null, 42, 'x', { answers: 'no' }, { answers: [null, 1, { name: 5 }, { name: 'a..b', type: 'A' }] }, { answers: [srv(0, 'x.local'), srv(70000, 'x.local'), srv('80', 'x.local'), srv(80, 'bad name!.local'), srv(80, undefined)] }, { answers: [{ name: SERVICE_INSTANCE, type: 'SRV' }] }]) {
      expect(() => c.addPacket(p, { address: '10.0.0.1' })).not.toThrow();
    }
    expect(c.srv).toBeUndefined();
    expect(c.rejections.join('\n')).toMatch(/SRV port 0 is invalid/);
    expect(c.rejections.join('\n')).toMatch(/SRV target "bad name!.local" is not a host name/);
    expect(c.hasEndpoint).toBe(false);
  });

  it('keeps the first valid SRV and TXT (a later answer cannot redirect) and bounds memory', () => {
    const c = new ServiceCollector();
    c.addPacket({ answers: [srv(6385, 'a.local'), { name: SERVICE_INSTANCE, type: 'TXT', data: txt('protocol=http') }] }, { address: '10.0.0.1' });
    c.addPacket({ answers: [srv(1, 'evil.local'), { name: SERVICE_INSTANCE, type: 'TXT', data: txt('protocol=https', 'path=/x') }] }, { address: '10.0.0.66' });
    expect(c.srv).toEqual({ port: 6385, target: 'a.local' });
    expect(c.txt?.protocol).toBe('http');
    const many = Array.from({ length: 100 }, (_, i) => ({ name: 'a.local', type: 'A', data: `10.0.${i}.1` }));
    c.addPacket({ answers: many }, { address: '10.0.0.1' });
    expect(c.targetAddresses()).toHaveLength(16);
  });

  it('a refused TXT is remembered so that defaults are not used instead', () => {
    const c = new ServiceCollector();
    c.addPacket({ answers: [{ name: SERVICE_INSTANCE, type: 'TXT', data: txt('path=//evil/') }] }, { address: '10.0.0.1' });
    expect(c.txt).toBeUndefined();
    expect(c.txtRejected).toBe(true);
  });
});

describe('conductor URL', () => {
  it('brackets IPv6 and carries a link-local zone as %25', () => {
    expect(urlHost({ address: '10.0.0.1', family: 4, linkLocal: false })).toBe('10.0.0.1');
    expect(urlHost({ address: 'fd00::1', family: 6, linkLocal: false })).toBe('[fd00::1]');
    expect(urlHost({ address: 'fe80::1', family: 6, linkLocal: true, zone: 'eth0' })).toBe('[fe80::1%25eth0]');
    expect(buildConductorUrl({ protocol: 'http', host: '[fe80::1%25eth0]', port: 6385, path: '' })).toBe('http://[fe80::1%25eth0]:6385');
    expect(buildConductorUrl({ protocol: 'https', host: 'ironic.example.com', port: 443, path: '/baremetal' })).toBe('https://ironic.example.com:443/baremetal');
  });
  it('refuses anything whose parsed host or port differs from the parts', () => {
    expect(() => buildConductorUrl({ protocol: 'http', host: '10.0.0.1', port: 6385, path: '@evil/' })).toThrow(/refusing/);
    expect(() => buildConductorUrl({ protocol: 'http', host: 'a@evil', port: 6385, path: '' })).toThrow(/refusing/);
    expect(() => buildConductorUrl({ protocol: 'http', host: '10.0.0.1', port: 6385, path: '/a?b' })).toThrow(/refusing/);
    expect(() => buildConductorUrl({ protocol: 'http', host: '10.0.0.1:1', port: 6385, path: '' })).toThrow(/refusing/);
  });
});

describe('TXT parameter allow-list', () => {
  it('keeps debug and a callback to the same conductor; ignores everything else (NTP too: the agent does not set the clock)', () => {
    const { params, ignored } = allowedParams(
      {
        ipa_debug: 'True',
        ipa_ntp_server: 'ntp.example.com',
        ipa_inspection_callback_url: 'http://[fd00::1]:5050/v1/continue',
        ipa_api_url: 'http://evil/',
        ipa_agent_token: 'x',
        ipa_insecure: '1',
        ipa_global_request_id: 'req-1',
        protocolx: 'ignored silently',
      },
      '[fd00::1]',
    );
    expect(params).toEqual({
      'ipa-debug': 'true',
      'ipa-inspection-callback-url': 'http://[fd00::1]:5050/v1/continue',
    });
    expect(ignored).toEqual(['ipa_ntp_server', 'ipa_api_url', 'ipa_agent_token', 'ipa_insecure', 'ipa_global_request_id']);
  });
  it('validates values', () => {
    const { params, ignored } = allowedParams(
      { ipa_debug: 'maybe', ipa_inspection_callback_url: 'http://10.0.0.66/' },
      '10.0.0.1',
    );
    expect(params).toEqual({});
    expect(ignored.map((i) => i.split(' ')[0])).toEqual(['ipa_debug', 'ipa_inspection_callback_url']);
  });
});

describe('scoped URLs for undici', () => {
  it('splits the zone off', () => {
    expect(splitZone('http://[fe80::1%25eth0]:6385/v1')).toEqual({ url: 'http://[fe80::1]:6385/v1', zone: 'eth0' });
    expect(splitZone('http://[fd00::1]:6385')).toEqual({ url: 'http://[fd00::1]:6385' });
    expect(splitZone('http://10.0.0.1:6385')).toEqual({ url: 'http://10.0.0.1:6385' });
    expect(() => splitZone('http://[fe80::1%25..%2F..]:6385')).toThrow(/invalid interface zone/);
    expect(conductorTarget('http://10.0.0.1:6385').dispatcher).toBeUndefined();
    expect(conductorTarget('http://[fe80::1%25eth0]:6385').dispatcher).toBeDefined();
  });

  describe('the zone agent leaves other hosts alone', () => {
    let server: Server;
    let port = 0;
    beforeAll(async () => {
      server = createServer((_req, res) => res.end('ok'));
      await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
      port = (server.address() as { port: number }).port;
    });
    afterAll(() => new Promise<void>((r) => server.close(() => r())));

    it('connects to a loopback address through it', async () => {
      const agent = zoneAgent('lo');
      const res = await request(`http://127.0.0.1:${port}/`, { dispatcher: agent });
      expect(await res.body.text()).toBe('ok');
      await agent.close();
    });
  });
});
