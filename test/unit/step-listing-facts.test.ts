import { describe, expect, it, vi } from 'vitest';
import { CommandEngine } from '../../src/commands/engine.ts';
import { stepCommands } from '../../src/commands/step-commands.ts';
import { HardwareView } from '../../src/hardware-view.ts';
import type { BlockDevice } from '../../src/hardware/types.ts';
import { loadConfig } from '../../src/config.ts';
import { Guard } from '../../src/system/safety.ts';
import { ALL_STEPS } from '../../steps/index.ts';
import { StepRegistry } from '../../steps/registry.ts';
import type { StepDescriptor } from '../../steps/types.ts';

// get_clean_steps (and get_deploy/service_steps) filter steps by the vendor,
// the disks and the tools. The vendor used to come from a whole inventory
// (LLDP included: up to 30 s, on every listing); it now comes from the SMBIOS
// string the kernel exposes, and the disks from the block device list.

function vendorStep(name: string, vendor: string): StepDescriptor {
  return {
    name,
    interface: 'management',
    priority: { clean: 0 },
    abortable: false,
    rebootRequested: false,
    description: 'test',
    appliesTo: { vendor: [vendor] },
    run: async () => null,
  };
}

const disk: BlockDevice = {
  name: '/dev/vdz', model: '', size: 8 * 2 ** 30, rotational: false, wwn: null, serial: null, vendor: null,
  wwn_with_extension: null, wwn_vendor_extension: null, hctl: null, by_path: null,
};

describe('listing steps', () => {
  it('does not collect the inventory, and still keeps only the steps of this vendor', async () => {
    // The inventory would name the same vendor: only the cost differs.
    const collectInventory = vi.fn(async () => ({ system_vendor: { manufacturer: 'Dell Inc.' } }));
    const listDisks = vi.fn(async () => [disk]);
    const view = new HardwareView(
      new Guard({ inRamdisk: true, allowedDevices: [], allowPowerActions: false }),
      loadConfig({ argv: ['--standalone', '--collect-lldp'], env: {}, cmdlineText: '' }),
      { listDisks, collectInventory, systemManufacturer: () => 'Dell Inc.' },
    );
    const engine = new CommandEngine();
    const registry = new StepRegistry([...ALL_STEPS, vendorStep('t_dell_only', 'dell'), vendorStep('t_hpe_only', 'HPE')]);
    const notRun = () => {
      throw new Error('listing runs no step');
    };
    engine.register('clean', stepCommands('clean', { registry, facts: () => view.facts(), context: notRun }));

    const listed = await engine.execute('clean.get_clean_steps', { node: {}, ports: [] });
    expect(listed.command_status).toBe('SUCCEEDED');
    const names = Object.values((listed.command_result as { clean_steps: Record<string, Array<{ step: string }>> }).clean_steps)
      .flat()
      .map((s) => s.step);
    expect(names).toContain('t_dell_only');
    expect(names).not.toContain('t_hpe_only');
    expect(names).toContain('erase_devices_metadata');
    expect(collectInventory).not.toHaveBeenCalled();
    expect(listDisks).toHaveBeenCalled();
  });
});
