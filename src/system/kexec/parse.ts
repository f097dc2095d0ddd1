import { splitKernelCmdline } from '../../base/kernel-cmdline.ts';

// Pure parsers for the deployed OS's boot configuration: BLS entries,
// grub.cfg (the default entry as GRUB would pick it), grubenv, fstab and
// /etc/default/grub, plus a look at a kernel file's header. Nothing here
// touches a disk; find.ts feeds these with files read from read-only mounts.

/** One bootable entry, paths as the boot loader sees them (relative to the partition it reads). */
export interface BootEntry {
  title?: string;
  id?: string;
  /** Kernel path as written (GRUB device prefixes like ($root) removed). */
  kernel: string;
  initrds: string[];
  /** Kernel command line as written, variables expanded. */
  args: string;
  /** GRUB: the filesystem UUID `search --fs-uuid --set=root` points at (where the paths live). */
  rootFsUuid?: string;
}

// ---------------------------------------------------------------- BLS ----

export interface BlsEntry {
  /** File name without .conf: what grubenv's saved_entry names. */
  id: string;
  title?: string;
  version?: string;
  linux?: string;
  initrds: string[];
  options: string;
  sortKey?: string;
}

/** Parses one loader/entries/*.conf file (Boot Loader Specification type #1). */
export function parseBlsEntry(text: string, fileName: string): BlsEntry {
  const entry: BlsEntry = { id: fileName.replace(/\.conf$/, ''), initrds: [], options: '' };
  const options: string[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#')) continue;
    const m = /^(\S+)\s*(.*)$/.exec(line);
    if (!m) continue;
    const [, key, value] = m as unknown as [string, string, string];
    switch (key) {
      case 'title':
        entry.title = value;
        break;
      case 'version':
        entry.version = value;
        break;
      case 'linux':
        entry.linux = value.trim();
        break;
      case 'initrd':
        entry.initrds.push(...value.trim().split(/\s+/).filter(Boolean));
        break;
      case 'options':
        options.push(value.trim());
        break;
      case 'sort-key':
        entry.sortKey = value;
        break;
    }
  }
  entry.options = options.join(' ');
  return entry;
}

/** Compares version-like strings piecewise (numbers numerically): "6.10.1" > "6.9.12". */
export function compareVersions(a: string, b: string): number {
  const pa = a.match(/\d+|[^\d.\-_~+]+/g) ?? [];
  const pb = b.match(/\d+|[^\d.\-_~+]+/g) ?? [];
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const x = pa[i];
    const y = pb[i];
    if (x === undefined) return -1;
    if (y === undefined) return 1;
    const nx = /^\d+$/.test(x);
    const ny = /^\d+$/.test(y);
    if (nx && ny) {
      const d = Number(x) - Number(y);
      if (d !== 0) return d < 0 ? -1 : 1;
    } else if (nx !== ny) {
      return nx ? 1 : -1;
    } else if (x !== y) {
      return x < y ? -1 : 1;
    }
  }
  return 0;
}

/**
 * The BLS entry that boots by default: grubenv's saved_entry when it names
 * one, else the newest (sort-key, then version, then file name, descending,
 * as grub's blscfg and systemd-boot order them). Entries without a Linux
 * kernel (EFI programs) are never chosen.
 */
export function chooseBlsEntry(entries: BlsEntry[], savedEntry?: string): BlsEntry | undefined {
  const linux = entries.filter((e) => e.linux);
  if (savedEntry) {
    const hit = linux.find((e) => e.id === savedEntry || e.title === savedEntry);
    if (hit) return hit;
  }
  return [...linux].sort((a, b) => {
    if ((a.sortKey ?? '') !== (b.sortKey ?? '')) return (a.sortKey ?? '') < (b.sortKey ?? '') ? -1 : 1;
    const v = compareVersions(b.version ?? b.id, a.version ?? a.id);
    return v !== 0 ? v : compareVersions(b.id, a.id);
  })[0];
}

/** A chosen BLS entry as a boot entry; `$kernelopts` and friends come from grubenv. */
export function blsToBootEntry(e: BlsEntry, env: Record<string, string> = {}): BootEntry {
  return {
    title: e.title,
    id: e.id,
    kernel: e.linux!,
    initrds: e.initrds,
    args: expandVars(e.options, env),
  };
}

// ------------------------------------------------------------ grubenv ----

/** Parses a grubenv block (name=value lines, '#' padding). */
export function parseGrubenv(text: string): Record<string, string> {
  const env: Record<string, string> = {};
  for (const line of text.split('\n')) {
    if (line.startsWith('#')) continue;
    const eq = line.indexOf('=');
    if (eq > 0) env[line.slice(0, eq)] = line.slice(eq + 1);
  }
  return env;
}

