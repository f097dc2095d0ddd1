import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { defineStep } from '../../steps/define.ts';
import { ALL_STEPS } from '../../steps/index.ts';
import { StepRegistry } from '../../steps/registry.ts';
import type { HardwareFacts } from '../../steps/types.ts';

// Step files state only what is particular to them and defineStep() fills the
// rest (issue 15). What Ironic sees must not move: steps-wire.expected.json is
// the registry's wire answer for every phase as it was before defineStep came
// (written from the commit before it, all tools present).

const run = async () => null;
const allTools: HardwareFacts = { vendor: 'any', disks: [], hasTool: () => true };

describe('defineStep', () => {
  it("fills IPA's defaults: interface deploy, not abortable, no reboot", () => {
    const step = defineStep({ name: 'x', priority: { clean: 1 }, description: 'd', run });
    expect(step).toMatchObject({ interface: 'deploy', abortable: false, rebootRequested: false });
  });

  it('keeps what a step states over the defaults', () => {
    const step = defineStep({ name: 'x', interface: 'raid', priority: {}, abortable: true, rebootRequested: true, description: 'd', run });
    expect(step).toMatchObject({ interface: 'raid', abortable: true, rebootRequested: true });
  });

  it('leaves the wire answer of get_clean_steps/get_deploy_steps/get_service_steps as it was', () => {
    const expected = JSON.parse(readFileSync(resolve(import.meta.dirname, 'steps-wire.expected.json'), 'utf8'));
    const registry = new StepRegistry(ALL_STEPS);
    const now = Object.fromEntries((['clean', 'deploy', 'service'] as const).map((p) => [p, registry.wireSteps(p, allTools)]));
    expect(JSON.stringify(now, null, 2) + '\n').toBe(JSON.stringify(expected, null, 2) + '\n');
  });

  // raid.apply_configuration (issue 18) is deploy-only like IPA's, so not abortable either.
  it('leaves the deploy-only steps not abortable, as their files said before (the wire does not show it for deploy steps)', () => {
    const notAbortable = ALL_STEPS.filter((s) => !s.abortable).map((s) => s.name);
    expect(notAbortable).toEqual(['write_image', 'add_kernel_parameters', 'kexec_handoff', 'apply_configuration']);
  });
});
