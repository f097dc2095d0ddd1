import { randomBytes, randomUUID } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { execa } from 'execa';

// Whole-disk images that look like an installed Linux: ext4 filesystems built
// from a directory (mkfs.ext4 -d) and placed into a partitioned disk image
// file at their offsets. No loop device, no mount: building needs no root.
//
// The kernel is a real one when this machine has one to read (the ramdisk
// build's Debian kernel, or /boot/vmlinuz-*); otherwise a blob with an x86
// boot-protocol header, which is all the agent looks at before kexec.

const ROOT = resolve(import.meta.dirname, '../..');

export interface KernelFile {
  path: string;
  /** The version part of vmlinuz-VERSION. */
  version: string;
  real: boolean;
}

export function pickKernel(scratch: string): KernelFile {
  for (const dir of [join(ROOT, 'build/kernel/root/boot'), '/boot']) {
    if (!existsSync(dir)) continue;
    const name = readdirSync(dir).find((n) => /^vmlinuz-./.test(n));
    if (name) return { path: join(dir, name), version: name.slice('vmlinuz-'.length), real: true };
  }
  const version = '6.1.0-99-fake';
  const path = join(scratch, `vmlinuz-${version}`);
  // One stand-in per scratch dir: every image a test builds carries the same kernel.
  if (existsSync(path)) return { path, version, real: false };
  const blob = randomBytes(256 * 1024);
  blob.writeUInt16LE(0xaa55, 0x1fe);
  blob.write('HdrS', 0x202, 'latin1');
  blob.writeUInt16LE(0x3c0, 0x20e);
  blob.write(`${version} (test) #1 SMP\0`, 0x3c0 + 0x200, 'latin1');
  writeFileSync(path, blob);
  return { path, version, real: false };
}

export interface FsSpec {
  uuid: string;
  label?: string;
  sizeMiB: number;
  /** path -> content (string/Buffer), {copy: hostPath}, or {link: target}. */
  files: Record<string, string | Buffer | { copy: string } | { link: string }>;
}

async function buildExt4(spec: FsSpec, scratch: string): Promise<string> {
  const tree = join(scratch, `tree-${spec.uuid}`);
  rmSync(tree, { recursive: true, force: true });
  mkdirSync(tree, { recursive: true });
  for (const [p, v] of Object.entries(spec.files)) {
    const dest = join(tree, p);
    mkdirSync(join(dest, '..'), { recursive: true });
    if (typeof v === 'string' || Buffer.isBuffer(v)) writeFileSync(dest, v);
    else if ('copy' in v) copyFileSync(v.copy, dest);
    else symlinkSync(v.link, dest);
  }
  const img = join(scratch, `fs-${spec.uuid}.img`);
  await execa('truncate', ['-s', `${spec.sizeMiB}M`, img]);
  await execa('mkfs.ext4', ['-q', '-F', '-U', spec.uuid, ...(spec.label ? ['-L', spec.label] : []), '-d', tree, img]);
  rmSync(tree, { recursive: true, force: true });
  return img;
}

/**
 * A disk image file with one partition per filesystem (1 MiB aligned, in
 * order), MBR or GPT. Returns the partitions' byte offsets.
 */
export async function buildDiskImage(path: string, label: 'dos' | 'gpt', filesystems: FsSpec[], scratch: string): Promise<number[]> {
  const totalMiB = 2 + filesystems.reduce((s, f) => s + f.sizeMiB, 0);
  rmSync(path, { force: true });
  await execa('truncate', ['-s', `${totalMiB}M`, path]);
  let startMiB = 1;
  const lines = [`label: ${label}`];
  const offsets: number[] = [];
  for (const f of filesystems) {
    lines.push(`start=${startMiB * 2048}, size=${f.sizeMiB * 2048}, type=${label === 'gpt' ? '0FC63DAF-8483-4772-8E79-3D69D8477DE4' : '83'}`);
    offsets.push(startMiB * 1024 * 1024);
    startMiB += f.sizeMiB;
  }
  await execa('sfdisk', ['--quiet', path], { input: lines.join('\n') + '\n' });
  for (const [i, f] of filesystems.entries()) {
    const img = await buildExt4(f, scratch);
    await execa('dd', [`if=${img}`, `of=${path}`, 'bs=1M', `seek=${offsets[i]! / (1024 * 1024)}`, 'conv=notrunc,fsync', 'status=none']);
    rmSync(img, { force: true });
  }
  return offsets;
}

export const OS_RELEASE = 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nNAME="Debian GNU/Linux"\nVERSION_ID="12"\nID=debian\n';

