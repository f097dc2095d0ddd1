#!/usr/bin/env bash
# Installs (as root, on Debian 12) what building and booting the ramdisk needs:
# the build tools, qemu for the e2e tests, and every package that ships a tool
# named in src/system/tools.ts (those Debian has; the others are reported).
# Quick when all is present: dpkg is asked first, apt only for what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
# mount and fdisk ship losetup, mount, umount, sfdisk (tools.ts says util-linux).
build_pkgs=(mount fdisk busybox-static cpio kmod squashfs-tools zstd xz-utils binutils apt dpkg iproute2 qemu-system-x86 ovmf curl)
tool_pkgs=$(npx tsx ramdisk-build/list-tools.ts | awk '$2 != "busybox" {print $2}' | sort -u)

missing=()
for p in "${build_pkgs[@]}" $tool_pkgs; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
((${#missing[@]})) || exit 0

export DEBIAN_FRONTEND=noninteractive
apt-get update -qq -o DPkg::Lock::Timeout=600
installable=()
for p in "${missing[@]}"; do
  # A tool whose package Debian lacks is left out of the ramdisk, not fatal.
  if [[ $(apt-cache policy "$p" 2>/dev/null | awk '/Candidate:/ {print $2}') =~ ^(|\(none\))$ ]]; then
    echo "install-deps: Debian has no package '$p'; its tools stay out of the ramdisk" >&2
  else
    installable+=("$p")
  fi
done
((${#installable[@]})) || exit 0
echo "installing Debian packages: ${installable[*]}"
apt-get install -o DPkg::Lock::Timeout=600 -y -qq --no-install-recommends "${installable[@]}" >/dev/null
