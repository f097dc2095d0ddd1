import { InvalidArgumentsError } from '../../base/errors.ts';
import { splitKernelCmdline } from '../../base/kernel-cmdline.ts';
import { listImageDir, readImageFile, writeImageFile } from '../image-root.ts';

// Custom kernel parameters for the deployed OS: appended to
// GRUB_CMDLINE_LINUX_DEFAULT in etc/default/grub (grub.cfg is regenerated
// afterwards) and to the options line of BLS entries (Fedora/RHEL keep the
// command line there). Parameters already present are not added twice.
//
// They come from the conductor (deploy step arguments) and end up in a file
// that the deployed OS's grub-mkconfig sources as root, and in grub.cfg,
// which GRUB's own script parser reads. So a parameter must be what a kernel
// command-line token is and nothing more (see KERNEL_PARAM), and
// etc/default/grub gets it inside a single-quoted shell string.

/** Bad input from the conductor: the wire table sends it as InvalidCommandParamsError (400). */
export class InvalidKernelParamsError extends InvalidArgumentsError {}

/** Characters of a parameter value (besides letters and digits); a space only inside double quotes. */
const VALUE_PUNCT = '_.,:/@+=%~!#^*-';
const VALUE_CHARS = `A-Za-z0-9${VALUE_PUNCT.replace(/[-\\\]^]/g, '\\$&')}`;
/**
 * `name` or `name=value`, value optionally in double quotes (then it may hold
 * spaces). No shell or GRUB-script metacharacter ($ ` \ ' ; & | < > ( ) { } [ ] ?),
 * no control character, no non-ASCII: nothing a shell or GRUB could read as code.
 */
const KERNEL_PARAM = new RegExp(`^[A-Za-z0-9_][A-Za-z0-9_.-]*(?:=(?:[${VALUE_CHARS}]*|"[${VALUE_CHARS} ]*"))?$`);
/** x86 and arm64 kernels take a command line of at most 2048 bytes. */
const MAX_PARAMS_LENGTH = 2048;
const ALLOWED_TEXT = `letters, digits and ${VALUE_PUNCT.split('').join(' ')}`;
/** Refused input as the error shows it: JSON-escaped (newlines stay visible) and cut short. */
const shown = (v: unknown) => {
  const text = JSON.stringify(v) ?? String(v);
  return text.length > 200 ? `${text.slice(0, 200)}...` : text;
};

