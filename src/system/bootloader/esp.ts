import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { run, type RunOptions } from '../exec.ts';
import type { Guard } from '../safety.ts';
import { probePartitionFilesystem, readPartitionTable, type PartitionEntry } from '../partitions/index.ts';

// The EFI system partition, read and written with mtools at its byte offset
// on the whole disk: no mount, no partition node, no vfat kernel module (the
// ESP is FAT by specification, so mtools is always enough).

const ESP_GPT_TYPE = 'C12A7328-F81F-11D2-BA4B-00A0C93EC93B';
const MTOOLS: RunOptions = { env: { MTOOLS_SKIP_CHECK: '1', MTOOLS_NO_VFAT: '0' }, timeoutMs: 120_000 };

export class EspNotFoundError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'EspNotFoundError';
  }
}

/**
 * Finds the ESP like IPA: trust the disk first (ESP partition type), then the
 * UUID Ironic recorded (filesystem UUID or partition GUID).
 */
export async function findEsp(device: string, efiSystemPartUuid?: string | null): Promise<PartitionEntry> {
  const table = await readPartitionTable(device);
  if (!table) throw new EspNotFoundError(`${device} has no partition table, so it has no EFI system partition`);
  const byType = table.partitions.find((p) =>
    table.label === 'gpt' ? p.type.toUpperCase() === ESP_GPT_TYPE : p.type.toLowerCase() === 'ef',
  );
  if (byType) return byType;
  if (efiSystemPartUuid) {
    const wanted = efiSystemPartUuid.toLowerCase();
    for (const p of table.partitions) {
      if (p.uuid === wanted) return p;
      const fs = await probePartitionFilesystem(device, p);
      if (fs.uuid?.toLowerCase() === wanted) return p;
    }
  }
  throw new EspNotFoundError(
    `No EFI partition could be detected on device ${device}` +
      (efiSystemPartUuid ? ` and none has the UUID ${efiSystemPartUuid}` : ' and no EFI partition UUID was given') +
      '. Is the image UEFI compatible?',
  );
}

/** An ESP on a disk, addressed for mtools. */
export class EspFs {
  private readonly image: string;

  constructor(
    readonly device: string,
    readonly partition: PartitionEntry,
  ) {
    this.image = `${device}@@${partition.start}`;
  }

  /** Every entry on the ESP as mdir prints it (::/EFI/, ::/EFI/debian/shimx64.efi). */
  private async listRaw(): Promise<string[]> {
    // mdir fails with 'File "::/" not found' on an empty filesystem; that is an empty list.
    const r = await run('mdir', ['-/', '-b', '-i', this.image, '::/'], { ...MTOOLS, okExitCodes: [1] });
    if (r.exitCode === 1) {
      if (r.stderr.includes('"::/" not found')) return [];
      throw new Error(`cannot read the EFI system partition on ${this.device}: ${r.stderr.trim()}`);
    }
    return r.stdout.split('\n').map((l) => l.trim()).filter(Boolean);
  }

  /** Every file (not directory) on the ESP, as EFI/debian/shimx64.efi. */
  async listFiles(): Promise<string[]> {
    return (await this.listRaw()).filter((l) => !l.endsWith('/')).map((l) => l.replace(/^::\/?/, ''));
  }

  async readFile(path: string): Promise<Buffer> {
    const dir = await mkdtemp(join(tmpdir(), 'esp-'));
    try {
      const local = join(dir, 'f');
      await run('mcopy', ['-n', '-i', this.image, `::/${path}`, local], MTOOLS);
      return await readFile(local);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }

  async writeFile(path: string, data: Buffer, guard: Guard): Promise<void> {
    guard.assertWritable(this.device);
    const parts = path.split('/').slice(0, -1);
    const existing = new Set((await this.listRaw()).map((l) => l.toLowerCase()));
    for (let i = 1; i <= parts.length; i++) {
      const d = parts.slice(0, i).join('/');
      if (!existing.has(`::/${d}/`.toLowerCase())) await run('mmd', ['-i', this.image, `::/${d}`], MTOOLS);
    }
    const dir = await mkdtemp(join(tmpdir(), 'esp-'));
    try {
      const local = join(dir, 'f');
      await writeFile(local, data);
      await run('mcopy', ['-o', '-i', this.image, local, `::/${path}`], MTOOLS);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }
}
