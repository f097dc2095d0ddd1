// The expression language of root device hints: oslo.utils' specs_matcher
// grammar (make_grammar + match), re-implemented token for token so that a
// hint means here exactly what it means to Ironic (ironic-lib parses and
// matches hints with it). pyparsing's behaviour is reproduced on purpose,
// quirks included: operators need no space after them ("s==foo"), parsing
// stops at the first thing it cannot read (no parse-all), and "<or>" alone
// reads as the operator "<" applied to "or>".

/** Unary operators in pyparsing MatchFirst order: the first literal that matches wins. */
export const UNARY_OPS = ['==', '=', '!=', '<in>', '>=', '<=', '>', '<', 's==', 's!=', 's<=', 's<', 's>=', 's>'] as const;
export const ALL_IN = '<all-in>';
export const OR = '<or>';
const KEYWORDS: readonly string[] = [...UNARY_OPS, ALL_IN, OR];

/** pyparsing's default whitespace set. */
const WS = new Set([' ', '\t', '\n', '\r']);

export class HintParseError extends Error {
  constructor(readonly expression: string) {
    super(`cannot parse hint expression '${expression}': an operator needs a value after it`);
    this.name = 'HintParseError';
  }
}

/** A value the hint is compared with: a string, or a number (size in GiB). */
export type PyValue = string | number;

export class HintTypeError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'HintTypeError';
  }
}

function skipWs(s: string, pos: number): number {
  while (pos < s.length && WS.has(s[pos]!)) pos++;
  return pos;
}

function literalAt(s: string, pos: number, lits: readonly string[]): string | undefined {
  return lits.find((l) => s.startsWith(l, pos));
}

/** atom = ~(unary_ops | <all-in> | <or>) + Regex(\S+); returns [token, end] or undefined. */
function atom(s: string, pos: number): [string, number] | undefined {
  pos = skipWs(s, pos);
  if (literalAt(s, pos, KEYWORDS) !== undefined) return undefined;
  const m = /^\S+/u.exec(s.slice(pos));
  return m ? [m[0], pos + m[0].length] : undefined;
}

function keyword(s: string, pos: number, lits: readonly string[]): [string, number] | undefined {
  pos = skipWs(s, pos);
  const lit = literalAt(s, pos, lits);
  return lit === undefined ? undefined : [lit, pos + lit.length];
}

/**
 * parseString(): expr = disjunction | nary | unary | atom. Returns the token
 * list (operator first, if any) or throws HintParseError like pyparsing's
 * ParseException.
 */
export function parseSpec(s: string): string[] {
  // disjunction: OneOrMore('<or>' + atom), the '<or>' tokens collapse to one.
  {
    const values: string[] = [];
    let pos = 0;
    for (;;) {
      const k = keyword(s, pos, [OR]);
      if (!k) break;
      const a = atom(s, k[1]);
      if (!a) break;
      values.push(a[0]);
      pos = a[1];
    }
    if (values.length) return [OR, ...values];
  }
  // nary: '<all-in>' + OneOrMore(atom)
  {
    const k = keyword(s, 0, [ALL_IN]);
    if (k) {
      const values: string[] = [];
      let pos = k[1];
      for (let a = atom(s, pos); a; a = atom(s, pos)) {
        values.push(a[0]);
        pos = a[1];
      }
      if (values.length) return [ALL_IN, ...values];
    }
  }
  // unary: op + atom (MatchFirst does not backtrack into other operators)
  {
    const k = keyword(s, 0, UNARY_OPS);
    if (k) {
      const a = atom(s, k[1]);
      if (a) return [k[0], a[0]];
    }
  }
  const a = atom(s, 0);
  if (a) return [a[0]];
  throw new HintParseError(s);
}

/** Python's float() on a str or number; throws like ValueError. */
export function pyFloat(v: PyValue): number {
  if (typeof v === 'number') return v;
  const t = v.trim();
  const num = /^[+-]?(?:(?:\d(?:_?\d)*)?\.\d(?:_?\d)*|\d(?:_?\d)*\.?)(?:[eE][+-]?\d(?:_?\d)*)?$/;
  if (num.test(t)) return Number(t.replace(/_/g, ''));
  const special = /^([+-]?)(inf|infinity|nan)$/i.exec(t);
  if (special) {
    if (special[2]!.toLowerCase() === 'nan') return NaN;
    return special[1] === '-' ? -Infinity : Infinity;
  }
  throw new HintTypeError(`could not convert string to float: '${v}'`);
}

function pyEq(a: PyValue, b: PyValue): boolean {
  return typeof a === typeof b && a === b;
}

function pyOrder(a: PyValue, b: PyValue, op: string): boolean {
  if (typeof a !== typeof b) {
    throw new HintTypeError(`'${op}' not supported between a ${typeof a} and a ${typeof b}`);
  }
  switch (op) {
    case 's<': return a < b;
    case 's<=': return a <= b;
    case 's>': return a > b;
    default: return a >= b;
  }
}

/** specs_matcher.match(cmp_value, spec). */
export function matchSpec(value: PyValue, spec: string): boolean {
  let tree: string[];
  try {
    tree = parseSpec(spec);
  } catch (err) {
    if (!(err instanceof HintParseError)) throw err;
    tree = [spec];
  }
  if (tree.length === 1) return pyEq(tree[0]!, value);
  const [op, ...args] = tree as [string, ...string[]];
  const y = args[0]!;
  switch (op) {
    case '=': return pyFloat(value) >= pyFloat(y); // legacy: '=' means '>='
    case '!=': return pyFloat(value) !== pyFloat(y);
    case '<=': return pyFloat(value) <= pyFloat(y);
    case '<': return pyFloat(value) < pyFloat(y);
    case '==': return pyFloat(value) === pyFloat(y);
    case '>=': return pyFloat(value) >= pyFloat(y);
    case '>': return pyFloat(value) > pyFloat(y);
    case 's!=': return !pyEq(value, y);
    case 's==': return pyEq(value, y);
    case 's<': case 's<=': case 's>': case 's>=': return pyOrder(value, y, op);
    case '<in>':
      if (typeof value !== 'string') throw new HintTypeError(`'<in>' needs a string value, got ${value}`);
      return value.includes(y);
    case '<or>': return args.some((a) => pyEq(value, a));
    case '<all-in>':
      // specs_matcher evaluates the device value as a Python list literal; a
      // normalised (url-quoted) device field can never be one, so Python
      // always raises here. Say so instead of guessing.
      throw new HintTypeError("'<all-in>' must compare with a list literal and cannot be used in root device hints");
    default:
      throw new HintTypeError(`unknown operator ${op}`);
  }
}

/** urllib.parse.quote(s, safe='/'): RFC 3986 unreserved characters and '/' stay, the rest is %XX of UTF-8. */
export function pyQuote(s: string): string {
  let out = '';
  for (const byte of Buffer.from(s, 'utf8')) {
    const c = String.fromCharCode(byte);
    out += /[A-Za-z0-9_.\-~/]/.test(c) ? c : `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}
