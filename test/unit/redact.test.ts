import { describe, expect, it } from 'vitest';
import { isSecretName, redactText, redactUrl } from '../../src/redact.ts';

// What counts as a secret in text the agent hands out (logs, command results,
// error messages): each case names the secret and what must survive around it.

const TOKEN = 'Zq3xK9vT2mWn8pLr5sYb7cHd4fJg6hQa1eUi0oPk-Xy';

describe('redaction', () => {
  it('masks the agent token on a kernel command line and keeps the other parameters', () => {
    const out = redactText(`BOOT_IMAGE=/vmlinuz ipa-api-url=http://10.0.0.1:6385 ipa-agent-token=${TOKEN} boot_method=vmedia\n`);
    expect(out).not.toContain(TOKEN);
    expect(out).toBe('BOOT_IMAGE=/vmlinuz ipa-api-url=http://10.0.0.1:6385 ipa-agent-token=*** boot_method=vmedia\n');
  });

  it('masks URL userinfo and signed query parameters, keeping host, path and harmless parameters', () => {
    const swift = 'https://swuser:swpass@swift.example:8080/v1/AUTH_a/c/img.raw?temp_url_sig=9f8e7d6c5b4a&temp_url_expires=1700000000';
    expect(redactUrl(swift)).toBe('https://***@swift.example:8080/v1/AUTH_a/c/img.raw?temp_url_sig=***&temp_url_expires=1700000000');
    const s3 = 'https://b.s3.example/k?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIA%2F20240101&X-Amz-Signature=abcdef0123&X-Amz-Security-Token=tok';
    expect(redactUrl(new URL(s3))).toBe('https://b.s3.example/k?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=***&X-Amz-Signature=***&X-Amz-Security-Token=***');
    expect(redactUrl('https://acct.blob.example/c/b?sv=2022&sig=AbC%2Bd&se=2030')).toBe('https://acct.blob.example/c/b?sv=2022&sig=***&se=2030');
    expect(redactUrl('http://10.0.0.1:8080/img.raw')).toBe('http://10.0.0.1:8080/img.raw');
  });

  it('masks secret values in JSON lines (pino) and header lines, not other keys', () => {
    const line = JSON.stringify({ msg: 'x', agent_token: TOKEN, password: 'hunter2', node: 'n1', url: 'http://u:p@h/x' });
    const out = redactText(line);
    expect(JSON.parse(out)).toEqual({ msg: 'x', agent_token: '***', password: '***', node: 'n1', url: 'http://***@h/x' });
    expect(redactText('GET /x\r\nAuthorization: Basic dXNlcjpwYXNz\r\nHost: h\r\n')).toBe('GET /x\r\nAuthorization: ***\r\nHost: h\r\n');
    // Whether a token is there is not the token: such log fields stay readable.
    expect(redactText('{"token":"held","agent_token":"******","msg":"ipa-agent-token=none"}')).toBe('{"token":"held","agent_token":"******","msg":"ipa-agent-token=none"}');
  });

  it('knows secret names by their shape', () => {
    for (const n of ['agent_token', 'ipa-agent-token', 'temp_url_sig', 'sig', 'Signature', 'X-Amz-Signature', 'X-Amz-Credential', 'password', 'os_password', 'api_key', 'client_secret'])
      expect(isSecretName(n), n).toBe(true);
    for (const n of ['design', 'temp_url_expires', 'node_uuid', 'X-Amz-Algorithm', 'root', 'BOOTIF', 'ipa-api-url', 'keyboard'])
      expect(isSecretName(n), n).toBe(false);
  });
});

describe('command errors', () => {
  it('carry no secret a failure message quoted (results can be read without the token on Ironic 21.4)', async () => {
    const { CommandEngine } = await import('../../src/commands/engine.ts');
    const engine = new CommandEngine();
    const url = 'https://glance:s3cretPass@swift.example/v1/AUTH_a/c/img?temp_url_sig=feedbeef1234&temp_url_expires=9';
    engine.register('demo', {
      fail: { async: false, run: async () => { throw new Error(`HTTP 403 from ${url}`); } },
    });
    const result = await engine.execute('demo.fail', {});
    const done = (await engine.wait(result.id)) ?? result;
    expect(done.command_status).toBe('FAILED');
    const wire = JSON.stringify(done.command_error);
    for (const s of ['s3cretPass', 'feedbeef1234']) expect(wire).not.toContain(s);
    expect(done.command_error?.details).toContain('https://***@swift.example/v1/AUTH_a/c/img?temp_url_sig=***&temp_url_expires=9');
  });
});
