// The one reader of kernel command lines. The agent reads its own
// (/proc/cmdline: ipa-* parameters, BOOTIF, boot_method), virtual media's
// parameters.txt in the same form, and the deployed OS's command lines it
// composes for kexec or writes into its boot configuration. All of them split
// the same way: on white space outside double quotes. Pure string work, so it
// is base layer and imports nothing of ours.

/** The words of a command line, split on white space outside double quotes; the quotes stay in the words. */
export function splitKernelCmdline(text: string): string[] {
  return text.match(/(?:[^\s"]+|"[^"]*")+/g) ?? [];
}

/**
 * The parameters of a command line as name -> value: `name=value` (quotes
 * removed from the value, `a==b` is a -> '=b'), a bare `name` becomes 'true',
 * a word without a name (`=x`) is skipped, and a later word wins over an
 * earlier one with the same name, as the kernel and IPA read them.
 */
export function parseKernelCmdline(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const raw of splitKernelCmdline(text)) {
    const word = raw.replace(/"/g, '');
    const eq = word.indexOf('=');
    if (eq < 0) out[word] = 'true';
    else if (eq > 0) out[word.slice(0, eq)] = word.slice(eq + 1);
  }
  return out;
}
