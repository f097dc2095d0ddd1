#!/usr/bin/env bash
# The UEFI boot loader image Ironic needs to build a UEFI-bootable ISO from
# deploy_kernel + deploy_ramdisk ([DEFAULT]esp_image, [deploy]bootloader or the
# node's driver_info/bootloader): a FAT image holding EFI/BOOT/BOOTX64.EFI.
#
#   ramdisk-build/esp.sh OUTPUT.img
#
# What Ironic does with it (ironic/common/images.py, create_esp_image_for_uefi,
# 21.4 and 29.0 alike): copies it into the ISO as boot/grub/efiboot.img (the
# El Torito EFI boot image, `mkisofs -e`), puts the kernel at /vmlinuz, the
# ramdisk at /initrd, and writes its grub.cfg ([DEFAULT]grub_config_path,
# default EFI/BOOT/grub.cfg) into the ISO, NOT into this image. The menu entry
# uses `linuxefi`/`initrdefi` in 21.4 and `linux`/`initrd` in 29.0.
#
# So BOOTX64.EFI is a standalone GRUB (grub-efi-amd64-bin, every module it
# needs built in: no prefix directory to read modules from) whose built-in
# config finds the ISO and hands over to the grub.cfg Ironic wrote there.
set -euo pipefail
out=${1:?usage: esp.sh OUTPUT.img}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# 1. The device the firmware loaded us from ($cmdpath), if it holds Ironic's layout
#    (an El Torito boot usually shows up as the whole CD);
# 2. otherwise any device with Ironic's grub.cfg and its /initrd next to it. A
#    deployed disk's config-2 partition or ESP never has both.
cat > "$work/embedded.cfg" <<'CFG'
set ironic_cfg=/EFI/BOOT/grub.cfg
regexp --set=1:bootdev '^\((.*)\)' "$cmdpath"
if [ -n "$bootdev" -a -f "($bootdev)$ironic_cfg" -a -f "($bootdev)/initrd" ]; then
  set root=$bootdev
else
  search --no-floppy --file --set=root $ironic_cfg
fi
if [ -f "($root)$ironic_cfg" -a -f "($root)/initrd" ]; then
  set prefix=($root)/EFI/BOOT
  configfile ($root)$ironic_cfg
fi
echo "metal-agent ESP: no $ironic_cfg with /initrd found (cmdpath $cmdpath)"
sleep 10
CFG

# linuxefi: 21.4's template says linuxefi/initrdefi (Debian's GRUB has them).
modules="part_gpt part_msdos iso9660 fat ext2 linux linuxefi search search_fs_file search_label
  configfile normal echo test regexp sleep all_video efi_gop efi_uga gzio"
grub-mkstandalone -O x86_64-efi --modules="$modules" --install-modules="$modules" \
  --locales= --fonts= --themes= -o "$work/BOOTX64.EFI" "boot/grub/grub.cfg=$work/embedded.cfg"

# FAT image sized to the loader plus slack (mkfs.vfat -C takes KiB).
size_kib=$(( $(stat -c %s "$work/BOOTX64.EFI") / 1024 + 512 ))
rm -f "$out.tmp"
mkfs.vfat -C -n ESP "$out.tmp" "$size_kib" >/dev/null
mmd -i "$out.tmp" ::/EFI ::/EFI/BOOT
mcopy -i "$out.tmp" "$work/BOOTX64.EFI" ::/EFI/BOOT/BOOTX64.EFI
mv "$out.tmp" "$out"
echo "$out: $(stat -c %s "$out") bytes (EFI/BOOT/BOOTX64.EFI, standalone GRUB)"