// ----------------------------------------------------------- grub.cfg ----

export interface GrubMenuEntry {
  kind: 'entry';
  title: string;
  id?: string;
  linux?: { path: string; args: string };
  initrds: string[];
  searchUuid?: string;
}

export interface GrubSubmenu {
  kind: 'submenu';
  title: string;
  id?: string;
  children: GrubNode[];
}

export type GrubNode = GrubMenuEntry | GrubSubmenu;

export interface GrubConfig {
  nodes: GrubNode[];
  /** The default as GRUB evaluates it (before grubenv), e.g. "0", "1>2", a title/id, or "saved". */
  default?: string;
  /** Top-level `set name=value` assignments with literal values (last wins). */
  vars: Record<string, string>;
  /** `search --fs-uuid --set=root` outside any entry (applies to entries that have none). */
  searchUuid?: string;
  /** The config uses BLS entries (Fedora/RHEL `blscfg`). */
  usesBlscfg: boolean;
}

/** Splits a GRUB script line into words, honouring single and double quotes. */
export function grubWords(line: string): string[] {
  const words: string[] = [];
  let cur = '';
  let inWord = false;
  let quote: "'" | '"' | null = null;
  for (let i = 0; i < line.length; i++) {
    const c = line[i]!;
    if (quote) {
      if (c === quote) quote = null;
      else if (c === '\\' && quote === '"' && i + 1 < line.length) cur += line[++i];
      else cur += c;
      continue;
    }
    if (c === "'" || c === '"') {
      quote = c;
      inWord = true;
    } else if (c === '\\' && i + 1 < line.length) {
      cur += line[++i];
      inWord = true;
    } else if (/\s/.test(c)) {
      if (inWord) words.push(cur);
      cur = '';
      inWord = false;
    } else {
      cur += c;
      inWord = true;
    }
  }
  if (inWord) words.push(cur);
  return words;
}

/** Removes a GRUB device prefix: "($root)/boot/vmlinuz" -> "/boot/vmlinuz", "(hd0,gpt2)/x" -> "/x". */
export function stripGrubDevice(path: string): string {
  const m = /^\([^)]*\)(.*)$/.exec(path);
  const rest = m ? m[1]! : path;
  return rest.startsWith('/') ? rest : `/${rest}`;
}

/** The UUID a `search` line sets root to, if it searches by filesystem UUID. */
function searchLineUuid(words: string[]): string | undefined {
  if (words[0] === 'search.fs_uuid') return words[1];
  if (words[0] !== 'search' || !(words.includes('--fs-uuid') || words.includes('-u'))) return undefined;
  const setOther = words.find((w) => w.startsWith('--set=') && w !== '--set=root');
  const setIdx = words.findIndex((w) => w === '--set' || w === '-s');
  if (setOther || (setIdx >= 0 && words[setIdx + 1] !== 'root')) return undefined;
  const last = words[words.length - 1];
  return last && !last.startsWith('-') && last !== 'search' ? last : undefined;
}

/** Expands $name and ${name} from env; unknown variables expand to nothing (as in GRUB). */
export function expandVars(text: string, env: Record<string, string>): string {
  return text
    .replace(/\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)/g, (_m, a: string, b: string) => env[a ?? b] ?? '')
    .replace(/\s+/g, ' ')
    .trim();
}

const LINUX_CMDS = new Set(['linux', 'linuxefi', 'linux16']);
const INITRD_CMDS = new Set(['initrd', 'initrdefi', 'initrd16']);

