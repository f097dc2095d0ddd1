import { FALSE_WORDS, parseBoolean, TRUE_WORDS } from '../base/booleans.ts';
import { DeviceNotFoundError, DomainError } from '../base/errors.ts';
import { log } from '../log.ts';
import { HintParseError, HintTypeError, matchSpec, parseSpec, pyQuote, type PyValue } from './hint-grammar.ts';
import type { BlockDevice } from './types.ts';

// Root device hints as ironic-lib 2023.1 (utils.parse_root_device_hints,
// find_devices_by_hints, match_root_device_hints) defines them, and IPA's
// choice of install disk (get_os_install_device, utils.guess_root_disk).
// Parsing gives byte-for-byte the strings ironic-lib produces (operators
// added, values lower-cased and url-quoted), so Ironic and this agent agree
// on what a hint means. One deliberate extension, applied only when
// matching: a `name` hint compared for equality may omit /dev/ ("sda") or
// be a /dev/disk/by-path link; ironic-lib would silently match nothing.

export const VALID_ROOT_DEVICE_HINTS = {
  size: 'int',
  model: 'str',
  wwn: 'str',
  serial: 'str',
  vendor: 'str',
  wwn_with_extension: 'str',
  wwn_vendor_extension: 'str',
  name: 'str',
  rotational: 'bool',
  hctl: 'str',
  by_path: 'str',
} as const;

export type HintName = keyof typeof VALID_ROOT_DEVICE_HINTS;
/** Parsed hints: strings for str/int hints (operator included), booleans for rotational. */
export type ParsedHints = Partial<Record<HintName, string | boolean>>;

const GiB = 1024 ** 3;
/** IPA's default minimum size of a root disk without hints (4 GiB). */
export const MIN_ROOT_DISK_SIZE = 4 * GiB;

/** Invalid hints (ironic-lib raises ValueError: the phase's error on the wire). */
export class RootDeviceHintError extends DomainError {}

/** No disk fits: IPA's DeviceNotFound on the wire. */
export class RootDeviceNotFoundError extends DeviceNotFoundError {}

function isHintName(name: string): name is HintName {
  return Object.prototype.hasOwnProperty.call(VALID_ROOT_DEVICE_HINTS, name);
}

/** Python's str() of a JSON value, for the few places ironic-lib calls it. */
function pyStr(v: unknown): string {
  if (v === null || v === undefined) return 'None';
  if (v === true) return 'True';
  if (v === false) return 'False';
  if (typeof v === 'object') return JSON.stringify(v);
  return String(v);
}

function show(v: unknown): string {
  return typeof v === 'string' ? v : JSON.stringify(v);
}

/** oslo strutils.bool_from_string(strict=True). */
export function boolFromString(v: unknown): boolean {
  const b = parseBoolean(v);
  if (b !== undefined) return b;
  const words = [...TRUE_WORDS, ...FALSE_WORDS].sort().map((x) => `'${x}'`);
  throw new RootDeviceHintError(`Unrecognized value '${pyStr(v)}', acceptable values are: ${words.join(', ')}`);
}

/** _extract_hint_operator_and_values: lower-case, find the operator, split the values on it. */
function extractOperatorAndValues(expression: unknown, name: string): { op: string; values: string[] } {
  const expr = pyStr(expression).trim().toLowerCase();
  if (!expr) throw new RootDeviceHintError(`Root device hint "${name}" expression is empty`);
  let ast: string[];
  try {
    ast = parseSpec(expr);
  } catch (err) {
    if (err instanceof HintParseError) {
      throw new RootDeviceHintError(`Root device hint "${name}" has an invalid expression "${expr}": an operator needs a value`);
    }
    throw err;
  }
  if (ast.length <= 1) return { op: '', values: [expr] };
  const op = ast[0]!;
  // re.split(op, ...) then drop empty pieces *before* stripping, as Python does.
  return { op, values: expr.split(op).filter((v) => v !== '').map((v) => v.trim()) };
}

/** _normalize_hint_expression: "<or> foo bar <or> baz" -> "<or> foo%20bar <or> baz". */
function normalizeExpression(expression: unknown, name: string): string {
  const { op, values } = extractOperatorAndValues(expression, name);
  const joined = values.map((t) => ` ${pyQuote(t)} `).join(op);
  return (op + joined).trim();
}

