import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { withChrootMounts } from '../../src/system/mounts.ts';
import { ImagePathError } from '../../src/system/image-root.ts';

// Issue 21, finding 3: the bind mounts for the deployed OS's chroot (/dev,
// /proc, /sys, /run) and the ESP on /boot/efi were mounted at root/<path>
// as the agent's kernel resolves it, so an image with /run -> / or
// /boot -> /somewhere got the agent's own directories mounted over. The
// "somewhere"s here are fresh temp dirs that exist on the host and, under the
// same absolute path, inside the image tree, so a wrong mount lands only on
// a scratch directory (and the test sees it).

const scratch = mkdtempSync(join(tmpdir(), 'metal-agent-chroot-'));
// A scratch directory below one of the bound filesystems (/run; the bind is
// not recursive, so it must be in /run's own filesystem, not a mount below it).
const underRun = mkdtempSync('/run/metal-agent-h3-');
afterAll(() => {
  rmSync(scratch, { recursive: true, force: true });
  rmSync(underRun, { recursive: true, force: true });
});

function mountPoints(): string[] {
  return readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .map((l) => l.split(' ')[4] ?? '')
    .filter(Boolean);
}

function image(): { root: string; host: string } {
  const root = mkdtempSync(join(scratch, 'image-'));
  const host = mkdtempSync(join(scratch, 'host-'));
  for (const d of ['dev', 'proc', 'sys', 'boot', join(host, 'efi')]) mkdirSync(join(root, d), { recursive: true });
  mkdirSync(join(host, 'efi'), { recursive: true });
  return { root, host };
}

describe('chroot mounts stay inside the deployed image', () => {
  it('a kernel filesystem whose path is a symlink in the image is not bound anywhere; the real ones are', async () => {
    const { root, host } = image();
    symlinkSync(host, join(root, 'run'));
    const seen = await withChrootMounts(root, async () => mountPoints());
    expect(seen).toEqual(expect.arrayContaining([join(root, 'dev'), join(root, 'dev/pts'), join(root, 'proc'), join(root, 'sys')]));
    expect(seen).not.toContain(host);
    expect(seen).not.toContain(join(root, host));
    expect(seen.filter((m) => m.startsWith(root) || m.startsWith(host))).toHaveLength(4);
    expect(mountPoints().filter((m) => m.startsWith(root) || m.startsWith(host))).toEqual([]);
  });

  it('the ESP target is followed through the image\'s own links: /boot -> /abs/path mounts at the image\'s /abs/path', async () => {
    const { root, host } = image();
    rmSync(join(root, 'boot'), { recursive: true });
    symlinkSync(host, join(root, 'boot'));
    const seen = await withChrootMounts(root, async () => mountPoints(), [
      { source: 'tmpfs', target: 'boot/efi', opts: { fsType: 'tmpfs' } },
    ]);
    expect(seen).toContain(join(root, host, 'efi'));
    expect(seen).not.toContain(join(host, 'efi'));
    expect(mountPoints().filter((m) => m.startsWith(root) || m.startsWith(host))).toEqual([]);
  });

  it('an ESP target that leads into one of the binds (the agent\'s own /run) is refused, and the binds are undone', async () => {
    const { root } = image();
    mkdirSync(join(root, 'run'));
    rmSync(join(root, 'boot'), { recursive: true });
    symlinkSync(underRun, join(root, 'boot'));
    mkdirSync(join(underRun, 'efi'), { recursive: true });
    let ran = false;
    const err = await withChrootMounts(root, async () => { ran = true; }, [
      { source: 'tmpfs', target: 'boot/efi', opts: { fsType: 'tmpfs' } },
    ]).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ImagePathError);
    expect((err as Error).message).toMatch(new RegExp(`leads to ${underRun}/efi`));
    expect(ran).toBe(false);
    expect(mountPoints().filter((m) => m.startsWith(root) || m.startsWith(underRun))).toEqual([]);
  });

  it('an ESP target missing from the image is refused rather than created or followed out', async () => {
    const { root, host } = image();
    rmSync(join(root, 'boot'), { recursive: true });
    rmSync(join(root, host), { recursive: true });
    symlinkSync(host, join(root, 'boot'));
    const err = await withChrootMounts(root, async () => undefined, [
      { source: 'tmpfs', target: 'boot/efi', opts: { fsType: 'tmpfs' } },
    ]).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ImagePathError);
    expect(mountPoints().filter((m) => m.startsWith(root) || m.startsWith(host))).toEqual([]);
  });
});
