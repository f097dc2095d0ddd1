import type { HardwareFacts, StepDescriptor, StepPhase } from './types.ts';

// The one registry of steps. Everything that lists steps (get_*_steps, the
// /v1/steps route, docs/steps.md) reads it; execute_*_step finds steps here.

/** IPA's shape: steps grouped under a hardware manager, plus a version map. */
export const HARDWARE_MANAGER = 'MetalAgentHardwareManager';
const HARDWARE_MANAGER_KEY = 'metal_agent_hardware_manager';
const HARDWARE_MANAGER_VERSION = '1.0';

export function hardwareManagerVersions(): Record<string, string> {
  return { [HARDWARE_MANAGER_KEY]: HARDWARE_MANAGER_VERSION };
}

export interface WireStep {
  step: string;
  priority: number;
  interface: string;
  reboot_requested: boolean;
  abortable?: boolean;
  argsinfo?: Record<string, { description: string; required: boolean }>;
}

function applies(step: StepDescriptor, facts: HardwareFacts): boolean {
  const f = step.appliesTo;
  if (!f) return true;
  if (f.vendor && !f.vendor.some((v) => facts.vendor.toLowerCase().includes(v.toLowerCase()))) return false;
  if (f.diskTransports && !facts.disks.some((d) => d.tran && f.diskTransports!.includes(d.tran))) return false;
  if (f.tools && !f.tools.every((t) => facts.hasTool(t))) return false;
  return true;
}

export class StepRegistry {
  constructor(readonly steps: readonly StepDescriptor[]) {
    const seen = new Set<string>();
    for (const s of steps) {
      const key = `${s.interface}.${s.name}`;
      if (seen.has(key)) throw new Error(`step ${key} is registered twice`);
      seen.add(key);
    }
  }

  /** The steps offered for a phase on this hardware, in IPA's wire form. */
  wireSteps(phase: StepPhase, facts: HardwareFacts): WireStep[] {
    return this.steps
      .filter((s) => s.priority[phase] !== undefined && applies(s, facts))
      .map((s) => {
        const wire: WireStep = {
          step: s.name,
          priority: s.priority[phase]!,
          interface: s.interface,
          reboot_requested: s.rebootRequested,
        };
        // Deploy steps carry no `abortable` in IPA; clean and service steps do.
        if (phase !== 'deploy') wire.abortable = s.abortable;
        if (s.argsinfo) {
          wire.argsinfo = Object.fromEntries(
            Object.entries(s.argsinfo).map(([k, v]) => [k, { description: v.description, required: v.required }]),
          );
        }
        return wire;
      });
  }

  find(phase: StepPhase, iface: string, name: string): StepDescriptor | undefined {
    return this.steps.find((s) => s.name === name && s.interface === iface && s.priority[phase] !== undefined);
  }

  /** The capability matrix for operators (route and docs). */
  matrix(): Array<Record<string, unknown>> {
    return this.steps.map((s) => ({
      name: s.name,
      interface: s.interface,
      clean_priority: s.priority.clean ?? null,
      deploy_priority: s.priority.deploy ?? null,
      service_priority: s.priority.service ?? null,
      abortable: s.abortable,
      reboot_requested: s.rebootRequested,
      applies_to: s.appliesTo ?? null,
      description: s.description,
      args: Object.fromEntries(
        Object.entries(s.argsinfo ?? {}).map(([k, v]) => [k, { description: v.description, required: v.required }]),
      ),
    }));
  }
}

function cell(v: unknown): string {
  return v === null || v === undefined ? '—' : String(v);
}

export function stepMatrixMarkdown(registry: StepRegistry): string {
  const lines = [
    '# Steps',
    '',
    'Generated from `steps/` by `make docs`; do not edit by hand. The same matrix is served at `GET /v1/steps`.',
    '',
    'A priority of — means the step is not offered in that phase; 0 means it runs only when asked for',
    '(manual cleaning, deploy templates, `baremetal node service`).',
    '',
    '| step | interface | clean | deploy | service | abortable | applies to | arguments | what it does |',
    '| --- | --- | --- | --- | --- | --- | --- | --- | --- |',
  ];
  for (const s of registry.steps) {
    const applies = s.appliesTo
      ? [
          s.appliesTo.vendor ? `vendor: ${s.appliesTo.vendor.join(', ')}` : '',
          s.appliesTo.diskTransports ? `disks: ${s.appliesTo.diskTransports.join(', ')}` : '',
          s.appliesTo.tools ? `needs ${s.appliesTo.tools.join(', ')}` : '',
          s.appliesTo.note ?? '',
        ]
          .filter(Boolean)
          .join('; ')
      : 'any';
    const args = Object.entries(s.argsinfo ?? {})
      .map(([k, v]) => `\`${k}\`${v.required ? ' (required)' : ''}`)
      .join(', ');
    const { clean, deploy, service } = s.priority;
    const row = [`\`${s.name}\``, s.interface, cell(clean), cell(deploy), cell(service)];
    row.push(s.abortable ? 'yes' : 'no', applies, args || '—', s.description);
    lines.push(`| ${row.join(' | ')} |`);
  }
  return lines.join('\n') + '\n';
}