function whyRefused(param: string): string {
  const bad = [...param].find((c) => !/[A-Za-z0-9 "]/.test(c) && !VALUE_PUNCT.includes(c));
  if (bad !== undefined) return `${JSON.stringify(bad)} is not allowed`;
  if (/^[^=]*"/.test(param)) return 'only a value (after =) may be double-quoted';
  if (!/^[A-Za-z0-9_]/.test(param)) return 'a parameter name starts with a letter, digit or _';
  return 'a parameter is `name` or `name=value` (the whole value may be in double quotes, then it may hold spaces)';
}

/** Throws InvalidKernelParamsError naming the first parameter that is not a plain kernel command-line token. */
function assertSafeKernelParams(params: readonly string[]): void {
  for (const p of params) {
    if (!KERNEL_PARAM.test(p)) {
      throw new InvalidKernelParamsError(
        `kernel parameter ${shown(p)} refused: ${whyRefused(p)}; ` +
          `parameters are name or name=value (value optionally in double quotes) made of ${ALLOWED_TEXT}`,
      );
    }
  }
  const length = params.join(' ').length;
  if (length > MAX_PARAMS_LENGTH) {
    throw new InvalidKernelParamsError(
      `kernel parameters refused: ${length} bytes, more than a kernel command line holds (${MAX_PARAMS_LENGTH})`,
    );
  }
}

/** Splits one string of parameters on spaces and tabs outside double quotes; refuses control characters and a lone quote. */
function tokenize(text: string): string[] {
  // eslint-disable-next-line no-control-regex
  const control = /[\u0000-\u0008\u000a-\u001f\u007f-\u009f]/.exec(text);
  if (control) {
    throw new InvalidKernelParamsError(`kernel parameters refused: control character ${JSON.stringify(control[0])} in ${shown(text)}`);
  }
  const out: string[] = [];
  let cur = '';
  let quoted = false;
  for (const c of text) {
    if (c === '"') quoted = !quoted;
    if (!quoted && (c === ' ' || c === '\t')) {
      if (cur) out.push(cur);
      cur = '';
    } else cur += c;
  }
  if (quoted) throw new InvalidKernelParamsError(`kernel parameters refused: unbalanced double quote in ${shown(text)}`);
  if (cur) out.push(cur);
  return out;
}

/**
 * The kernel_params argument of add_kernel_parameters / kexec_handoff (a
 * string, a list of strings, or nothing) as a checked list of parameters.
 * Throws InvalidKernelParamsError for anything that is not plain parameters.
 */
export function kernelParamsArg(v: unknown): string[] {
  if (v === undefined || v === null) return [];
  const items = Array.isArray(v) ? v : [v];
  const params = items.flatMap((p) => {
    if (typeof p !== 'string') throw new InvalidKernelParamsError(`kernel parameters refused: ${shown(p)} is not a string`);
    return tokenize(p);
  });
  assertSafeKernelParams(params);
  return params;
}

/** A shell word that is exactly `s`, whatever `s` holds ('...' with each ' written as '\''). */
export function shellSingleQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

function missingFrom(existing: string, params: readonly string[]): string[] {
  const have = new Set(splitKernelCmdline(existing));
  return params.filter((p, i) => !have.has(p) && params.indexOf(p) === i);
}

function appendMissing(existing: string, params: readonly string[]): string {
  return [existing.trim(), ...missingFrom(existing, params)].filter(Boolean).join(' ');
}

/**
 * A literal value (no expansion) in an etc/default/grub assignment: "..."
 * without $ ` \, '...' (with \' between pieces, as shellSingleQuote writes
 * it), or a plain word.
 */
const DEFAULT_ASSIGNMENT = /^([ \t]*(?:export[ \t]+)?GRUB_CMDLINE_LINUX_DEFAULT=)(?:"([^"$`\\]*)"|((?:'[^']*'|\\')+)|([A-Za-z0-9_.,:/@+=%!#^*-]*))[ \t]*$/;

const unquoteSingle = (word: string) => word.replace(/'([^']*)'|\\'/g, (_, inner: string | undefined) => inner ?? "'");

/**
 * Returns etc/default/grub content with params added to GRUB_CMDLINE_LINUX_DEFAULT.
 * The shell keeps the last assignment, so that is the one extended: rewritten
 * as one single-quoted word when its value is literal. An assignment the agent
 * cannot read as a literal (it expands something) is kept, and a new line
 * extends whatever it gives: GRUB_CMDLINE_LINUX_DEFAULT="$GRUB_CMDLINE_LINUX_DEFAULT"' a=1'.
 */
export function addToDefaultGrub(content: string, params: readonly string[]): string {
  assertSafeKernelParams(params);
  const lines = content.split('\n');
  const assigns = lines.flatMap((l, i) => (/^[ \t]*(?:export[ \t]+)?GRUB_CMDLINE_LINUX_DEFAULT=/.test(l) ? [i] : []));
  const last = assigns.at(-1);
  const m = last === undefined ? null : DEFAULT_ASSIGNMENT.exec(lines[last]!);
  if (last !== undefined && m) {
    const current = m[2] ?? (m[3] !== undefined ? unquoteSingle(m[3]) : undefined) ?? m[4] ?? '';
    if (missingFrom(current, params).length === 0) return content;
    lines[last] = `${m[1]}${shellSingleQuote(appendMissing(current, params))}`;
    return lines.join('\n');
  }
  if (params.length === 0) return content;
  const sep = content === '' || content.endsWith('\n') ? '' : '\n';
  const line =
    last === undefined
      ? `GRUB_CMDLINE_LINUX_DEFAULT=${shellSingleQuote(params.join(' '))}`
      : `GRUB_CMDLINE_LINUX_DEFAULT="$GRUB_CMDLINE_LINUX_DEFAULT"${shellSingleQuote(' ' + params.join(' '))}`;
  if (lines[last ?? -1] === line) return content; // added by an earlier call
  return `${content}${sep}${line}\n`;
}

/** Returns a BLS entry with params added to its options line (or a new options line). */
export function addToBlsEntry(content: string, params: readonly string[]): string {
  assertSafeKernelParams(params);
  const re = /^options[ \t]+(.*)$/m;
  const m = re.exec(content);
  if (!m) return `${content.replace(/\n?$/, '\n')}options ${params.join(' ')}\n`;
  if (missingFrom(m[1]!, params).length === 0) return content;
  return content.replace(re, () => `options ${appendMissing(m[1]!, params)}`);
}

/**
 * Applies params to the files of a mounted deployed root; returns the files
 * changed (as the image names them). Paths are resolved inside the image.
 */
export async function applyKernelParams(root: string, params: string[]): Promise<string[]> {
  assertSafeKernelParams(params);
  const changed: string[] = [];
  const current = await readImageFile(root, '/etc/default/grub');
  if (current !== null) {
    const next = addToDefaultGrub(current, params);
    if (next !== current) {
      await writeImageFile(root, '/etc/default/grub', next);
      changed.push('/etc/default/grub');
    }
  }
  const entries = (await listImageDir(root, '/boot/loader/entries')).filter((n) => n.endsWith('.conf')).sort();
  for (const name of entries) {
    const file = `/boot/loader/entries/${name}`;
    const text = await readImageFile(root, file);
    if (text === null) continue;
    const next = addToBlsEntry(text, params);
    if (next !== text) {
      await writeImageFile(root, file, next);
      changed.push(file);
    }
  }
  if (current === null && entries.length === 0) {
    throw new Error('cannot apply kernel parameters: the deployed OS has neither /etc/default/grub nor BLS entries');
  }
  return changed;
}
