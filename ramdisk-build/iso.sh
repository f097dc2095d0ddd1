#!/usr/bin/env bash
# The metal-agent deploy ISO: one hybrid image that boots under BIOS and UEFI,
# from a (virtual) CD-ROM and from a USB stick it was written to with dd.
# Operators give it to Ironic as driver_info/deploy_iso, or boot it by hand.
#
#   ramdisk-build/iso.sh KERNEL INITRD ESP_IMAGE OUTPUT.iso
#
# ESP_IMAGE is the UEFI boot loader image ramdisk-build/esp.sh builds for
# Ironic's [deploy]bootloader: the ISO uses the very same loader, so a UEFI
# boot of this ISO and of an ISO Ironic builds itself go the same way.
#
# Environment knobs (all optional):
#   ISO_API_URL=mdns        ipa-api-url on the kernel command line (default: find
#                           Ironic over mDNS, no operator input)
#   ISO_APPEND='k=v ...'    more kernel parameters (ipa-insecure=1, ipa-debug=1, ...)
#   ISO_MAX_BYTES=60000000  the build fails above this size (BMC virtual media limits)
#
# Layout: the paths Ironic's own ISOs use (ironic/common/images.py, 21.4 and 29.0),
# so that anything that opens or rebuilds a deploy ISO finds what it looks for:
#   /vmlinuz, /initrd              kernel and ramdisk
#   /isolinux/isolinux.cfg         BIOS menu (isolinux.bin, ldlinux.c32 beside it)
#   /EFI/BOOT/grub.cfg             UEFI menu: the only grub.cfg ([DEFAULT]grub_config_path)
#   /boot/grub/efiboot.img         El Torito EFI image = the ESP (the name Ironic's
#                                  _get_deploy_iso_files looks for)
# Volume label VMEDIA_BOOT_ISO, as Ironic labels its own: with boot_method=vmedia
# the agent reads openstack/latest/network_data.json from a device with that
# label, so an operator can add a static network config to this ISO.
# What Ironic does with a deploy_iso: docs/operators.md.
set -euo pipefail
kernel=${1:?usage: iso.sh KERNEL INITRD ESP_IMAGE OUTPUT.iso}
initrd=${2:?INITRD}
esp=${3:?ESP_IMAGE}
out=${4:?OUTPUT.iso}
max_bytes=${ISO_MAX_BYTES:-60000000}
isolinux_dir=/usr/lib/ISOLINUX
ldlinux=/usr/lib/syslinux/modules/bios/ldlinux.c32
for f in "$kernel" "$initrd" "$esp" "$isolinux_dir/isolinux.bin" "$isolinux_dir/isohdpfx.bin" "$ldlinux"; do
  [[ -f $f ]] || { echo "iso.sh: $f is missing (Debian packages isolinux, syslinux-common; make kernel ramdisk)" >&2; exit 1; }
done

# boot_method=vmedia: read Ironic's parameters.txt (config_via_removable, e.g. the
# agent token) and network_data.json from virtual media. console=ttyS0 last: it
# becomes /dev/console, the one a BMC's serial-over-LAN shows.
cmdline="ipa-api-url=${ISO_API_URL:-mdns} boot_method=vmedia console=tty0 console=ttyS0,115200n8"
[[ -n ${ISO_APPEND:-} ]] && cmdline="$cmdline $ISO_APPEND"
if [[ $cmdline == *[\"\'\\\;\$\`]* ]]; then
  echo "iso.sh: quotes, backslashes, ';', '\$' and backquotes are not allowed in the kernel command line: $cmdline" >&2
  exit 1
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
tree=$work/tree
mkdir -p "$tree/isolinux" "$tree/EFI/BOOT" "$tree/boot/grub"

# BIOS: isolinux. "serial" must come first; a 3 s prompt lets an operator on the
# console type `metal-agent ipa-api-url=...` to add parameters for one boot.
cp "$isolinux_dir/isolinux.bin" "$ldlinux" "$tree/isolinux/"
cat > "$tree/isolinux/isolinux.cfg" <<EOF
serial 0 115200
default metal-agent
prompt 1
timeout 30
label metal-agent
  kernel /vmlinuz
  append initrd=/initrd $cmdline
EOF

# UEFI: the ESP's GRUB finds this file (and /initrd next to it) and reads it.
# Its menu goes to the firmware's console, which UEFI firmware also sends to
# the serial port (serial-over-LAN on a BMC).
cat > "$tree/EFI/BOOT/grub.cfg" <<EOF
set default=0
set timeout=3
menuentry "metal-agent" {
  linux /vmlinuz $cmdline
  initrd /initrd
}
EOF
cp "$esp" "$tree/boot/grub/efiboot.img"

# isohdpfx.bin + -isohybrid-gpt-basdat: an MBR that chains to isolinux (BIOS
# from a stick), and an MBR/GPT partition entry over efiboot.img that UEFI
# firmware takes for an ESP (UEFI from a stick). The kernel and ramdisk are
# grafted in place rather than copied into the tree.
rm -f "$out.tmp"
xorriso -report_about WARNING -as mkisofs -o "$out.tmp" -V VMEDIA_BOOT_ISO -r -J -joliet-long \
  -isohybrid-mbr "$isolinux_dir/isohdpfx.bin" \
  -c isolinux/boot.cat -b isolinux/isolinux.bin -no-emul-boot -boot-load-size 4 -boot-info-table \
  -eltorito-alt-boot -e boot/grub/efiboot.img -no-emul-boot -isohybrid-gpt-basdat \
  -graft-points "$tree" "/vmlinuz=$kernel" "/initrd=$initrd" 2>"$work/xorriso.log" ||
  { cat "$work/xorriso.log" >&2; rm -f "$out.tmp"; exit 1; }

size=$(stat -c %s "$out.tmp")
mb=$(awk -v b="$size" 'BEGIN { printf "%.1f", b / 1e6 }')
if (( size > max_bytes )); then
  rm -f "$out.tmp"
  echo "iso.sh: *** $out would be $size bytes ($mb MB), above the limit of $max_bytes bytes:" >&2
  echo "iso.sh: *** some BMCs refuse virtual media that large. Shrink the ramdisk or raise ISO_MAX_BYTES." >&2
  exit 1
fi
mv "$out.tmp" "$out"
echo "$out: $size bytes ($mb MB; limit $max_bytes bytes), kernel command line: $cmdline"
