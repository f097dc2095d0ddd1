import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, describe, expect, it } from 'vitest';
import {
  addToBlsEntry,
  addToDefaultGrub,
  applyKernelParams,
  InvalidKernelParamsError,
  kernelParamsArg,
  shellSingleQuote,
} from '../../src/system/bootloader/kernel-params.ts';

// Issue 21, finding 3: deploy-step input went unquoted into the deployed
// image's /etc/default/grub, which its grub-mkconfig sources as root. Here:
// the grammar a parameter must fit (accepted and refused examples), and the
// quoting, checked by writing the file and sourcing it with real shells.

const scratch = mkdtempSync(join(tmpdir(), 'metal-agent-kparams-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

const SHELLS = ['/bin/sh', '/usr/bin/busybox'].filter(existsSync);

/** Sources `content` as a file with each shell and returns what GRUB_CMDLINE_LINUX_DEFAULT holds; also that nothing was created. */
async function sourced(content: string): Promise<string[]> {
  const dir = mkdtempSync(join(scratch, 'src-'));
  writeFileSync(join(dir, 'grub'), content);
  const out: string[] = [];
  for (const shell of SHELLS) {
    const args = shell.endsWith('busybox') ? ['sh', '-c'] : ['-c'];
    const r = await execa(shell, [...args, '. ./grub; printf %s "$GRUB_CMDLINE_LINUX_DEFAULT"'], { cwd: dir });
    out.push(r.stdout);
  }
  expect(readFileSync(join(dir, 'grub'), 'utf8')).toBe(content);
  return out;
}

describe('kernel parameter grammar', () => {
  it('accepts what kernel command lines hold', () => {
    const ok = [
      'quiet',
      'nosmt',
      '1',
      'console=ttyS0,115200n8',
      'root=UUID=0b4b1a5e-8c11-4c3a-9b0e-3f4a9d2c1e77',
      'rd.luks.uuid=luks-1234',
      'ip=10.0.0.2::10.0.0.1:255.255.255.0:node1:eth0:none',
      'init=/sbin/init',
      'crashkernel=1G-4G:192M,4G-64G:256M',
      'video=HDMI-A-1:1920x1080@60',
      'ipa-debug=1',
      '8250.nr_uarts=4',
      'vfio-pci.ids=10de:1b80,10de:10f0',
      'acpi_osi="!Windows 2012"',
      'dyndbg="file drivers/usb/* +p"',
      'memmap=64M#0x10000000',
      'x=',
      'x=""',
    ];
    for (const p of ok) expect(kernelParamsArg(p), p).toEqual([p]);
    expect(kernelParamsArg(' quiet  acpi_osi="!Windows 2012"\tnosmt ')).toEqual(['quiet', 'acpi_osi="!Windows 2012"', 'nosmt']);
    expect(kernelParamsArg(['a=1 b', 'c="d e"'])).toEqual(['a=1', 'b', 'c="d e"']);
    expect(kernelParamsArg(null)).toEqual([]);
    expect(kernelParamsArg(undefined)).toEqual([]);
  });

  it('refuses shell and GRUB metacharacters, control characters, stray quotes and oversize input, naming what is wrong', () => {
    const refused: Array<[unknown, RegExp]> = [
      ['x=$(touch /tmp/p)', /"\$" is not allowed/],
      ['x=$(touch${IFS}/tmp/p)', /"\$" is not allowed/],
      ['x="$(id)"', /"\$" is not allowed/],
      ['x=`id`', /"`" is not allowed/],
      ["x='a'", /"'" is not allowed/],
      ['a;reboot', /";" is not allowed/],
      ['a|b', /"\|" is not allowed/],
      ['a&b', /"&" is not allowed/],
      ['a>b', /">" is not allowed/],
      ['a<b', /"<" is not allowed/],
      ['x=(a)', /"\(" is not allowed/],
      ['x=\\n', /"\\\\" is not allowed/],
      ['x={a}', /"\{" is not allowed/],
      ['x=[a]', /"\[" is not allowed/],
      ['x=a?', /"\?" is not allowed/],
      ['memmap=100M$0x10000000', /"\$" is not allowed/],
      ['x=é', /"é" is not allowed/],
      ['x="a\ntouch /tmp/p"', /control character "\\n"/],
      ['a\nb', /control character "\\n"/],
      ['x=a\rb', /control character "\\r"/],
      ['x=\u0000', /control character/],
      ['x="a b', /unbalanced double quote/],
      ['"x=1"', /only a value \(after =\) may be double-quoted/],
      ['x=a"b c"', /parameter is `name` or `name=value`/],
      ['-x', /name starts with a letter, digit or _/],
      ['--', /name starts with/],
      ['=x', /name starts with/],
      [['ok=1', 'x=`touch /tmp/p`'], /"`" is not allowed/],
      [['ok', 7], /7 is not a string/],
      [Array.from({ length: 300 }, (_, i) => `param${i}=value`), /more than a kernel command line holds \(2048\)/],
    ];
    for (const [input, why] of refused) {
      let err: unknown;
      try {
        kernelParamsArg(input);
      } catch (e) {
        err = e;
      }
      expect(err, JSON.stringify(input)).toBeInstanceOf(InvalidKernelParamsError);
      expect((err as Error).message, JSON.stringify(input)).toMatch(why);
    }
  });

  it('the file writers refuse unchecked parameters too (install_bootloader reaches them without the step)', () => {
    expect(() => addToDefaultGrub('', ['x=$(id)'])).toThrow(InvalidKernelParamsError);
    expect(() => addToBlsEntry('options ro\n', ['a;b'])).toThrow(InvalidKernelParamsError);
  });
});

describe('etc/default/grub quoting, sourced by real shells', () => {
  it('has a shell to source with', () => {
    expect(SHELLS.length).toBeGreaterThan(0);
  });

  it('round-trips accepted parameters, whatever the existing assignment looks like', async () => {
    const params = ['console=ttyS0,115200n8', 'acpi_osi="!Windows 2012"', 'dyndbg="file drivers/usb/* +p"', 'x=" touch /tmp/never"', 'memmap=64M#0x1000'];
    const cases: Array<[string, string]> = [
      ['GRUB_CMDLINE_LINUX_DEFAULT="quiet splash"\n', 'quiet splash'],
      ["GRUB_CMDLINE_LINUX_DEFAULT='quiet'\n", 'quiet'],
      ['GRUB_CMDLINE_LINUX_DEFAULT=quiet\n', 'quiet'],
      ['GRUB_CMDLINE_LINUX_DEFAULT=""\n', ''],
      ['GRUB_TIMEOUT=5', ''],
      ['', ''],
      ['GRUB_CMDLINE_LINUX_DEFAULT="first"\nGRUB_CMDLINE_LINUX_DEFAULT="it\'s last"\n', "it's last"],
      ['export GRUB_CMDLINE_LINUX_DEFAULT="quiet"\n', 'quiet'],
      // Not a literal: kept, and extended by a line of its own.
      ['FOO=bar\nGRUB_CMDLINE_LINUX_DEFAULT="$FOO quiet"\n', 'bar quiet'],
      ['GRUB_CMDLINE_LINUX_DEFAULT="quiet" # a comment\n', 'quiet'],
    ];
    for (const [before, value] of cases) {
      const after = addToDefaultGrub(before, params);
      const expected = [value, ...params].filter(Boolean).join(' ');
      for (const got of await sourced(after)) expect(got, after).toBe(expected);
      // Adding the same parameters again changes nothing.
      expect(addToDefaultGrub(after, params), after).toBe(after);
    }
    expect(existsSync('/tmp/never')).toBe(false);
  });

  it('the old double-quoted form ran a parameter that fits the grammar; the single-quoted one does not', async () => {
    const marker = join(scratch, 'ran');
    const param = `x=" touch ${marker}"`;
    expect(kernelParamsArg(param)).toEqual([param]);
    // What the agent wrote before the fix: the parameter's own quotes end the string and `touch` runs.
    await sourced(`GRUB_CMDLINE_LINUX_DEFAULT="quiet ${param}"\n`);
    expect(existsSync(marker)).toBe(true);
    rmSync(marker);
    const got = await sourced(addToDefaultGrub('GRUB_CMDLINE_LINUX_DEFAULT="quiet"\n', [param]));
    for (const g of got) expect(g).toBe(`quiet ${param}`);
    expect(existsSync(marker)).toBe(false);
  });

  it('shellSingleQuote gives back any string, quotes and newlines included, and runs nothing', async () => {
    const marker = join(scratch, 'quoted');
    for (const s of ["it's", "'", "''", `$(touch ${marker})`, `\`touch ${marker}\``, `a\n touch ${marker}\n`, '\\', '"', '']) {
      for (const shell of SHELLS) {
        const args = shell.endsWith('busybox') ? ['sh', '-c'] : ['-c'];
        const r = await execa(shell, [...args, `printf %s ${shellSingleQuote(s)}`], { stripFinalNewline: false });
        expect(r.stdout, JSON.stringify(s)).toBe(s);
      }
    }
    expect(existsSync(marker)).toBe(false);
  });
});

describe('files under a mounted image are resolved inside it', () => {
  const sha = (p: string) => createHash('sha256').update(readFileSync(p)).digest('hex');

  /** A host directory standing for a sentinel (never /etc itself), and an image tree that has the same absolute path. */
  function imageWithSentinel() {
    const host = mkdtempSync(join(scratch, 'host-'));
    const root = mkdtempSync(join(scratch, 'image-'));
    writeFileSync(join(host, 'passwd'), 'HOST SENTINEL: must never change\n');
    mkdirSync(join(root, host), { recursive: true });
    mkdirSync(join(root, 'etc/default'), { recursive: true });
    return { host, root };
  }

  it('/etc/default/grub -> an absolute path: the image\'s file at that path is written, the host\'s is not', async () => {
    const { host, root } = imageWithSentinel();
    writeFileSync(join(root, host, 'passwd'), 'GRUB_CMDLINE_LINUX_DEFAULT="quiet"\n');
    symlinkSync(join(host, 'passwd'), join(root, 'etc/default/grub'));
    const before = sha(join(host, 'passwd'));
    const hostPasswd = sha('/etc/passwd');
    expect(await applyKernelParams(root, ['nosmt'])).toEqual(['/etc/default/grub']);
    expect(sha(join(host, 'passwd'))).toBe(before);
    expect(sha('/etc/passwd')).toBe(hostPasswd);
    expect(readFileSync(join(root, host, 'passwd'), 'utf8')).toBe("GRUB_CMDLINE_LINUX_DEFAULT='quiet nosmt'\n");
  });

  it('relative links climb no higher than the image root; BLS entries that are links stay inside too', async () => {
    const { host, root } = imageWithSentinel();
    writeFileSync(join(root, host, 'passwd'), 'GRUB_CMDLINE_LINUX_DEFAULT=quiet\n');
    symlinkSync(`../../../../../../../../..${host}/passwd`, join(root, 'etc/default/grub'));
    mkdirSync(join(root, 'boot/loader/entries'), { recursive: true });
    writeFileSync(join(host, 'entry.conf'), 'options ro\n');
    writeFileSync(join(root, host, 'entry.conf'), 'title x\noptions ro\n');
    symlinkSync(join(host, 'entry.conf'), join(root, 'boot/loader/entries/a.conf'));
    const before = [sha(join(host, 'passwd')), sha(join(host, 'entry.conf'))];
    expect(await applyKernelParams(root, ['nosmt'])).toEqual(['/etc/default/grub', '/boot/loader/entries/a.conf']);
    expect([sha(join(host, 'passwd')), sha(join(host, 'entry.conf'))]).toEqual(before);
    expect(readFileSync(join(root, host, 'entry.conf'), 'utf8')).toBe('title x\noptions ro nosmt\n');
  });

  it('a link to something the image does not have is not written (even though the host has it), nor is a FIFO read', async () => {
    const { host, root } = imageWithSentinel();
    symlinkSync(join(host, 'passwd'), join(root, 'etc/default/grub'));
    const before = sha(join(host, 'passwd'));
    await expect(applyKernelParams(root, ['nosmt'])).rejects.toThrow(/neither \/etc\/default\/grub nor BLS entries/);
    expect(sha(join(host, 'passwd'))).toBe(before);

    const fifoRoot = mkdtempSync(join(scratch, 'fifo-'));
    mkdirSync(join(fifoRoot, 'etc/default'), { recursive: true });
    await execa('mkfifo', [join(fifoRoot, 'etc/default/grub')]);
    await expect(applyKernelParams(fifoRoot, ['nosmt'])).rejects.toThrow(/neither/);
  });

  it('fstab: the ESP line goes to the image\'s fstab through an absolute link; a dangling link is refused', async () => {
    const { ensureEspInFstab } = await import('../../src/system/bootloader/fstab.ts');
    const { host, root } = imageWithSentinel();
    writeFileSync(join(host, 'fstab'), 'HOST FSTAB\n');
    writeFileSync(join(root, host, 'fstab'), 'UUID=abc / ext4 defaults 0 1\n');
    symlinkSync(join(host, 'fstab'), join(root, 'etc/fstab'));
    expect(await ensureEspInFstab(root, 'ABCD-1234')).toBe(true);
    expect(readFileSync(join(host, 'fstab'), 'utf8')).toBe('HOST FSTAB\n');
    expect(readFileSync(join(root, host, 'fstab'), 'utf8')).toBe('UUID=abc / ext4 defaults 0 1\nUUID=ABCD-1234\t/boot/efi\tvfat\tumask=0077\t0\t1\n');

    const other = imageWithSentinel();
    writeFileSync(join(other.host, 'fstab'), 'HOST FSTAB\n');
    symlinkSync(join(other.host, 'fstab'), join(other.root, 'etc/fstab'));
    await expect(ensureEspInFstab(other.root, 'ABCD-1234')).rejects.toThrow(/symlink to nothing inside the image/);
    expect(readFileSync(join(other.host, 'fstab'), 'utf8')).toBe('HOST FSTAB\n');
  });

  it('mkdir -p inside the image follows the image\'s links, not the host\'s', async () => {
    const { mkdirInImage } = await import('../../src/system/image-root.ts');
    const { host, root } = imageWithSentinel();
    symlinkSync(host, join(root, 'boot'));
    expect(await mkdirInImage(root, '/boot/efi')).toBe(`${host}/efi`);
    expect(existsSync(join(root, host, 'efi'))).toBe(true);
    expect(existsSync(join(host, 'efi'))).toBe(false);
  });
});