/**
 * Validate and normalise a node's root_device property. Returns null when
 * there are no hints. Throws RootDeviceHintError with ironic-lib's messages.
 */
export function parseRootDeviceHints(rootDevice: unknown): ParsedHints | null {
  if (rootDevice === null || rootDevice === undefined || rootDevice === '' || rootDevice === false) return null;
  if (typeof rootDevice !== 'object' || Array.isArray(rootDevice)) {
    throw new RootDeviceHintError(`Root device hints must be an object, got ${show(rootDevice)}`);
  }
  const entries = Object.entries(rootDevice as Record<string, unknown>);
  if (entries.length === 0) return null;
  const invalid = entries.map(([k]) => k).filter((k) => !isHintName(k));
  if (invalid.length) {
    throw new RootDeviceHintError(
      `The hints "${invalid.join(', ')}" are invalid. Valid hints are: "${Object.keys(VALID_ROOT_DEVICE_HINTS).join(', ')}"`,
    );
  }
  const parsed: ParsedHints = {};
  for (const [name, expression] of entries as Array<[HintName, unknown]>) {
    const type = VALID_ROOT_DEVICE_HINTS[name];
    if (type === 'str') {
      if (typeof expression !== 'string') {
        throw new RootDeviceHintError(`Root device hint "${name}" is not a string value. Hint expression: ${show(expression)}`);
      }
      parsed[name] = normalizeExpression(expression, name);
    } else if (type === 'int') {
      for (const v of extractOperatorAndValues(expression, name).values) {
        // Python int(): optional sign, digits with single underscores between them.
        if (!/^\s*[+-]?\d(?:_?\d)*\s*$/.test(v)) {
          throw new RootDeviceHintError(`Root device hint "${name}" is not an integer value. Current value: ${pyStr(expression)}`);
        }
        if (Number(v.trim().replace(/_/g, '')) <= 0) {
          throw new RootDeviceHintError(`Root device hint "${name}" should be a positive integer. Current value: ${pyStr(expression)}`);
        }
      }
      parsed[name] = pyStr(expression);
    } else {
      try {
        parsed[name] = boolFromString(expression);
      } catch {
        throw new RootDeviceHintError(`Root device hint "${name}" is not a Boolean value. Current value: ${pyStr(expression)}`);
      }
    }
  }
  return appendOperators(parsed);
}

/** _append_operator_to_hints: a bare value means s== (strings) or == (size). */
function appendOperators(hints: ParsedHints): ParsedHints {
  for (const [name, expression] of Object.entries(hints) as Array<[HintName, string | boolean]>) {
    const type = VALID_ROOT_DEVICE_HINTS[name];
    if (type === 'bool') continue;
    const expr = String(expression);
    let ast: string[];
    try {
      ast = parseSpec(expr);
    } catch {
      throw new RootDeviceHintError(`Root device hint "${name}" has an invalid expression "${expr}"`);
    }
    if (ast.length > 1) continue;
    hints[name] = `${type === 'str' ? 's==' : '=='} ${expr}`;
  }
  return hints;
}

// ---------------------------------------------------------------- matching

/**
 * The extension for `name`: an equality hint (s==, <or>) whose values are all
 * /dev/disk/by-path links is matched against by_path; values without /dev/
 * get it prepended. Every other operator keeps ironic-lib's meaning.
 */
function expandNameHint(hints: ParsedHints): ParsedHints {
  const expr = hints.name;
  if (typeof expr !== 'string') return hints;
  let tree: string[];
  try {
    tree = parseSpec(expr);
  } catch {
    return hints;
  }
  const [op, ...values] = tree;
  if ((op !== 's==' && op !== '<or>') || values.length === 0) return hints;
  const out: ParsedHints = { ...hints };
  if (values.every((v) => v.startsWith('/dev/disk/by-path/')) && hints.by_path === undefined) {
    delete out.name;
    out.by_path = expr;
    return out;
  }
  const fixed = values.map((v) => (v.startsWith('/dev/') ? v : `/dev/${v}`));
  out.name = op === 's==' ? `s== ${fixed[0]}` : fixed.map((v) => `<or> ${v}`).join(' ');
  return out;
}

function deviceField(dev: BlockDevice, name: HintName): unknown {
  return (dev as unknown as Record<string, unknown>)[name];
}

