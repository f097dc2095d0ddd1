import { expect } from 'vitest';
import type { Vm } from './qemu.ts';

/** What the check needs of an Ironic lab (helpers/ironic.ts and ironic-release.ts both fit). */
interface IronicLab {
  waitForState(uuid: string, states: string[], timeoutSec: number): Promise<Record<string, any>>;
  log(): string;
}

/**
 * A deploy through Ironic that installs a boot loader ended as it should: the node is active
 * with no error, Ironic asked the agent for install_bootloader, and the agent's
 * standby.power_off stopped the ramdisk VM (qemu runs with -no-reboot, so it exits). Returns the
 * ramdisk's console for further checks.
 */
export async function expectDeployedAndPoweredOff(ironic: IronicLab, uuid: string, ramdiskVm: Vm, timeoutSec: number): Promise<string> {
  const node = await ironic.waitForState(uuid, ['active', 'deploy failed'], timeoutSec);
  const serial = await ramdiskVm.serialText();
  expect(node.last_error ?? null, serial.slice(-4000)).toBeNull();
  expect(node.provision_state).toBe('active');
  expect(ironic.log()).toMatch(/install_bootloader/);
  for (let i = 0; i < 240 && ramdiskVm.alive(); i++) await new Promise((r) => setTimeout(r, 500));
  expect(ramdiskVm.alive(), serial.slice(-2000)).toBe(false);
  return ramdiskVm.serialText();
}
