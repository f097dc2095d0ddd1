// Which EFI loader to register, decided from the file list of an ESP. Pure
// functions so the rules are unit-testable.
//
// Order (IPA efi_utils._get_efi_bootloaders plus shim awareness):
// 1. a BOOTX64.CSV / BOOT.CSV (shim's fallback hint: "loader,label,options,
//    description" in UTF-16) is authoritative for the loader and the label;
// 2. else a distro directory's shim or grub (EFI/<distro>/shimx64.efi),
//    labelled with the distro name;
// 3. else IPA's well-known loader names (BOOTX64.EFI, ...), labelled ironicN.

/** IPA's BOOTLOADERS_EFI, lower case. */
const WELL_KNOWN = [
  'bootx64.efi',
  'bootia32.efi',
  'bootia64.efi',
  'bootarm.efi',
  'bootaa64.efi',
  'bootriscv32.efi',
  'bootriscv64.efi',
  'bootriscv128.efi',
  'grubaa64.efi',
  'winload.efi',
];
const CSV_NAMES = ['bootx64.csv', 'boot.csv', 'bootaa64.csv'];
const DISTRO_LOADERS = ['shimx64.efi', 'shimaa64.efi', 'grubx64.efi', 'grubaa64.efi'];

export interface EfiLoaderChoice {
  /** Path on the ESP with forward slashes and no leading slash (EFI/debian/shimx64.efi). */
  path: string;
  label: string;
  /** The CSV that named it, if any. */
  csv?: string;
}

export interface BootCsvEntry {
  file: string;
  label: string;
  options: string;
  description: string;
}

const base = (p: string) => p.slice(p.lastIndexOf('/') + 1);
const dir = (p: string) => (p.includes('/') ? p.slice(0, p.lastIndexOf('/')) : '');
const inBootDir = (p: string) => /^efi\/boot\//i.test(p);

/** Decodes a BOOTX64.CSV: UTF-16 (LE unless a BOM says BE), first line only. */
export function parseBootCsv(data: Buffer): BootCsvEntry {
  let text: string;
  if (data.length >= 2 && data[0] === 0xfe && data[1] === 0xff) {
    const swapped = Buffer.from(data.subarray(2));
    swapped.swap16();
    text = swapped.toString('utf16le');
  } else if (data.length >= 2 && data[0] === 0xff && data[1] === 0xfe) {
    text = data.subarray(2).toString('utf16le');
  } else if (data.length >= 2 && data[1] === 0) {
    text = data.toString('utf16le');
  } else {
    text = data.toString('utf8'); // not per spec, but seen in the wild
  }
  const line = text.replace(/^\ufeff/, '').split(/\r?\n/).find((l) => l.trim()) ?? '';
  // Only the first two fields matter to us; the description may itself contain commas.
  const parts = line.split(',');
  const file = parts[0] ?? '';
  const label = parts[1] ?? '';
  const options = parts[2] ?? '';
  const description = parts.slice(3).join(',');
  if (!file.trim() || !label.trim()) throw new Error(`malformed boot CSV: '${line}'`);
  return { file: file.trim(), label: label.trim(), options: options.trim(), description: description.trim() };
}

/** CSV files that can point at a loader, distro directories first, sorted for determinism. */
export function findBootCsvs(files: string[]): string[] {
  return files
    .filter((f) => CSV_NAMES.includes(base(f).toLowerCase()))
    .sort((a, b) => Number(inBootDir(a)) - Number(inBootDir(b)) || a.localeCompare(b));
}

/** The loader to register when no CSV is present (or usable). */
export function chooseLoaderWithoutCsv(files: string[]): EfiLoaderChoice[] {
  for (const name of DISTRO_LOADERS) {
    const hit = files
      .filter((f) => !inBootDir(f) && base(f).toLowerCase() === name && /^efi\/[^/]+\//i.test(f))
      .sort()[0];
    if (hit) return [{ path: hit, label: dir(hit).split('/')[1]! }];
  }
  const known = files.filter((f) => WELL_KNOWN.includes(base(f).toLowerCase())).sort();
  return known.map((path, i) => ({ path, label: `ironic${i + 1}` }));
}

/** Resolves a CSV entry to the loader path next to the CSV, matching case-insensitively. */
export function loaderFromCsv(csvPath: string, entry: BootCsvEntry, files: string[]): EfiLoaderChoice {
  const wanted = `${dir(csvPath)}/${entry.file}`;
  const actual = files.find((f) => f.toLowerCase() === wanted.toLowerCase()) ?? wanted;
  return { path: actual, label: entry.label, csv: csvPath };
}

/** EFI device path form of an ESP path: \EFI\debian\shimx64.efi. */
export function efiPath(path: string): string {
  return '\\' + path.replace(/^\/+/, '').replace(/\//g, '\\');
}

/** Name of the removable-media fallback loader for this machine's architecture. */
export function fallbackLoaderName(arch: string = process.arch): string {
  return arch === 'arm64' ? 'BOOTAA64.EFI' : 'BOOTX64.EFI';
}
