import { describe, expect, it } from 'vitest';
import { FALSE_WORDS, parseBoolean, TRUE_WORDS } from '../../src/base/booleans.ts';
import { parseKernelCmdline, splitKernelCmdline } from '../../src/base/kernel-cmdline.ts';

// The base layer's one kernel command line reader and one boolean reader,
// which the config, the inventory (BOOTIF), virtual media (boot_method,
// parameters.txt), the boot loader and kexec (deployed command lines), mDNS,
// erase options and root device hints all use.

describe('kernel command line', () => {
  it('splits on white space outside double quotes, keeping the quotes', () => {
    expect(splitKernelCmdline(' a=1  b="x y" c ')).toEqual(['a=1', 'b="x y"', 'c']);
    expect(splitKernelCmdline('a\tb\nc')).toEqual(['a', 'b', 'c']);
    expect(splitKernelCmdline('   ')).toEqual([]);
  });

  it('reads name=value pairs: quotes removed, bare words true, later words win, nameless words skipped', () => {
    expect(
      parseKernelCmdline('ipa-api-url=http://[fd00::1]:6385 boot_method=vmedia\nipa-debug=1  quiet =x a==b msg="hello world"'),
    ).toEqual({
      'ipa-api-url': 'http://[fd00::1]:6385',
      boot_method: 'vmedia',
      'ipa-debug': '1',
      quiet: 'true',
      a: '=b',
      msg: 'hello world',
    });
    expect(parseKernelCmdline('console=ttyS0 BOOTIF=01-52-54-00-12-34-56 BOOTIF=01-aa-bb-cc-dd-ee-ff').BOOTIF).toBe('01-aa-bb-cc-dd-ee-ff');
    expect(parseKernelCmdline('xboot_method=vmedia').boot_method).toBeUndefined();
    expect(parseKernelCmdline('')).toEqual({});
  });
});

describe('booleans', () => {
  it('reads the words of oslo strutils.bool_from_string, any case, trimmed', () => {
    for (const w of TRUE_WORDS) expect([parseBoolean(w), parseBoolean(` ${w.toUpperCase()} `)]).toEqual([true, true]);
    for (const w of FALSE_WORDS) expect([parseBoolean(w), parseBoolean(` ${w.toUpperCase()} `)]).toEqual([false, false]);
    expect([parseBoolean(true), parseBoolean(false), parseBoolean(1), parseBoolean(0)]).toEqual([true, false, true, false]);
  });

  it('gives undefined for anything else, so the caller chooses an error or a default', () => {
    for (const v of ['maybe', '', '2', 'truee', 2, null, undefined, {}, ['true']]) expect(parseBoolean(v)).toBeUndefined();
  });
});