/** Debian 12's grub.cfg (as grub-mkconfig writes it), trimmed to what matters; `prefix` is '' for a separate /boot. */
export function debianGrubCfg(o: { bootFsUuid: string; rootFsUuid: string; version: string; prefix: string; args?: string }): string {
  const search = (i: string) => `${i}insmod part_msdos
${i}insmod ext2
${i}set root='hd0,msdos1'
${i}if [ x$feature_platform_search_hint = xy ]; then
${i}  search --no-floppy --fs-uuid --set=root --hint-bios=hd0,msdos1 --hint-efi=hd0,msdos1 --hint-baremetal=ahci0,msdos1  ${o.bootFsUuid}
${i}else
${i}  search --no-floppy --fs-uuid --set=root ${o.bootFsUuid}
${i}fi`;
  const entry = (i: string, title: string, id: string, args: string) => `${i}menuentry '${title}' --class debian --class gnu-linux --class gnu --class os $menuentry_id_option '${id}' {
${i}	load_video
${i}	insmod gzio
${i}	if [ x$grub_platform = xxen ]; then insmod xzio; insmod lzopio; fi
${search(i + '\t')}
${i}	echo	'Loading Linux ${o.version} ...'
${i}	linux	${o.prefix}/vmlinuz-${o.version} root=UUID=${o.rootFsUuid} ro ${args}
${i}	echo	'Loading initial ramdisk ...'
${i}	initrd	${o.prefix}/initrd.img-${o.version}
${i}}`;
  return `#
# DO NOT EDIT THIS FILE
#
### BEGIN /etc/grub.d/00_header ###
if [ -s $prefix/grubenv ]; then
  set have_grubenv=true
  load_env
fi
if [ "\${next_entry}" ] ; then
   set default="\${next_entry}"
   set next_entry=
   save_env next_entry
   set boot_once=true
else
   set default="0"
fi
if [ x"\${feature_menuentry_id}" = xy ]; then
  menuentry_id_option="--id"
else
  menuentry_id_option=""
fi
export menuentry_id_option
function load_video {
  if [ x$feature_all_video_module = xy ]; then
    insmod all_video
  else
    insmod vbe
  fi
}
set timeout=5
### END /etc/grub.d/00_header ###

### BEGIN /etc/grub.d/10_linux ###
${entry('', 'Debian GNU/Linux', `gnulinux-simple-${o.rootFsUuid}`, o.args ?? 'console=ttyS0,115200 quiet')}
submenu 'Advanced options for Debian GNU/Linux' $menuentry_id_option 'gnulinux-advanced-${o.rootFsUuid}' {
${entry('\t', `Debian GNU/Linux, with Linux ${o.version} (recovery mode)`, `gnulinux-${o.version}-recovery-${o.rootFsUuid}`, 'single')}
}
### END /etc/grub.d/10_linux ###
`;
}

export interface DebianDisk {
  kernel: KernelFile;
  rootFsUuid: string;
  bootFsUuid: string;
  initrd: Buffer;
  cmdline: string;
}

/**
 * A Debian-looking whole-disk image: /boot on the root filesystem (one MBR
 * partition) or on its own (two partitions), kernel + initrd + /vmlinuz
 * links + grub.cfg + fstab. withKernel false leaves /boot without a kernel.
 */
export async function buildDebianDisk(
  path: string,
  scratch: string,
  o: { separateBoot?: boolean; withKernel?: boolean; withGrubCfg?: boolean; kernelOverride?: string } = {},
): Promise<DebianDisk> {
  const kernel = pickKernel(scratch);
  const rootFsUuid = randomUUID();
  const bootFsUuid = o.separateBoot ? randomUUID() : rootFsUuid;
  const initrd = Buffer.concat([Buffer.from('070701'), randomBytes(64 * 1024)]);
  const v = kernel.version;
  const prefix = o.separateBoot ? '' : '/boot';
  const boot: FsSpec['files'] = {};
  if (o.withKernel !== false) {
    boot[`${prefix}/vmlinuz-${v}`] = o.kernelOverride !== undefined ? o.kernelOverride : { copy: kernel.path };
    boot[`${prefix}/initrd.img-${v}`] = initrd;
    boot[`${prefix}/config-${v}`] = 'CONFIG_KEXEC=y\n';
  }
  if (o.withGrubCfg !== false) boot[`${prefix}/grub/grub.cfg`] = debianGrubCfg({ bootFsUuid, rootFsUuid, version: v, prefix });
  const fstab = `# /etc/fstab: static file system information.\nUUID=${rootFsUuid} / ext4 errors=remount-ro 0 1\n${o.separateBoot ? `UUID=${bootFsUuid} /boot ext4 defaults 0 2\n` : ''}`;
  const rootFiles: FsSpec['files'] = {
    '/etc/os-release': OS_RELEASE,
    '/etc/fstab': fstab,
    '/etc/hostname': 'deployed\n',
    '/etc/default/grub': 'GRUB_DEFAULT=0\nGRUB_TIMEOUT=5\nGRUB_CMDLINE_LINUX_DEFAULT="quiet"\nGRUB_CMDLINE_LINUX="console=ttyS0,115200"\n',
    ...(o.withKernel !== false ? { '/vmlinuz': { link: `boot/vmlinuz-${v}` }, '/initrd.img': { link: `boot/initrd.img-${v}` } } : {}),
  };
  if (o.separateBoot) {
    rootFiles['/boot/.keep'] = '';
    await buildDiskImage(path, 'gpt', [
      { uuid: bootFsUuid, label: 'boot', sizeMiB: 24, files: boot },
      { uuid: rootFsUuid, label: 'root', sizeMiB: 16, files: rootFiles },
    ], scratch);
  } else {
    await buildDiskImage(path, 'dos', [{ uuid: rootFsUuid, label: 'root', sizeMiB: 32, files: { ...rootFiles, ...boot } }], scratch);
  }
  return { kernel, rootFsUuid, bootFsUuid, initrd, cmdline: `root=UUID=${rootFsUuid} ro console=ttyS0,115200 quiet` };
}
