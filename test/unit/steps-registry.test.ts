import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ALL_STEPS } from '../../steps/index.ts';
import { StepRegistry, stepMatrixMarkdown } from '../../steps/registry.ts';
import type { HardwareFacts } from '../../steps/types.ts';

const registry = new StepRegistry(ALL_STEPS);
const facts = (over: Partial<HardwareFacts> = {}): HardwareFacts => ({ vendor: 'Dell Inc.', disks: [], hasTool: () => true, ...over });

describe('step registry', () => {
  it('offers IPA\'s clean priorities and no abortable key on deploy steps', () => {
    const clean = registry.wireSteps('clean', facts());
    expect(clean.find((s) => s.step === 'erase_devices_metadata')).toMatchObject({ priority: 99, interface: 'deploy', abortable: true, reboot_requested: false });
    expect(clean.find((s) => s.step === 'erase_devices')?.priority).toBe(10);
    const deploy = registry.wireSteps('deploy', facts());
    const write = deploy.find((s) => s.step === 'write_image')!;
    expect(write).not.toHaveProperty('abortable');
    expect(write.argsinfo?.image_info).toEqual({ description: expect.any(String), required: true });
  });

  it('does not offer a step whose hardware filter does not match', () => {
    const withTools = registry.wireSteps('clean', facts()).map((s) => s.step);
    const without = registry.wireSteps('clean', facts({ hasTool: () => false })).map((s) => s.step);
    expect(withTools).toContain('burnin_cpu');
    expect(without).not.toContain('burnin_cpu');
    expect(without).toContain('erase_devices');
  });

  it('docs/steps.md is generated from the registry (run `make docs` after changing a step)', () => {
    const committed = readFileSync(resolve(import.meta.dirname, '../../docs/steps.md'), 'utf8');
    expect(committed).toBe(stepMatrixMarkdown(registry));
  });
});
