import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { log } from '../log.ts';
import { hasTool, run } from '../system/exec.ts';
import { fitInspectionPayload } from './inspection-limits.ts';
import { reportedInterfaceNames } from './interfaces.ts';
import { inspectionPayload, type Inventory } from './inventory.ts';
import { collectLldp } from './lldp.ts';

// The inspection data IPA 13 POSTs to ipa-inspection-callback-url, built by
// the collectors named in ipa-inspection-collectors, in the order given
// (inspector.py and its collectors):
//   default        inventory, root_disk, boot_interface, configuration
//   logs           logs: base64 of a gzipped tar (the ramdisk-error hook stores it)
//   pci-devices    pci_devices: vendor/product/class/revision/bus/numa_node of /sys/bus/pci/devices
//   lldp           lldp_raw: per interface the TLVs of one LLDP frame ([] when none came)
//   numa-topology  numa_topology: ram, cpus (by core, with thread siblings) and nics per NUMA node
//   dmi-decode     dmi: `dmidecode -t bios -t processor -t memory`, parsed into bios, cpu, memory
//   extra-hardware not available: IPA runs python-hardware's hardware-detect, which this
//                  agent lacks, so it fails as IPA fails without it
// A collector that fails adds to `error` and the others still run (IPA:
// AccumulatedFailures); Ironic's ramdisk-error hook then fails the inspection
// with that text, so an operator sees why.

export const COLLECTORS = ['default', 'logs', 'pci-devices', 'lldp', 'numa-topology', 'dmi-decode', 'extra-hardware'] as const;

export interface CollectorDeps {
  inventory(): Promise<Inventory>;
  /** IPA's collect_system_logs: base64 of a gzipped tar. */
  logs(): Promise<string>;
  lldpTimeoutSec: number;
  /** Root of sysfs (tests give a fake tree). */
  sysRoot?: string;
}

export function collectorNames(spec: string): string[] {
  return spec
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
}

const read = (path: string): string | null => {
  try {
    return readFileSync(path, 'utf8').trim();
  } catch {
    return null;
  }
};

/** "0x8086" -> "8086", as IPA keeps the part after the x. */
const hexId = (v: string | null): string | null => (v === null ? null : (v.split('x')[1] ?? null));

export function pciDevices(sys = '/sys'): Array<Record<string, string | null>> {
  const base = join(sys, 'bus/pci/devices');
  const out: Array<Record<string, string | null>> = [];
  for (const bus of readdirSync(base).sort()) {
    const dir = join(base, bus);
    const [vendor, product, cls] = [hexId(read(join(dir, 'vendor'))), hexId(read(join(dir, 'device'))), hexId(read(join(dir, 'class')))];
    if (!vendor || !product || !cls) {
      log.warn({ bus }, 'PCI device without vendor, product or class: skipped');
      continue;
    }
    out.push({ vendor_id: vendor, product_id: product, class: cls, revision: hexId(read(join(dir, 'revision'))), bus, numa_node_id: read(join(dir, 'numa_node')) });
  }
  return out;
}

export interface NumaTopology {
  ram: Array<{ numa_node: number; size_kb: number }>;
  cpus: Array<{ cpu: number; numa_node: number; thread_siblings: number[] }>;
  nics: Array<{ name: string; numa_node: number }>;
}

/** IPA's numa_inspector.collect_numa_topology_info, from sysfs. Throws when the kernel shows no NUMA node. */
export function numaTopology(sys = '/sys'): NumaTopology {
  const nodesDir = join(sys, 'devices/system/node');
  const nodes = existsSync(nodesDir) ? readdirSync(nodesDir).filter((n) => /^node\d+$/.test(n)) : [];
  if (!nodes.length) throw new Error(`no NUMA node under ${nodesDir}`);
  const topo: NumaTopology = { ram: [], cpus: [], nics: [] };
  for (const node of nodes.sort((a, b) => Number(a.slice(4)) - Number(b.slice(4)))) {
    const id = Number(node.slice(4));
    const mem = /MemTotal:\s+(\d+)\s*kB/.exec(read(join(nodesDir, node, 'meminfo')) ?? '');
    if (!mem) throw new Error(`no MemTotal in ${join(nodesDir, node, 'meminfo')}`);
    topo.ram.push({ numa_node: id, size_kb: Number(mem[1]) });
    const cores = new Map<number, Set<number>>();
    for (const cpu of readdirSync(join(nodesDir, node)).filter((c) => /^cpu\d+$/.test(c))) {
      const core = Number(read(join(nodesDir, node, cpu, 'topology/core_id')));
      if (!Number.isFinite(core)) continue;
      const set = cores.get(core) ?? new Set<number>();
      set.add(Number(cpu.slice(3)));
      cores.set(core, set);
    }
    for (const [core, threads] of [...cores].sort((a, b) => a[0] - b[0])) {
      topo.cpus.push({ cpu: core, numa_node: id, thread_siblings: [...threads].sort((a, b) => a - b) });
    }
  }
  const net = join(sys, 'class/net');
  for (const name of existsSync(net) ? readdirSync(net).sort() : []) {
    const n = read(join(net, name, 'device/numa_node'));
    if (n === null) continue; // virtual interfaces have no device
    topo.nics.push({ name, numa_node: Math.max(Number(n), 0) });
  }
  return topo;
}

