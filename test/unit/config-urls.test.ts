import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../src/config.ts';

// ipa-api-url as operators write it, including a link-local conductor with
// its zone (RFC 6874), which WHATWG URL parsing alone rejects.
const load = (cmdline: string) => loadConfig({ argv: [], env: {}, cmdlineText: cmdline });

describe('ipa-api-url', () => {
  it('takes a link-local conductor URL with its zone, unchanged', () => {
    expect(load('ipa-api-url=http://[fe80::1%25eth0]:6385').apiUrl).toBe('http://[fe80::1%25eth0]:6385');
  });

  it('takes IPv4, IPv6 and mdns', () => {
    expect(load('ipa-api-url=http://192.0.2.1:6385').apiUrl).toBe('http://192.0.2.1:6385');
    expect(load('ipa-api-url=https://[fd00::1]:6385').apiUrl).toBe('https://[fd00::1]:6385');
    expect(load('ipa-api-url=mdns').apiUrl).toBe('mdns');
  });

  it('refuses what is not an http(s) URL, naming the parameter', () => {
    expect(() => load('ipa-api-url=not-a-url')).toThrow(ConfigError);
    expect(() => load('ipa-api-url=not-a-url')).toThrow(/api-url/);
    expect(() => load('ipa-api-url=ftp://192.0.2.1/')).toThrow(/http/);
    expect(() => load('ipa-api-url=http://[fe80::1%25eth0')).toThrow(/api-url/);
  });
});

// Ironic's tokens are secrets.token_urlsafe(): one in 64 starts with '-'. The ramdisk reads the
// token from the kernel command line (or virtual media). As a flag it must be written
// --agent-token=VALUE: util.parseArgs refuses '--agent-token -x' as a flag missing its value.
describe('ipa-agent-token', () => {
  const token = '-b3dEf6hIj9lMn2pQr5tUv8xYz1bCd4fGh7jKl0nPq';
  it('takes a token that starts with a dash, from the kernel command line and as --agent-token=', () => {
    const api = 'ipa-api-url=http://192.0.2.1:6385';
    expect(load(`${api} ipa-agent-token=${token}`).agentToken).toBe(token);
    expect(loadConfig({ argv: [`--agent-token=${token}`], env: {}, cmdlineText: api }).agentToken).toBe(token);
  });
});
