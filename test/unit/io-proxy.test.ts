import { describe, expect, it } from 'vitest';
import { proxyFor } from '../../src/io/proxy.ts';

const proxies = { http: 'http://proxy:3128', https: 'http://sproxy:3128' };
const p = (url: string, noProxy?: string) => proxyFor(new URL(url), { proxies, noProxy });

describe('proxyFor', () => {
  it('uses the proxy for the URL scheme', () => {
    expect(p('http://images.example.org/a')).toBe('http://proxy:3128');
    expect(p('https://images.example.org/a')).toBe('http://sproxy:3128');
    expect(proxyFor(new URL('http://x/a'), {})).toBeUndefined();
  });

  it('honours no_proxy hosts, domain suffixes, ports, IPs and *', () => {
    expect(p('http://images.example.org/a', 'example.org')).toBeUndefined();
    expect(p('http://images.example.org/a', '.example.org')).toBeUndefined();
    expect(p('http://images.example.org/a', 'ample.org')).toBe('http://proxy:3128');
    expect(p('http://10.0.0.5:8080/a', 'foo, 10.0.0.5:8080')).toBeUndefined();
    expect(p('http://10.0.0.5:8081/a', '10.0.0.5:8080')).toBe('http://proxy:3128');
    expect(p('http://[fd00::1]/a', 'fd00::1')).toBeUndefined();
    expect(p('https://anything/a', '*')).toBeUndefined();
  });
});