/** Whether one device satisfies every hint (find_devices_by_hints' inner loop). */
function deviceMatches(dev: BlockDevice, hints: ParsedHints): boolean {
  for (const [name, hintValue] of Object.entries(hints) as Array<[HintName, string | boolean]>) {
    const type = VALID_ROOT_DEVICE_HINTS[name];
    const raw = deviceField(dev, name);
    if (type === 'bool') {
      let devBool: boolean;
      try {
        devBool = boolFromString(raw);
      } catch {
        log.warn({ device: dev.name, field: name, value: raw }, 'device field is not a valid boolean; skipping device');
        return false;
      }
      if (devBool !== hintValue) return false;
      continue;
    }
    let value: PyValue;
    if (type === 'str') {
      try {
        value = normalizeExpression(raw, name);
      } catch {
        log.warn({ device: dev.name, field: name }, 'device field is empty; skipping device');
        return false;
      }
    } else {
      value = Number(raw) / GiB; // size hints are GiB, device sizes bytes
    }
    try {
      if (!matchSpec(value, String(hintValue))) return false;
    } catch (err) {
      if (err instanceof HintTypeError) {
        throw new RootDeviceHintError(`Root device hint "${name}" (${String(hintValue)}) cannot be compared with ${dev.name}'s value ${show(raw)}: ${err.message}`);
      }
      throw err;
    }
  }
  return true;
}

/** Every device that satisfies all hints, in list order. */
export function findDevicesByHints(devices: readonly BlockDevice[], rootDeviceHints: unknown): BlockDevice[] {
  const parsed = parseRootDeviceHints(rootDeviceHints);
  if (!parsed) return [...devices];
  const hints = expandNameHint(parsed);
  return devices.filter((d) => deviceMatches(d, hints));
}

/** The first device that satisfies all hints, or null. Throws RootDeviceHintError for invalid hints. */
export function matchRootDeviceHints(devices: readonly BlockDevice[], rootDeviceHints: unknown): BlockDevice | null {
  const parsed = parseRootDeviceHints(rootDeviceHints);
  if (!parsed) return devices[0] ?? null;
  const hints = expandNameHint(parsed);
  // Lazy like ironic-lib's generator: devices after the first match are not evaluated.
  for (const dev of devices) if (deviceMatches(dev, hints)) return dev;
  return null;
}

/** IPA's utils.guess_root_disk: the smallest disk of at least minSize bytes (stable on ties). */
export function guessRootDisk(devices: readonly BlockDevice[], minSize = MIN_ROOT_DISK_SIZE): BlockDevice {
  if (devices.length === 0) throw new RootDeviceNotFoundError('No devices found');
  const sorted = [...devices].sort((a, b) => a.size - b.size);
  const dev = sorted.find((d) => d.size >= minSize);
  if (!dev) {
    throw new RootDeviceNotFoundError(
      `No suitable device was found for deployment - root device hints were not provided and all found block devices are smaller than ${minSize}B.`,
    );
  }
  return dev;
}

/** The node's hints as IPA reads them: instance_info.root_device, else properties.root_device. */
export function rootDeviceHintsOf(node: Record<string, any> | null | undefined): unknown {
  if (!node) return undefined;
  return node.instance_info?.root_device || node.properties?.root_device || undefined;
}

/**
 * IPA's get_os_install_device: the device the hints pick, or the default
 * choice without hints. Throws RootDeviceNotFoundError with IPA's wording.
 */
export function selectRootDevice(devices: readonly BlockDevice[], rootDeviceHints: unknown): BlockDevice {
  const hasHints = rootDeviceHints !== undefined && rootDeviceHints !== null &&
    !(typeof rootDeviceHints === 'object' && Object.keys(rootDeviceHints as object).length === 0) && rootDeviceHints !== '';
  if (!hasHints) return guessRootDisk(devices);
  let dev: BlockDevice | null;
  try {
    dev = matchRootDeviceHints(devices, rootDeviceHints);
  } catch (err) {
    if (err instanceof RootDeviceHintError) {
      throw new RootDeviceNotFoundError(
        `No devices could be found using the root device hints ${JSON.stringify(rootDeviceHints)} because they failed to validate. Error: ${err.message}`,
      );
    }
    throw err;
  }
  if (!dev) {
    throw new RootDeviceNotFoundError(
      `No suitable device was found for deployment using these hints ${JSON.stringify(rootDeviceHints)} (disks seen: ${devices.map((d) => d.name).join(', ') || 'none'})`,
    );
  }
  return dev;
}