/** Everything after the first `n` words of a line, as written (keeps the quoting of kernel args). */
function restAfterWords(line: string, n: number): string {
  let rest = line.trim();
  for (let i = 0; i < n; i++) rest = rest.replace(/^(?:[^\s"']+|"[^"]*"|'[^']*')+\s*/, '');
  return rest.trim();
}

/** Parses a grub.cfg: menu entries (with submenus), the default, top-level variables. */
export function parseGrubCfg(text: string): GrubConfig {
  const cfg: GrubConfig = { nodes: [], vars: {}, usesBlscfg: false };
  const defaults: string[] = [];
  // Block stack: menu entries/submenus we collect, functions we skip.
  type Frame = { kind: 'entry'; node: GrubMenuEntry } | { kind: 'submenu'; node: GrubSubmenu } | { kind: 'function' } | { kind: 'other' };
  const stack: Frame[] = [];
  const container = (): GrubNode[] => {
    for (let i = stack.length - 1; i >= 0; i--) {
      const f = stack[i]!;
      if (f.kind === 'submenu') return f.node.children;
    }
    return cfg.nodes;
  };
  const currentEntry = (): GrubMenuEntry | undefined => {
    for (let i = stack.length - 1; i >= 0; i--) {
      const f = stack[i]!;
      if (f.kind === 'entry') return f.node;
      if (f.kind === 'submenu') return undefined;
    }
    return undefined;
  };
  const inFunction = () => stack.some((f) => f.kind === 'function');

  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#')) continue;
    if (line === '}') {
      stack.pop();
      continue;
    }
    const words = grubWords(line);
    const cmd = words[0] ?? '';
    if ((cmd === 'menuentry' || cmd === 'submenu') && line.endsWith('{')) {
      const args = words.slice(1, -1);
      const title = args[0] ?? '';
      let id: string | undefined;
      for (let i = 1; i < args.length; i++) {
        if ((args[i] === '$menuentry_id_option' || args[i] === '--id') && args[i + 1]) id = args[i + 1];
        else if (args[i]!.startsWith('--id=')) id = args[i]!.slice(5);
      }
      if (cmd === 'menuentry') {
        const node: GrubMenuEntry = { kind: 'entry', title, id, initrds: [] };
        container().push(node);
        stack.push({ kind: 'entry', node });
      } else {
        const node: GrubSubmenu = { kind: 'submenu', title, id, children: [] };
        container().push(node);
        stack.push({ kind: 'submenu', node });
      }
      continue;
    }
    if (cmd === 'function' && line.endsWith('{')) {
      stack.push({ kind: 'function' });
      continue;
    }
    if (line.endsWith('{')) {
      stack.push({ kind: 'other' });
      continue;
    }
    if (inFunction()) continue;
    const entry = currentEntry();
    if (entry) {
      if (LINUX_CMDS.has(cmd) && words[1]) {
        entry.linux = { path: stripGrubDevice(words[1]), args: restAfterWords(line, 2) };
      } else if (INITRD_CMDS.has(cmd)) {
        entry.initrds = words.slice(1).map(stripGrubDevice);
      } else if (!entry.searchUuid) {
        const uuid = searchLineUuid(words);
        if (uuid) entry.searchUuid = uuid;
      }
      continue;
    }
    if (stack.some((f) => f.kind === 'submenu')) continue;
    if (cmd === 'blscfg') cfg.usesBlscfg = true;
    if (cmd === 'set' && words[1]) {
      const eq = words[1].indexOf('=');
      if (eq > 0) {
        const name = words[1].slice(0, eq);
        const value = words[1].slice(eq + 1);
        if (name === 'default') defaults.push(value);
        else if (!value.includes('$')) cfg.vars[name] = value;
      }
      continue;
    }
    if (!cfg.searchUuid) {
      const uuid = searchLineUuid(words);
      if (uuid) cfg.searchUuid = uuid;
    }
  }
  // Debian writes `set default="${next_entry}"` (one-shot) and then the real
  // default in the else branch; saved defaults read grubenv's saved_entry.
  const real = defaults.filter((d) => !/\$\{?next_entry\}?/.test(d));
  const last = real[real.length - 1];
  if (last !== undefined) cfg.default = /\$\{?saved_entry\}?/.test(last) ? 'saved' : last;
  return cfg;
}

function allEntries(nodes: GrubNode[]): GrubMenuEntry[] {
  return nodes.flatMap((n) => (n.kind === 'entry' ? [n] : allEntries(n.children)));
}

function firstEntry(node: GrubNode | undefined): GrubMenuEntry | undefined {
  if (!node) return undefined;
  return node.kind === 'entry' ? node : allEntries(node.children)[0];
}

function resolvePath(nodes: GrubNode[], parts: string[]): GrubNode | undefined {
  let level = nodes;
  let node: GrubNode | undefined;
  for (const part of parts) {
    node = /^\d+$/.test(part) ? level[Number(part)] : level.find((n) => n.id === part || n.title === part);
    if (!node) return undefined;
    level = node.kind === 'submenu' ? node.children : [];
  }
  return node;
}

/**
 * The entry GRUB boots by default: `set default` by index ("0", "1>2"), id
 * or title, "saved" through grubenv's saved_entry; anything that does not
 * resolve falls back to the first entry, as GRUB does.
 */
export function grubDefaultEntry(cfg: GrubConfig, env: Record<string, string> = {}): GrubMenuEntry | undefined {
  let wanted = cfg.default ?? '0';
  if (wanted === 'saved') wanted = env.saved_entry || '0';
  const node = resolvePath(cfg.nodes, wanted.split('>')) ?? allEntries(cfg.nodes).find((e) => e.id === wanted || e.title === wanted);
  const chosen = firstEntry(node) ?? firstEntry(cfg.nodes[0]);
  // An entry without a kernel (memtest, UEFI settings) cannot be kexec'd: take the first Linux entry.
  return chosen?.linux ? chosen : allEntries(cfg.nodes).find((e) => e.linux);
}

export function grubToBootEntry(cfg: GrubConfig, e: GrubMenuEntry, env: Record<string, string> = {}): BootEntry {
  return {
    title: e.title,
    id: e.id,
    kernel: e.linux!.path,
    initrds: e.initrds,
    args: expandVars(e.linux!.args, { ...env, ...cfg.vars }),
    rootFsUuid: e.searchUuid ?? cfg.searchUuid,
  };
}

// -------------------------------------------------------------- fstab ----

export interface FstabEntry {
  spec: string;
  mountPoint: string;
  fsType: string;
  options: string;
}

export function parseFstab(text: string): FstabEntry[] {
  const out: FstabEntry[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.replace(/#.*$/, '').trim();
    if (!line) continue;
    const [spec, mountPoint, fsType, options] = line.split(/\s+/);
    if (!spec || !mountPoint) continue;
    out.push({ spec, mountPoint, fsType: fsType ?? 'auto', options: options ?? 'defaults' });
  }
  return out;
}

/**
 * The root= the deployed OS wants: its fstab's / line (UUID=, PARTUUID=,
 * LABEL=, a device path), else the root filesystem's UUID.
 */
export function rootArgument(fstabText: string | undefined, rootFsUuid: string | undefined): string | undefined {
  const root = fstabText ? parseFstab(fstabText).find((e) => e.mountPoint === '/') : undefined;
  if (root) {
    const m = /^(UUID|PARTUUID|LABEL|PARTLABEL)=["']?([^"']+)["']?$/.exec(root.spec);
    return m ? `root=${m[1]}=${m[2]}` : `root=${root.spec}`;
  }
  return rootFsUuid ? `root=UUID=${rootFsUuid}` : undefined;
}

/** Reads GRUB_CMDLINE_LINUX and GRUB_CMDLINE_LINUX_DEFAULT from etc/default/grub (shell assignments). */
export function defaultGrubCmdline(text: string): string {
  const value = (name: string) => {
    const re = new RegExp(`^[ \\t]*${name}=(?:"([^"]*)"|'([^']*)'|(\\S*))`, 'gm');
    let last = '';
    for (const m of text.matchAll(re)) last = m[1] ?? m[2] ?? m[3] ?? '';
    return last;
  };
  return [value('GRUB_CMDLINE_LINUX'), value('GRUB_CMDLINE_LINUX_DEFAULT')].filter(Boolean).join(' ').trim();
}

// ------------------------------------------------------- command line ----

/** The command line for the kexec'd kernel: the entry's, plus custom parameters not already there. */
export function composeCmdline(base: string, extra: readonly string[]): string {
  const have = splitKernelCmdline(base);
  const add = extra.flatMap((p) => splitKernelCmdline(p)).filter((p) => !have.includes(p));
  return [...have, ...add].join(' ');
}

// ------------------------------------------------------------ kernels ----

export interface KernelInfo {
  format: 'bzImage' | 'arm64-image' | 'efi-zboot' | 'pe' | 'elf';
  /** x86 bzImage: the version string from the setup header. */
  version?: string;
}

/** Recognises a kernel image kexec can load from its first bytes (64 KiB reach the bzImage version string). */
export function kernelInfo(head: Buffer): KernelInfo | null {
  if (head.length >= 0x210 && head.toString('latin1', 0x202, 0x206) === 'HdrS') {
    let version: string | undefined;
    const off = head.readUInt16LE(0x20e);
    if (off) {
      const at = off + 0x200;
      if (at < head.length) {
        const end = head.indexOf(0, at);
        version = head.toString('latin1', at, end < 0 ? Math.min(head.length, at + 128) : end).trim() || undefined;
      }
    }
    return { format: 'bzImage', version };
  }
  if (head.length >= 0x3c && head.toString('latin1', 0x38, 0x3c) === 'ARM\x64') return { format: 'arm64-image' };
  const pe = head.length >= 2 && head.toString('latin1', 0, 2) === 'MZ';
  if (pe && head.length >= 8 && head.toString('latin1', 4, 8) === 'zimg') return { format: 'efi-zboot' };
  if (pe) return { format: 'pe' };
  if (head.length >= 4 && head.toString('latin1', 0, 4) === '\x7fELF') return { format: 'elf' };
  return null;
}
