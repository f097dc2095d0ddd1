import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { ataSecureErase } from '../../src/system/erase/ata.ts';
import { DiskEraseError } from '../../src/base/errors.ts';
import { nvmeSecureErase } from '../../src/system/erase/nvme.ts';
import { Guard, SafetyError } from '../../src/system/safety.ts';

// The real ataSecureErase / nvmeSecureErase code against stand-in hdparm,
// smartctl and nvme programs put first on PATH. The stand-ins keep an ATA
// security state (supported/enabled/locked/frozen/password) in a file and
// log every call, so the tests see the exact command sequence IPA's state
// machine would issue. No device is opened.

const DEV = '/dev/fake-sda';
let dir: string;
let oldPath: string | undefined;

const HDPARM = `#!/bin/bash
S="$FAKE_DIR/state"; . "$S"
echo "hdparm $*" >> "$FAKE_DIR/log"
yn() { if [ "$1" = 1 ]; then echo "$2"; else echo "not	$2"; fi; }
if [ "$1" = "-I" ]; then
  printf '\\n%s:\\n\\nATA device, with non-removable media\\n' "$2"
  if [ "$supported" = 1 ]; then
    printf 'Security: \\n\\tMaster password revision code = 65534\\n\\t\\tsupported\\n'
    printf '\\t%s\\n' "$(yn $enabled enabled)" "$(yn $locked locked)" "$(yn $frozen frozen)"
    printf '\\tnot\\texpired: security count\\n'
    if [ "$enhanced" = 1 ]; then printf '\\t\\tsupported: enhanced erase\\n'; else printf '\\tnot\\tsupported: enhanced erase\\n'; fi
  fi
  printf 'Logical Unit WWN Device Identifier: 5000000000000001\\n'
  exit 0
fi
op="$3"; pass="$4"
save() { printf 'supported=%s\\nenabled=%s\\nlocked=%s\\nfrozen=%s\\npassword=%s\\nenhanced=%s\\nfail_erase=%s\\n' "$supported" "$enabled" "$locked" "$frozen" "$password" "$enhanced" "$fail_erase" > "$S"; }
case "$op" in
  --security-unlock) if [ "$locked" = 1 ] && [ "$pass" = "$password" ]; then locked=0; save; exit 0; fi; exit 5;;
  --security-set-pass) enabled=1; password="$pass"; save;;
  --security-erase|--security-erase-enhanced)
    if [ "$pass" != "$password" ] || [ "$fail_erase" = 1 ]; then locked=1; save; echo "erase failed" >&2; exit 5; fi
    enabled=0; password=; save;;
esac
`;

function state(s: Partial<Record<'supported' | 'enabled' | 'locked' | 'frozen' | 'enhanced' | 'fail_erase', 0 | 1>> & { password?: string }) {
  const v = { supported: 1, enabled: 0, locked: 0, frozen: 0, password: '', enhanced: 1, fail_erase: 0, ...s };
  writeFileSync(join(dir, 'state'), Object.entries(v).map(([k, x]) => `${k}=${x}`).join('\n') + '\n');
  writeFileSync(join(dir, 'log'), '');
}
const calls = () => readFileSync(join(dir, 'log'), 'utf8').trim().split('\n').filter(Boolean).filter((l) => !l.includes(' -I '));

const guard = new Guard({ inRamdisk: false, allowedDevices: [DEV, '/dev/nvme9n1'], allowPowerActions: false });

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'fake-erase-tools-'));
  const tool = (name: string, text: string) => {
    writeFileSync(join(dir, name), text);
    chmodSync(join(dir, name), 0o755);
  };
  tool('hdparm', HDPARM);
  tool('smartctl', '#!/bin/bash\necho "ATA Security is:  Disabled, NOT FROZEN [SEC1]"\n');
  tool('nvme', `#!/bin/bash
echo "nvme $*" >> "$FAKE_DIR/log"
if [ "$1" = id-ctrl ]; then cat "$FAKE_DIR/idctrl"; exit 0; fi
if [ "$1" = format ] && [ -e "$FAKE_DIR/format-fails" ]; then echo "NVMe status: INVALID_FORMAT" >&2; exit 1; fi
`);
  oldPath = process.env.PATH;
  process.env.PATH = `${dir}:${oldPath}`;
  process.env.FAKE_DIR = dir;
});

afterAll(() => {
  process.env.PATH = oldPath;
  delete process.env.FAKE_DIR;
  rmSync(dir, { recursive: true, force: true });
});

