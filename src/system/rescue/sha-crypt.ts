import { createHash, randomBytes } from 'node:crypto';

// SHA-256-crypt ("$5$", Ulrich Drepper's specification), the scheme IPA uses
// when Ironic sends a plain rescue password (older Ironic, hashed=false).
// Node has no crypt(3), and the ramdisk's login programs (dropbear through
// libcrypt, busybox login) verify "$5$" hashes, so the agent computes it here.

const ITOA64 = './0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';
const ROUNDS = 5000; // the specification's default: no "rounds=" field in the output
const SALT_MAX = 16;

function sha256(...parts: Buffer[]): Buffer {
  const h = createHash('sha256');
  for (const p of parts) h.update(p);
  return h.digest();
}

/** `length` bytes of `block` repeated (the specification's P and S sequences). */
function repeatTo(block: Buffer, length: number): Buffer {
  const out = Buffer.alloc(length);
  for (let i = 0; i < length; i += block.length) block.copy(out, i, 0, Math.min(block.length, length - i));
  return out;
}

/** A random salt of 16 characters from crypt's alphabet. */
export function randomSalt(): string {
  return [...randomBytes(SALT_MAX)].map((b) => ITOA64[b & 0x3f]).join('');
}

export function sha256Crypt(password: string, salt: string = randomSalt()): string {
  const s = salt.slice(0, SALT_MAX);
  if (!/^[./0-9A-Za-z]*$/.test(s)) throw new Error('salt must use the characters ./0-9A-Za-z');
  const P = Buffer.from(password, 'utf8');
  const S = Buffer.from(s, 'ascii');

  const B = sha256(P, S, P);
  const a = createHash('sha256').update(P).update(S);
  a.update(repeatTo(B, P.length));
  for (let i = P.length; i > 0; i >>= 1) a.update(i & 1 ? B : P);
  const A = a.digest();

  const DP = sha256(...Array<Buffer>(P.length).fill(P));
  const pSeq = repeatTo(DP, P.length);
  const DS = sha256(...Array<Buffer>(16 + A[0]!).fill(S));
  const sSeq = repeatTo(DS, S.length);

  let C = A;
  for (let r = 0; r < ROUNDS; r++) {
    const h = createHash('sha256');
    h.update(r & 1 ? pSeq : C);
    if (r % 3) h.update(sSeq);
    if (r % 7) h.update(pSeq);
    h.update(r & 1 ? C : pSeq);
    C = h.digest();
  }

  // The specification's byte order for the 43-character encoding.
  const groups: Array<[number, number, number]> = [
    [0, 10, 20], [21, 1, 11], [12, 22, 2], [3, 13, 23], [24, 4, 14],
    [15, 25, 5], [6, 16, 26], [27, 7, 17], [18, 28, 8], [9, 19, 29],
  ];
  let encoded = '';
  const emit = (b2: number, b1: number, b0: number, n: number) => {
    let w = (b2 << 16) | (b1 << 8) | b0;
    for (let i = 0; i < n; i++, w >>= 6) encoded += ITOA64[w & 0x3f];
  };
  for (const [i, j, k] of groups) emit(C[i]!, C[j]!, C[k]!, 4);
  emit(0, C[31]!, C[30]!, 3);
  return `$5$${s}$${encoded}`;
}

/**
 * Whether a string is a crypt(3) hash that is safe to put in /etc/shadow:
 * "$id$..." with crypt's alphabet only (no ':' or newline that would add
 * fields or lines). Ironic sends "$5$" (sha256) or "$6$" (sha512).
 */
export function isCryptHash(value: string): boolean {
  return value.length <= 512 && /^\$[0-9a-z]{1,8}\$[./0-9A-Za-z$=,]+$/.test(value);
}
