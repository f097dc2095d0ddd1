#!/usr/bin/env bash
# Builds the "tenant OS" the demo and the e2e tests deploy, from Debian
# packages, kernel and initramfs included, in up to three shapes:
# - OUT.raw: a whole-disk image (MBR, one ext4 root partition), no boot
#   loader installed: the demo kexecs into it;
# - ROOT.img (optional): the same root filesystem alone, a partition image:
#   the agent lays out the disk and its image.install_bootloader runs the
#   image's own GRUB (BIOS and UEFI targets are both in the image), so the VM
#   boots it from its disk by itself (test/e2e/vm-bootloader.test.ts).
# - RAID.raw (optional): a whole-disk image that boots by itself under both
#   firmwares from inside a software RAID-1 array (test/e2e/vm-raid-boot.test.ts):
#   GPT with an ESP (FAT, EFI/BOOT/BOOTX64.EFI: a GRUB made with grub-mkimage
#   whose embedded config finds the root by filesystem UUID through GRUB's
#   mdraid1x, then reads /boot/grub/grub.cfg) and the same ext4 root. The
#   agent copies that ESP to every member disk (UEFI) or runs the image's
#   grub-install on every member (BIOS, which rewrites grub.cfg). mdadm is in
#   the tree, so every initramfs assembles arrays, and Debian's mdadm
#   local-block script starts a degraded one after ~20 s of waiting for root.
#
#   lab/guest-image/build.sh OUT.raw [ROOT.img [RAID.raw]]   (as root; `make guest-image`
#                              -> build/guest.raw build/guest-root.img build/guest-raid.raw)
#
# - debootstrap --variant=minbase bookworm + linux-image-amd64, cached under
#   $GUEST_CACHE (default /var/cache/metal-agent/guest-bookworm-KEY), so a rerun
#   only re-packs (seconds). KEY hashes the debootstrap inputs below.
# - No init system: /sbin/init is lab/guest-image/metal-guest-init, which reads
#   the config drive (partition labelled config-2), sets the hostname from
#   openstack/latest/meta_data.json and prints
#     metal-guest: hostname=<name> cmdline=<kernel command line>
#   on the console, then keeps a root shell on ttyS0.
# - GRUB's tools and modules for both firmwares (grub2-common, grub-pc-bin,
#   grub-efi-amd64-bin), installed on no disk: that is install_bootloader's
#   job on the node. /etc/default/grub sets a serial console and no menu wait.
# - For kexec no boot loader is needed: the agent kexecs into it. It finds the kernel through the
#   /boot/vmlinuz + /boot/initrd.img links (Debian's kernel postinst makes them),
#   root= from /etc/fstab (UUID=) and GRUB_CMDLINE_LINUX from /etc/default/grub
#   (console=ttyS0,115200). See docs/kexec.md "Finding the deployed kernel".
# - The filesystem is made with `mkfs.ext4 -d TREE` into a file; the disk is
#   assembled with sfdisk on the image file and dd at the partition offset: no
#   loop device, no mount on this machine (only debootstrap's own chroot).
#
# Environment: GUEST_MIRROR (default http://deb.debian.org/debian), GUEST_CACHE.
set -euo pipefail
out=${1:?usage: lab/guest-image/build.sh OUT.raw [ROOT.img [RAID.raw]]}
rootfs_out=${2:-}
raid_out=${3:-}
here=$(cd "$(dirname "$0")" && pwd)
mirror=${GUEST_MIRROR:-http://deb.debian.org/debian}
suite=bookworm
include=linux-image-amd64,kmod,zstd,grub2-common,grub-pc-bin,grub-efi-amd64-bin,mdadm
# Modules the guest never needs (a VM or a server booting from a local disk):
# dropped to keep the image small. The initramfs is made after this.
prune_modules=(sound drivers/gpu drivers/media drivers/net/wireless drivers/infiniband drivers/staging
  drivers/bluetooth net/wireless net/mac80211 net/bluetooth drivers/iio drivers/isdn drivers/hid
  drivers/input/touchscreen drivers/usb/gadget drivers/net/can drivers/mtd drivers/platform/x86
  drivers/hwmon drivers/thunderbolt drivers/video drivers/leds drivers/w1 drivers/comedi)

key=$(printf '%s\n' "v1" "$mirror" "$suite" "$include" | sha256sum | cut -c1-12)
cache=${GUEST_CACHE:-/var/cache/metal-agent/guest-$suite-$key}
[[ $(id -u) == 0 ]] || { echo "build.sh: run as root (debootstrap)" >&2; exit 1; }
for t in debootstrap mkfs.ext4 sfdisk ${raid_out:+mkfs.vfat mcopy mmd}; do
  command -v "$t" >/dev/null || { echo "build.sh: $t missing (scripts/install-deps.sh installs it)" >&2; exit 1; }
done

t0=$(date +%s)
mkdir -p "$(dirname "$cache")"
exec 9>"$cache.lock"
flock 9   # one debootstrap per cache at a time

if [[ ! -f $cache/.complete ]]; then
  echo "guest-image: debootstrap $suite (minbase + $include) into $cache (cached for next time)"
  rm -rf "$cache"
  debootstrap --variant=minbase --include="$include" "$suite" "$cache" "$mirror" >"$cache.log" 2>&1 ||
    { tail -30 "$cache.log" >&2; for m in proc sys dev/pts dev; do umount "$cache/$m" 2>/dev/null || true; done; exit 1; }
  # debootstrap unmounts what it mounted; make sure nothing stays.
  for m in proc sys dev/pts dev; do mountpoint -q "$cache/$m" && umount -l "$cache/$m"; done
  touch "$cache/.complete"
fi
t1=$(date +%s)

work=$(mktemp -d "${TMPDIR:-/tmp}/metal-guest.XXXXXX")
cleanup() { for m in proc sys dev; do mountpoint -q "$work/root/$m" 2>/dev/null && umount -l "$work/root/$m"; done; rm -rf "$work"; }
trap cleanup EXIT
root=$work/root
cp -a "$cache" "$root"
rm -f "$root/.complete"

kver=$(ls "$root/lib/modules" | sort -V | tail -1)
for p in "${prune_modules[@]}"; do rm -rf "$root/lib/modules/$kver/kernel/$p"; done
rm -rf "$root"/usr/share/{doc,man,info,locale,lintian,linda} "$root"/var/cache/apt/* "$root"/var/lib/apt/lists/* \
  "$root"/var/log/* "$root"/boot/initrd.img-* "$root"/etc/machine-id

uuid=$(cat /proc/sys/kernel/random/uuid)
echo "metal-guest" > "$root/etc/hostname"
printf '127.0.0.1 localhost\n' > "$root/etc/hosts"
printf 'UUID=%s / ext4 ro,errors=remount-ro 0 1\n' "$uuid" > "$root/etc/fstab"
# Read by the agent's kexec and by grub-mkconfig for the command line.
cat > "$root/etc/default/grub" <<'EOF'
GRUB_DEFAULT=0
GRUB_TIMEOUT=0
GRUB_DISTRIBUTOR=Debian
GRUB_CMDLINE_LINUX="console=ttyS0,115200"
GRUB_CMDLINE_LINUX_DEFAULT=""
GRUB_TERMINAL="console serial"
GRUB_SERIAL_COMMAND="serial --unit=0 --speed=115200"
GRUB_DISABLE_RECOVERY=true
GRUB_DISABLE_OS_PROBER=true
EOF
install -m 0755 "$here/metal-guest-init" "$root/sbin/init"
mkdir -p "$root/mnt/config"
# Small initramfs: virtio/nvme/sata/scsi disks + ext4; zstd.
cat > "$root/etc/initramfs-tools/conf.d/metal-guest.conf" <<'EOF'
MODULES=list
COMPRESS=zstd
EOF
cat > "$root/etc/initramfs-tools/modules" <<'EOF'
virtio_pci
virtio_blk
virtio_scsi
sd_mod
nvme
ahci
ata_piix
ext4
crc32c_generic
raid1
EOF
# Arrays come from another machine (the agent's ramdisk made them): assemble
# them whatever homehost their superblock names (mdadm's hook keeps these lines).
cat > "$root/etc/mdadm/mdadm.conf" <<'EOF'
HOMEHOST <ignore>
AUTO +all
MAILADDR root
EOF
mount -t proc proc "$root/proc"
chroot "$root" depmod -a "$kver"
chroot "$root" update-initramfs -c -k "$kver" >"$work/initramfs.log" 2>&1 || { cat "$work/initramfs.log" >&2; exit 1; }
umount "$root/proc"
# Debian's postinst puts the links in / (link_in_boot=no); the agent also looks at /boot.
ln -sfn "vmlinuz-$kver" "$root/boot/vmlinuz"
ln -sfn "initrd.img-$kver" "$root/boot/initrd.img"
ln -sfn "boot/vmlinuz-$kver" "$root/vmlinuz"
ln -sfn "boot/initrd.img-$kver" "$root/initrd.img"

# For RAID.raw (harmless in the others: install_bootloader's grub-mkconfig
# replaces it): a grub.cfg that finds the root by UUID, also inside an md array.
mkdir -p "$root/boot/grub"
cat > "$root/boot/grub/grub.cfg" <<EOF
serial --unit=0 --speed=115200
terminal_input console serial
terminal_output console serial
set timeout=0
insmod part_gpt
insmod part_msdos
insmod mdraid1x
insmod ext2
search --no-floppy --fs-uuid --set=root $uuid
menuentry 'metal-guest' {
  linux /boot/vmlinuz-$kver root=UUID=$uuid ro console=ttyS0,115200
  initrd /boot/initrd.img-$kver
}
EOF
if [[ -n $raid_out ]]; then
  # The ESP's GRUB: the image's own modules, an embedded config that locates the root.
  printf 'search --no-floppy --fs-uuid --set=root %s\nset prefix=($root)/boot/grub\nconfigfile ($root)/boot/grub/grub.cfg\n' "$uuid" > "$root/tmp/early.cfg"
  chroot "$root" grub-mkimage -O x86_64-efi -p /boot/grub -c /tmp/early.cfg -o /tmp/bootx64.efi \
    part_gpt part_msdos diskfilter mdraid1x ext2 fat search search_fs_uuid configfile normal linux boot \
    echo test serial terminal efi_gop efi_uga all_video
  mv "$root/tmp/bootx64.efi" "$work/bootx64.efi"
  rm -f "$root/tmp/early.cfg"
fi

# ext4 from the tree, 20% + 32 MiB headroom, then MBR + dd at 1 MiB.
used_mib=$(( $(du -sm --apparent-size "$root" | cut -f1) ))
fs_mib=$(( used_mib * 12 / 10 + 32 ))
truncate -s "${fs_mib}M" "$work/root.ext4"
mkfs.ext4 -q -F -U "$uuid" -L metal-guest-root -E root_owner=0:0 -d "$root" "$work/root.ext4"
tmp_out="$out.tmp.$$"
rm -f "$tmp_out"
truncate -s $(( (fs_mib + 2) * 1024 * 1024 )) "$tmp_out"
printf 'label: dos\nstart=2048, size=%d, type=83, bootable\n' $(( fs_mib * 2048 )) | sfdisk -q "$tmp_out"
dd if="$work/root.ext4" of="$tmp_out" bs=1M seek=1 conv=notrunc,sparse status=none
mv "$tmp_out" "$out"
if [[ -n $raid_out ]]; then
  # GPT: 32 MiB ESP at 1 MiB, the same root filesystem after it, 1 MiB for the backup GPT.
  esp_mib=32
  rm -f "$work/esp.fat"
  mkfs.vfat -C -n EFI "$work/esp.fat" $(( esp_mib * 1024 )) >/dev/null
  MTOOLS_SKIP_CHECK=1 mmd -i "$work/esp.fat" ::/EFI ::/EFI/BOOT
  MTOOLS_SKIP_CHECK=1 mcopy -i "$work/esp.fat" "$work/bootx64.efi" ::/EFI/BOOT/BOOTX64.EFI
  tmp_raid="$raid_out.tmp.$$"
  rm -f "$tmp_raid"
  truncate -s $(( (1 + esp_mib + fs_mib + 1) * 1024 * 1024 )) "$tmp_raid"
  printf 'label: gpt\nstart=2048, size=%d, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, name="EFI System"\nstart=%d, size=%d, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, name=root\n' \
    $(( esp_mib * 2048 )) $(( (1 + esp_mib) * 2048 )) $(( fs_mib * 2048 )) | sfdisk -q "$tmp_raid"
  dd if="$work/esp.fat" of="$tmp_raid" bs=1M seek=1 conv=notrunc,sparse status=none
  dd if="$work/root.ext4" of="$tmp_raid" bs=1M seek=$(( 1 + esp_mib )) conv=notrunc,sparse status=none
  mv "$tmp_raid" "$raid_out"
fi
if [[ -n $rootfs_out ]]; then
  cp --sparse=always "$work/root.ext4" "$rootfs_out.tmp.$$" && mv "$rootfs_out.tmp.$$" "$rootfs_out"
fi
t2=$(date +%s)
echo "guest-image: $out${rootfs_out:+ + $rootfs_out}${raid_out:+ + $raid_out} ($(( (fs_mib + 2) ))MiB, kernel $kver, root UUID $uuid) debootstrap $((t1 - t0))s, pack $((t2 - t1))s"