describe('ATA security erase (hdparm state machine)', () => {
  beforeEach(() => state({}));

  it('SEC1: sets a temporary password, enhanced erase, ends with security disabled', async () => {
    expect(await ataSecureErase(DEV, guard)).toBe(true);
    expect(calls()).toEqual([
      `hdparm --user-master u --security-set-pass NULL ${DEV}`,
      `hdparm --user-master u --security-erase-enhanced NULL ${DEV}`,
    ]);
  });

  it('uses the normal erase when enhanced erase is not supported', async () => {
    state({ enhanced: 0 });
    await ataSecureErase(DEV, guard);
    expect(calls()[1]).toBe(`hdparm --user-master u --security-erase NULL ${DEV}`);
  });

  it('returns false (try another method) when security is not supported', async () => {
    state({ supported: 0 });
    expect(await ataSecureErase(DEV, guard)).toBe(false);
    expect(calls()).toEqual([]);
  });

  it('refuses a frozen drive', async () => {
    state({ frozen: 1 });
    await expect(ataSecureErase(DEV, guard)).rejects.toThrow(/is frozen and cannot be erased/);
    expect(calls()).toEqual([]);
  });

  it('unlocks a drive a failed earlier attempt left locked with NULL, then erases', async () => {
    state({ enabled: 1, locked: 1, password: 'NULL' });
    expect(await ataSecureErase(DEV, guard)).toBe(true);
    expect(calls()).toEqual([
      `hdparm --user-master u --security-unlock NULL ${DEV}`,
      `hdparm --user-master u --security-erase-enhanced NULL ${DEV}`,
    ]);
  });

  it('refuses a drive locked with a password it does not know', async () => {
    state({ enabled: 1, locked: 1, password: 'secret' });
    await expect(ataSecureErase(DEV, guard)).rejects.toThrow(/already has a security password set/);
    expect(calls()).toEqual([
      `hdparm --user-master u --security-unlock NULL ${DEV}`,
      `hdparm --user-master u --security-unlock  ${DEV}`,
    ]);
  });

  it('a failed erase unlocks the drive again so an overwrite can follow', async () => {
    state({ fail_erase: 1 });
    const err = await ataSecureErase(DEV, guard).catch((e) => e);
    expect(err).toBeInstanceOf(DiskEraseError);
    expect(calls()).toEqual([
      `hdparm --user-master u --security-set-pass NULL ${DEV}`,
      `hdparm --user-master u --security-erase-enhanced NULL ${DEV}`,
      `hdparm --user-master u --security-unlock NULL ${DEV}`,
    ]);
    expect(readFileSync(join(dir, 'state'), 'utf8')).toContain('locked=0');
  });

  it('never runs for a disk the guard refuses', async () => {
    await expect(ataSecureErase('/dev/fake-sdq', guard)).rejects.toBeInstanceOf(SafetyError);
  });
});

describe('NVMe secure erase (nvme-cli)', () => {
  beforeEach(() => {
    writeFileSync(join(dir, 'log'), '');
    rmSync(join(dir, 'format-fails'), { force: true });
  });
  const idctrl = (o: object) => writeFileSync(join(dir, 'idctrl'), JSON.stringify(o));
  const nvmeCalls = () => readFileSync(join(dir, 'log'), 'utf8').trim().split('\n');

  it('crypto erase (ses=2) when FNA bit 2 is set', async () => {
    idctrl({ oacs: 0x1f, fna: 0x4 });
    expect(await nvmeSecureErase('/dev/nvme9n1', guard)).toBe(true);
    expect(nvmeCalls()).toEqual(['nvme id-ctrl /dev/nvme9n1 -o json', 'nvme format /dev/nvme9n1 -s 2 -f']);
  });

  it('user data erase (ses=1) otherwise', async () => {
    idctrl({ oacs: 0x2, fna: 0 });
    await nvmeSecureErase('/dev/nvme9n1', guard);
    expect(nvmeCalls()[1]).toBe('nvme format /dev/nvme9n1 -s 1 -f');
  });

  it('errors without Format NVM support or when the format fails', async () => {
    idctrl({ oacs: 0x1, fna: 0x4 });
    await expect(nvmeSecureErase('/dev/nvme9n1', guard)).rejects.toThrow(/no|not return any supported format modes/);
    idctrl({ oacs: 0x2, fna: 0 });
    writeFileSync(join(dir, 'format-fails'), '');
    await expect(nvmeSecureErase('/dev/nvme9n1', guard)).rejects.toThrow(/Failed to nvme format device \/dev\/nvme9n1/);
  });
});
