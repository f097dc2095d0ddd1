import { afterEach, describe, expect, it, vi } from 'vitest';
import { Agent } from '../../src/agent.ts';
import { loadConfig } from '../../src/config.ts';
import { freePort } from '../helpers/ironic.ts';

// A virtual-media boot gives the agent its token in parameters.txt (Ironic
// pre-generates it, and answers "******" at lookup). The token must reach the
// TokenKeeper: it used to be built from the kernel command line before
// parameters.txt was read, so the pre-generated token was never used.
// The DHCP-less bring-up itself (mounting the media, SLAAC) is stubbed: it
// only runs in a ramdisk or a test namespace (see network-*.test.ts), and this
// test is about what the agent does with its answer.

const TOKEN = 'Vm3dIaT0kEnFrOmPaRaMeTeRsTxT0123456789abcd';

vi.mock('../../src/system/network/bring-up.ts', () => ({
  prepareDhcpLessNetwork: async () => ({
    vmediaParams: { 'ipa-agent-token': TOKEN, 'ipa-debug': '1' },
    address: { address: '127.0.0.1', interface: 'lo' },
  }),
}));
vi.mock('../../src/system/network/guard.ts', async (importOriginal) => ({
  ...(await importOriginal<typeof import('../../src/system/network/guard.ts')>()),
  namedNetns: () => 'metal-agent-unit-test',
}));

describe('virtual media parameters.txt', () => {
  let agent: Agent | undefined;
  afterEach(async () => {
    await agent?.stop();
    agent = undefined;
  });

  it('its ipa-agent-token becomes the agent token: commands without it are refused, with it they run', async () => {
    const port = await freePort();
    agent = new Agent(
      loadConfig({
        argv: ['--standalone', '--listen-host', '127.0.0.1', '--listen-port', String(port), '--no-enable-auto-tls'],
        env: {},
        cmdlineText: 'boot_method=vmedia',
      }),
    );
    await agent.start();
    expect(agent.tokens.value).toBe(TOKEN);
    const post = (query: string) =>
      fetch(`http://127.0.0.1:${port}/v1/commands/${query}`, { method: 'POST', body: JSON.stringify({ name: 'nope.x', params: {} }) });
    expect((await post('')).status).toBe(401);
    expect((await post('?agent_token=******')).status).toBe(401);
    // Past the token check: the unknown extension's 404 shows the token was accepted.
    expect((await post(`?agent_token=${TOKEN}`)).status).toBe(404);
  });

  it('a token given at boot wins over parameters.txt', async () => {
    const boot = 'BoOtT0kEnFrOmThEkErNeLcOmMaNdLiNe012345678';
    agent = new Agent(loadConfig({ argv: ['--standalone', '--agent-token', boot, '--no-enable-auto-tls', '--listen-host', '127.0.0.1', '--listen-port', String(await freePort())], env: {}, cmdlineText: 'boot_method=vmedia' }));
    await agent.start();
    expect(agent.tokens.value).toBe(boot);
  });
});
