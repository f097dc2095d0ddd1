// Writes docs/steps.md from the step registry (`make docs`).
import { writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { ALL_STEPS } from '../steps/index.ts';
import { StepRegistry, stepMatrixMarkdown } from '../steps/registry.ts';

const out = resolve(import.meta.dirname, '../docs/steps.md');
writeFileSync(out, stepMatrixMarkdown(new StepRegistry(ALL_STEPS)));
console.log(`wrote ${out}`);
