// Every external program the agent may run, with the Debian package that ships
// it. ramdisk-build reads this list to decide what goes into the initramfs, so
// a tool used anywhere must be named here (the exec wrapper refuses others).
export const TOOLS = {
  lsblk: { pkg: 'util-linux', why: 'list block devices' },
  blkid: { pkg: 'util-linux', why: 'filesystem and partition identities' },
  wipefs: { pkg: 'util-linux', why: 'erase filesystem/RAID signatures' },
  blkdiscard: { pkg: 'util-linux', why: 'discard/zero whole devices' },
  blockdev: { pkg: 'util-linux', why: 'device sizes, re-read partition tables' },
  losetup: { pkg: 'util-linux', why: 'offset loop devices for partitions on loop disks' },
  sfdisk: { pkg: 'util-linux', why: 'MBR partition tables' },
  mount: { pkg: 'util-linux', why: 'mount deployed filesystems' },
  umount: { pkg: 'util-linux', why: 'unmount' },
  partx: { pkg: 'util-linux', why: 'tell the kernel about new partitions' },
  sgdisk: { pkg: 'gdisk', why: 'GPT partition tables' },
  partprobe: { pkg: 'parted', why: 're-read partition tables' },
  udevadm: { pkg: 'udev', why: 'wait for device nodes to settle' },
  'qemu-img': { pkg: 'qemu-utils', why: 'convert qcow2 and other formats onto disks' },
  'mkfs.vfat': { pkg: 'dosfstools', why: 'config drive and ESP filesystems' },
  'mkfs.ext4': { pkg: 'e2fsprogs', why: 'ephemeral partitions' },
  mkswap: { pkg: 'util-linux', why: 'swap partitions' },
  shred: { pkg: 'coreutils', why: 'overwrite disks without a faster guaranteed method' },
  hdparm: { pkg: 'hdparm', why: 'ATA secure erase' },
  nvme: { pkg: 'nvme-cli', why: 'NVMe format / sanitize' },
  dmidecode: { pkg: 'dmidecode', why: 'system vendor, memory facts' },
  ipmitool: { pkg: 'ipmitool', why: 'BMC address (optional)' },
  ip: { pkg: 'iproute2', why: 'addresses and routes' },
  zstd: { pkg: 'zstd', why: 'zstd-compressed images' },
  xz: { pkg: 'xz-utils', why: 'xz-compressed images' },
  kexec: { pkg: 'kexec-tools', why: 'hand off to the deployed kernel without a reboot' },
  efibootmgr: { pkg: 'efibootmgr', why: 'UEFI boot entries' },
  'grub-install': { pkg: 'grub2-common', why: 'BIOS boot loader (run in the deployed root)' },
  chroot: { pkg: 'coreutils', why: 'run the deployed OS\'s own tools' },
  sync: { pkg: 'coreutils', why: 'flush filesystems' },
  poweroff: { pkg: 'busybox', why: 'power off (ramdisk only)' },
  reboot: { pkg: 'busybox', why: 'reboot (ramdisk only)' },
  genisoimage: { pkg: 'genisoimage', why: 'build config drive ISOs (tests)' },
  mcopy: { pkg: 'mtools', why: 'copy files into vfat filesystems (ESP, config drive) without mounting' },
  mmd: { pkg: 'mtools', why: 'make directories in vfat filesystems without mounting' },
  'mkfs.ext2': { pkg: 'e2fsprogs', why: 'ephemeral partitions (ephemeral_format ext2)' },
  'mkfs.ext3': { pkg: 'e2fsprogs', why: 'ephemeral partitions (ephemeral_format ext3)' },
  'mkfs.xfs': { pkg: 'xfsprogs', why: 'ephemeral partitions (ephemeral_format xfs)' },
  isoinfo: { pkg: 'genisoimage', why: 'read files from ISO9660 config drives without mounting (tests)' },
  mdir: { pkg: 'mtools', why: 'list EFI system partitions without mounting (no vfat in some kernels)' },
  mtype: { pkg: 'mtools', why: 'read files (BOOTX64.CSV) from EFI system partitions without mounting' },
} as const satisfies Record<string, { pkg: string; why: string }>;

export type ToolName = keyof typeof TOOLS;

export function isTool(name: string): name is ToolName {
  return Object.prototype.hasOwnProperty.call(TOOLS, name);
}
