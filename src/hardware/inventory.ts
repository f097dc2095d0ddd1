import { existsSync } from 'node:fs';
import { hostname } from 'node:os';
import { parseKernelCmdline } from '../base/kernel-cmdline.ts';
import { log } from '../log.ts';
import { getBmcAddress, getBmcV6Address } from './bmc.ts';
import { listBlockDevices } from './block-devices.ts';
import { getCpu, type Cpu } from './cpu.ts';
import { listNetworkInterfaces, type NetworkInterface } from './interfaces.ts';
import { getMemory, type Memory } from './memory.ts';
import { fitInspectionPayload } from './inspection-limits.ts';
import { guessRootDisk, RootDeviceNotFoundError } from './root-device-hints.ts';
import { readTrimmed } from './sysfs.ts';
import { getSystemVendor, type SystemVendor } from './system-vendor.ts';
import type { BlockDevice } from './types.ts';

// The hardware inventory, field for field what IPA 9.4's list_hardware_info
// returns: it goes to Ironic on lookup/inspection and is what root device
// hints and inspection rules look at. Collecting it only reads.

export interface BootInfo {
  current_boot_mode: 'uefi' | 'bios';
  /** BOOTIF from the kernel command line, as given (e.g. "01-52-54-00-12-34-56"). */
  pxe_interface: string | null;
}

export interface Inventory {
  interfaces: NetworkInterface[];
  cpu: Cpu;
  disks: BlockDevice[];
  memory: Memory;
  /** null when the conductor said agent_skip_bmc_detect (it manages the BMC out of band: Redfish). */
  bmc_address: string | null;
  bmc_v6address: string | null;
  system_vendor: SystemVendor;
  boot: BootInfo;
  hostname: string;
}

export interface InventoryOptions {
  /** ipa-collect-lldp: listen for LLDP frames (up to lldpTimeoutSec per run). */
  collectLldp?: boolean;
  lldpTimeoutSec?: number;
  /** Overrides BOOTIF from /proc/cmdline. */
  bootif?: string | null;
  /**
   * Ironic 2026.2's agent_skip_bmc_detect (lookup config; true for redfish management):
   * no ipmitool probing, bmc_address and bmc_v6address null, as IPA 13 reports them.
   */
  skipBmcDetect?: boolean;
  /** Where disks come from; defaults to every local disk, listed read-only. */
  listDisks?: () => Promise<BlockDevice[]>;
}

export function bootInfo(bootif?: string | null): BootInfo {
  return {
    current_boot_mode: existsSync('/sys/firmware/efi') ? 'uefi' : 'bios',
    pxe_interface: bootif !== undefined ? bootif : (parseKernelCmdline(readTrimmed('/proc/cmdline') ?? '').BOOTIF ?? null),
  };
}

export async function collectInventory(opts: InventoryOptions = {}): Promise<Inventory> {
  const started = Date.now();
  // Independent sources run in parallel; LLDP (if asked) is the slow one.
  const [interfaces, cpu, disks, memory, bmc_address, bmc_v6address, system_vendor] = await Promise.all([
    listNetworkInterfaces({ collectLldp: opts.collectLldp, lldpTimeoutSec: opts.lldpTimeoutSec }),
    getCpu(),
    (opts.listDisks ?? (() => listBlockDevices()))(),
    getMemory(),
    opts.skipBmcDetect ? null : getBmcAddress(),
    opts.skipBmcDetect ? null : getBmcV6Address(),
    getSystemVendor(),
  ]);
  const inventory: Inventory = {
    interfaces,
    cpu,
    disks,
    memory,
    bmc_address,
    bmc_v6address,
    system_vendor,
    boot: bootInfo(opts.bootif),
    hostname: hostname(),
  };
  log.info({ ms: Date.now() - started, disks: disks.length, interfaces: interfaces.length }, 'inventory collected');
  return inventory;
}

export interface InspectionPayload {
  inventory: Inventory;
  /** The disk a deploy without hints would pick (absent when none is big enough). */
  root_disk?: BlockDevice;
  /** BOOTIF, kept for older inspector versions (IPA's boot_interface). */
  boot_interface: string | null;
  configuration: { collectors: string[]; managers: Array<{ name: string; version: string }> };
  /** Base64 of a gzipped tar of logs (IPA's "logs" collector), when the caller adds it. */
  logs?: string;
  /** Accumulated collector failures, or null. */
  error: string | null;
  /** Set when the logs were cut to fit Ironic's body limit (inspection-limits.ts). */
  logs_truncated?: { reason: string; original_chars: number; sent_chars: number };
}

/**
 * The JSON body IPA 9.4 POSTs to ipa-inspection-callback-url (inspector.py:
 * collect_default, optionally collect_logs, then call_inspector). The
 * caller does the POST.
 */
export function inspectionPayload(
  inventory: Inventory,
  opts: {
    logs?: string;
    errors?: string[];
    collectors?: string[];
    managers?: Array<{ name: string; version: string }>;
  } = {},
): InspectionPayload {
  const payload: InspectionPayload = {
    inventory,
    boot_interface: inventory.boot.pxe_interface,
    configuration: {
      collectors: opts.collectors ?? (opts.logs !== undefined ? ['default', 'logs'] : ['default']),
      managers: opts.managers ?? [{ name: 'generic_hardware_manager', version: '1.1' }],
    },
    error: opts.errors?.length ? opts.errors.join('\n') : null,
  };
  try {
    payload.root_disk = guessRootDisk(inventory.disks);
  } catch (err) {
    if (!(err instanceof RootDeviceNotFoundError)) throw err;
    log.warn('no suitable root device detected for the inspection data');
  }
  if (opts.logs !== undefined) payload.logs = opts.logs;
  // Under Ironic's body and nesting limits, logs cut if need be (and said so).
  return fitInspectionPayload(payload as InspectionPayload & Record<string, unknown>).payload;
}
