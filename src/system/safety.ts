import { readFileSync, realpathSync, statSync } from 'node:fs';

// The agent's most important rule: outside a ramdisk it may write only to the
// block devices it was explicitly given, and it never powers off, reboots or
// kexecs the machine. Every destructive path asks a Guard first.

export class SafetyError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SafetyError';
  }
}

/**
 * Written into the initramfs by ramdisk-build/ramdisk.sh: only our own ramdisk
 * has it. A tmpfs root alone proves nothing (a diskless host, a live system,
 * a container), and there the agent must not treat every disk as its own.
 */
export const RAMDISK_MARKER = '/etc/metal-agent-ramdisk';

export interface RamdiskProbe {
  /** Where the mount table is read (default /proc/mounts). */
  mountsPath?: string;
  /** The marker our ramdisk carries (default RAMDISK_MARKER). */
  markerPath?: string;
}

/**
 * True only in the metal-agent ramdisk: / is the kernel's rootfs/tmpfs/ramfs
 * AND the ramdisk's marker file is there. Either alone is not enough.
 */
export function runningInRamdisk(probe: RamdiskProbe = {}): boolean {
  return rootIsInMemory(safeRead(probe.mountsPath ?? '/proc/mounts')) && isRegularFile(probe.markerPath ?? RAMDISK_MARKER);
}

/** Whether / is mounted from memory (rootfs, tmpfs, ramfs), judged from a mount table's text. */
function rootIsInMemory(mountsText: string): boolean {
  // The last mount of / wins (rootfs is listed first, then whatever replaced it).
  let rootType: string | undefined;
  for (const line of mountsText.split('\n')) {
    const [, mountPoint, fsType] = line.split(' ');
    if (mountPoint === '/') rootType = fsType;
  }
  return rootType !== undefined && ['rootfs', 'tmpfs', 'ramfs'].includes(rootType);
}

function isRegularFile(path: string): boolean {
  try {
    return statSync(path).isFile();
  } catch {
    return false;
  }
}

function safeRead(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return '';
  }
}

function canonical(dev: string): string {
  try {
    return realpathSync(dev);
  } catch {
    return dev;
  }
}

export interface GuardOptions {
  inRamdisk: boolean;
  allowedDevices: readonly string[];
  /** Lets power/kexec really happen outside a ramdisk (a lab machine that is a node). */
  allowPowerActions: boolean;
}

export class Guard {
  private readonly allowed: Set<string>;

  constructor(readonly opts: GuardOptions) {
    this.allowed = new Set(opts.allowedDevices.map(canonical));
  }

  /** Whether the agent may write to this whole disk. */
  mayWrite(device: string): boolean {
    return this.opts.inRamdisk || this.allowed.has(canonical(device));
  }

  assertWritable(device: string): void {
    if (!this.mayWrite(device)) {
      throw new SafetyError(
        `refusing to write to ${device}: not running in a ramdisk and the device is not in --allowed-devices`,
      );
    }
  }

  /** Devices the agent may consider at all (listing filters outside a ramdisk). */
  filterDisks<T extends { name: string }>(disks: T[]): T[] {
    return this.opts.inRamdisk ? disks : disks.filter((d) => this.mayWrite(d.name));
  }

  /** Power off, reboot and kexec really happen only in a ramdisk or when enabled. */
  get powerIsReal(): boolean {
    return this.opts.inRamdisk || this.opts.allowPowerActions;
  }
}
