import { afterEach, describe, expect, it, vi } from 'vitest';
import { Agent } from '../../src/agent.ts';
import { loadConfig } from '../../src/config.ts';
import { freePort } from '../helpers/ironic.ts';

// Settings that virtual media's parameters.txt gives must reach everything the
// agent builds: the config is resolved (bring-up first) before the hardware
// view reads it. ipa-collect-lldp used to stop at Agent.config, while the
// inventory kept the boot config's false. The bring-up is stubbed as in
// vmedia-token.test.ts, and the inventory collector is a spy (no LLDP wait).

const collectInventory = vi.hoisted(() => vi.fn(async (_opts: { collectLldp?: boolean }) => ({ stub: true })));

vi.mock('../../src/hardware/inventory.ts', () => ({ collectInventory, inspectionPayload: (inv: unknown) => inv }));
vi.mock('../../src/system/network/bring-up.ts', () => ({
  prepareDhcpLessNetwork: async () => ({
    vmediaParams: { 'ipa-collect-lldp': '1' },
    address: { address: '127.0.0.1', interface: 'lo' },
  }),
}));
vi.mock('../../src/system/network/guard.ts', async (importOriginal) => ({
  ...(await importOriginal<typeof import('../../src/system/network/guard.ts')>()),
  namedNetns: () => 'metal-agent-unit-test',
}));

describe('the config is final before anything reads it', () => {
  let agent: Agent | undefined;
  afterEach(async () => {
    await agent?.stop();
    agent = undefined;
  });

  it('ipa-collect-lldp=1 given only in parameters.txt reaches the inventory collector, and the config is frozen', async () => {
    agent = new Agent(
      loadConfig({
        argv: ['--standalone', '--listen-host', '127.0.0.1', '--listen-port', String(await freePort()), '--no-enable-auto-tls'],
        env: {},
        cmdlineText: 'boot_method=vmedia',
      }),
    );
    expect(agent.options.collectLldp).toBe(false);
    await agent.start();
    expect(await agent.hardware.inventory()).toEqual({ stub: true });
    expect(collectInventory).toHaveBeenCalledTimes(1);
    expect(collectInventory.mock.calls[0]![0].collectLldp).toBe(true);
    expect(agent.options.collectLldp).toBe(true);
    expect(Object.isFrozen(agent.options)).toBe(true);
  });
});