type DmiFields = Record<string, string | string[]>;

/**
 * dmidecode's text, section by section: "Key: value" lines, and keys whose
 * values follow one a line, indented deeper (Characteristics, Flags).
 */
export function parseDmi(text: string): { bios: DmiFields; cpu: DmiFields[]; memory: Record<string, string | string[] | DmiFields[]> } {
  const sections: Array<{ name: string; fields: DmiFields }> = [];
  let current: { name: string; fields: DmiFields } | undefined;
  let listKey: string | undefined;
  let named = false; // the line after "Handle ..." names the section
  for (const line of text.split('\n')) {
    if (/^Handle 0x/.test(line)) {
      current = undefined;
      listKey = undefined;
      named = true;
      continue;
    }
    if (line.trim() === '') {
      current = undefined;
      named = false;
      continue;
    }
    if (named) {
      current = { name: line.trim(), fields: {} };
      sections.push(current);
      named = false;
      continue;
    }
    if (!current || !/^\s/.test(line)) continue; // "# dmidecode 3.4", "Getting SMBIOS data ..."
    const depth = /^\t*/.exec(line)![0].length;
    const body = line.trim();
    if (depth >= 2 && listKey) {
      (current.fields[listKey] as string[]).push(body);
      continue;
    }
    const m = /^([^:]+):\s*(.*)$/.exec(body);
    if (!m) continue;
    const [, key, value] = m as unknown as [string, string, string];
    if (value === '') {
      current.fields[key] = [];
      listKey = key;
    } else {
      current.fields[key] = value;
      listKey = undefined;
    }
  }
  const of = (name: string) => sections.filter((s) => s.name === name).map((s) => s.fields);
  return {
    bios: of('BIOS Information')[0] ?? {},
    cpu: of('Processor Information'),
    memory: { ...(of('Physical Memory Array')[0] ?? {}), devices: of('Memory Device') },
  };
}

/** The data for `names`, each collector in turn; failures end up in `error`. Fitted to Ironic's body limits. */
export async function collectInspectionData(names: string[], deps: CollectorDeps): Promise<Record<string, unknown>> {
  const sys = deps.sysRoot ?? '/sys';
  const data: Record<string, unknown> = {};
  const failures: string[] = [];
  const started = Date.now();
  for (const name of names) {
    try {
      switch (name) {
        case 'default': {
          const { error: _none, ...payload } = inspectionPayload(await deps.inventory(), { collectors: names }) as unknown as Record<string, unknown>;
          Object.assign(data, payload);
          break;
        }
        case 'logs':
          data.logs = await deps.logs();
          break;
        case 'pci-devices':
          data.pci_devices = pciDevices(sys);
          break;
        case 'lldp': {
          const ifaces = reportedInterfaceNames(join(sys, 'class/net')).filter((n) => n !== 'lo');
          const heard = await collectLldp(ifaces, deps.lldpTimeoutSec);
          data.lldp_raw = Object.fromEntries(ifaces.map((n) => [n, heard[n] ?? []]));
          break;
        }
        case 'numa-topology':
          data.numa_topology = numaTopology(sys);
          break;
        case 'dmi-decode': {
          if (!(await hasTool('dmidecode'))) throw new Error('dmidecode is not installed');
          const r = await run('dmidecode', ['-t', 'bios', '-t', 'processor', '-t', 'memory'], { timeoutMs: 30_000 });
          data.dmi = parseDmi(r.stdout);
          break;
        }
        case 'extra-hardware':
          // IPA runs hardware-detect (python-hardware), which is not in this ramdisk: the same
          // failure IPA reports without it.
          throw new Error('failed to run hardware-detect utility: not part of this agent');
        default:
          throw new Error(`unknown collector (known: ${COLLECTORS.join(', ')})`);
      }
    } catch (err) {
      failures.push(`collector ${name} failed: ${(err as Error).message}`);
      log.warn({ collector: name, err: (err as Error).message }, 'inspection collector failed (the others still run; Ironic sees the error)');
    }
  }
  data.error = failures.length ? `The following errors were encountered:\n${failures.map((f) => `* ${f}`).join('\n')}` : null;
  log.info({ collectors: names, ms: Date.now() - started, failures: failures.length }, 'inspection data collected');
  return fitInspectionPayload(data).payload;
}
