// The one reader of booleans written as words: kernel parameters and
// environment variables (ipa-debug=1), mDNS TXT values, and the node's
// driver_internal_info / root device hints that Ironic hands over as strings.
// It accepts what oslo.utils' strutils.bool_from_string accepts, which is what
// IPA and ironic-lib use for all of these. Base layer: imports nothing of ours.

/** strutils.TRUE_STRINGS and FALSE_STRINGS. */
export const TRUE_WORDS: readonly string[] = ['1', 't', 'true', 'on', 'y', 'yes'];
export const FALSE_WORDS: readonly string[] = ['0', 'f', 'false', 'off', 'n', 'no'];

/**
 * true or false for a boolean or one of the words (any case, white space
 * around ignored; a number is read as its digits, so 1 is true), undefined
 * for anything else: the caller decides whether that is an error or a default.
 */
export function parseBoolean(value: unknown): boolean | undefined {
  if (typeof value === 'boolean') return value;
  if (typeof value !== 'string' && typeof value !== 'number') return undefined;
  const word = String(value).trim().toLowerCase();
  if (TRUE_WORDS.includes(word)) return true;
  if (FALSE_WORDS.includes(word)) return false;
  return undefined;
}
