import { afterEach, describe, expect, it, vi } from 'vitest';
import { Agent } from '../../src/agent.ts';
import { loadConfig } from '../../src/config.ts';
import { freePort } from '../helpers/ironic.ts';

// What virtual media's parameters.txt gives must reach everything the agent
// builds: the config is resolved (bring-up first) before the token keeper and
// the hardware view read it, then frozen. Two settings used to stop short:
// - the token (Ironic pre-generates it and answers "******" at lookup): the
//   TokenKeeper was built from the kernel command line before parameters.txt
//   was read, so the pre-generated token was never used;
// - ipa-collect-lldp: it reached Agent.config while the inventory kept the boot
//   config's false.
// The DHCP-less bring-up itself (mounting the media, SLAAC) is stubbed: it
// only runs in a ramdisk or a test namespace (see network-*.test.ts), and this
// file is about what the agent does with its answer. The inventory collector
// is a spy (no LLDP wait).

const TOKEN = 'Vm3dIaT0kEnFrOmPaRaMeTeRsTxT0123456789abcd';

const collectInventory = vi.hoisted(() => vi.fn(async (_opts: { collectLldp?: boolean }) => ({ stub: true })));

vi.mock('../../src/hardware/inventory.ts', () => ({ collectInventory, inspectionPayload: (inv: unknown) => inv }));
vi.mock('../../src/system/network/bring-up.ts', () => ({
  prepareDhcpLessNetwork: async () => ({
    vmediaParams: { 'ipa-agent-token': TOKEN, 'ipa-debug': '1', 'ipa-collect-lldp': '1' },
    address: { address: '127.0.0.1', interface: 'lo' },
  }),
}));
vi.mock('../../src/system/network/guard.ts', async (importOriginal) => ({
  ...(await importOriginal<typeof import('../../src/system/network/guard.ts')>()),
  namedNetns: () => 'metal-agent-unit-test',
}));

/** An agent booted from virtual media (boot_method=vmedia), serving on a free loopback port. */
async function vmediaAgent(...argv: string[]): Promise<{ agent: Agent; port: number }> {
  const port = await freePort();
  const config = loadConfig({
    argv: ['--standalone', '--listen-host', '127.0.0.1', '--listen-port', String(port), '--no-enable-auto-tls', ...argv],
    env: {},
    cmdlineText: 'boot_method=vmedia',
  });
  return { agent: new Agent(config), port };
}

describe('virtual media parameters.txt', () => {
  let agent: Agent | undefined;
  afterEach(async () => {
    await agent?.stop();
    agent = undefined;
  });

  it('its ipa-agent-token becomes the agent token: commands without it are refused, with it they run', async () => {
    const started = await vmediaAgent();
    agent = started.agent;
    await agent.start();
    expect(agent.tokens.value).toBe(TOKEN);
    const post = (query: string) =>
      fetch(`http://127.0.0.1:${started.port}/v1/commands/${query}`, {
        method: 'POST',
        body: JSON.stringify({ name: 'nope.x', params: {} }),
      });
    expect((await post('')).status).toBe(401);
    expect((await post('?agent_token=******')).status).toBe(401);
    // Past the token check: the unknown extension's 404 shows the token was accepted.
    expect((await post(`?agent_token=${TOKEN}`)).status).toBe(404);
  });

  it('a token given at boot wins over parameters.txt', async () => {
    const boot = 'BoOtT0kEnFrOmThEkErNeLcOmMaNdLiNe012345678';
    agent = (await vmediaAgent('--agent-token', boot)).agent;
    await agent.start();
    expect(agent.tokens.value).toBe(boot);
  });

  it('ipa-collect-lldp=1 given only there reaches the inventory collector, and the config is frozen', async () => {
    agent = (await vmediaAgent()).agent;
    expect(agent.options.collectLldp).toBe(false);
    collectInventory.mockClear();
    await agent.start();
    expect(await agent.hardware.inventory()).toEqual({ stub: true });
    expect(collectInventory).toHaveBeenCalledTimes(1);
    expect(collectInventory.mock.calls[0]![0].collectLldp).toBe(true);
    expect(agent.options.collectLldp).toBe(true);
    expect(Object.isFrozen(agent.options)).toBe(true);
  });
});
