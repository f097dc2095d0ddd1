#!/usr/bin/env bash
# Assembles the agent's initramfs from this machine's Debian packages:
#   ramdisk-build/ramdisk.sh AGENT_BINARY KERNEL_DIR OUTPUT [xz|zstd|zstd-fast]
# KERNEL_DIR is what kernel.sh made. The tools' packages must be installed
# (install-deps.sh does it); every file is copied from the package that owns it,
# with the shared libraries ldd names, and nothing else.
#
# Memory is the constraint (a 512 MiB node must deploy): the kernel unpacks an
# initramfs into tmpfs, which keeps every byte in RAM for good. So /usr (the
# agent, tools, libraries, modules: ~180 MB) goes into a compressed squashfs
# that init loop-mounts; its pages are then read on demand and can be evicted.
# Only the init, a static busybox and the two modules to mount /usr are plain.
set -euo pipefail
agent=$(realpath "$1") kdir=$(realpath "$2") out=$3 compress=${4:-xz}
here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
release=$(cat "$kdir/version")

work=$(mktemp -d "${TMPDIR:-/tmp}/metal-agent-rootfs.XXXXXX")
trap 'rm -rf "$work"' EXIT
root=$work/root   # the whole tree, as the running system sees it
early=$work/early # what the kernel unpacks: init, busybox, /usr.sqfs

# Debian 12 layout (merged /usr), so paths from ldd and dpkg work unchanged.
mkdir -p "$root"/usr/{bin,sbin,lib/x86_64-linux-gnu,lib64} "$root"/{dev,proc,sys,run,tmp,mnt,root,etc,var/log}
ln -s usr/bin "$root/bin"
ln -s usr/sbin "$root/sbin"
ln -s usr/lib "$root/lib"
ln -s usr/lib64 "$root/lib64"
chmod 1777 "$root/tmp"

declare -A copied=()

# Copies one path, and when it is a symlink, the chain it points along.
add_file() {
  local src=$1
  [[ -n ${copied[$src]:-} ]] && return 0
  copied[$src]=1
  local dst=$root$src
  mkdir -p "$(dirname "$dst")"
  if [[ -L $src ]]; then
    cp -P "$src" "$dst"
    local target
    target=$(readlink "$src")
    [[ $target == /* ]] || target=$(dirname "$src")/$target
    add_file "$(realpath -s "$target")"
  else
    cp "$src" "$dst"
  fi
}

# Every shared library the dynamic loader would map for a program, including
# the loader itself (the line without "=>"). Plain awk regexes: mawk has no \s.
add_libs() {
  local lib
  for lib in $(ldd "$1" 2>/dev/null | awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// {print $1}'); do
    add_file "$lib"
  done
}

add_program() {
  add_file "$1"
  add_libs "$1"
}

# --- the agent -------------------------------------------------------------
install -D -m 0755 "$agent" "$root/usr/bin/metal-agent"
add_libs "$agent"

# --- the external tools of src/system/tools.ts -----------------------------
# RAMDISK_SKIP_TOOLS leaves tools out on purpose: fio's ceph/gluster/ICU
# libraries add ~64 MB (16 MB compressed) and stress-ng's GL/IPsec ones ~25 MB
# to every boot of every node, for burn-in steps few deployments run.
skip=" ${RAMDISK_SKIP_TOOLS-fio stress-ng} "
left_out=()
while read -r tool pkg; do
  if [[ $pkg == busybox ]]; then continue; fi # busybox applets, linked below
  if [[ $skip == *" $tool "* ]]; then left_out+=("$tool(skipped)"); continue; fi
  # The tool's path as its own package ships it (not whatever PATH finds);
  # when tools.ts names another package, the file still comes from the Debian
  # package dpkg says owns it.
  path=$(dpkg -L "$pkg" 2>/dev/null | grep -E "^/(usr/)?s?bin/$tool\$" | head -n1 || true)
  if [[ -z $path ]]; then
    owned=$(dpkg -S "*bin/$tool" 2>/dev/null | grep -E ": /(usr/)?s?bin/$tool\$" | head -n1 || true)
    if [[ -n $owned ]]; then
      echo "ramdisk: $tool comes from Debian package ${owned%%:*}, not $pkg as tools.ts says" >&2
      path=${owned#*: }
    fi
  fi
  if [[ -z $path ]]; then left_out+=("$tool(no package $pkg)"); continue; fi
  add_program "$(readlink -f "$path")"
  add_file "$path"
done < <(cd "$repo" && npx tsx ramdisk-build/list-tools.ts)
((${#left_out[@]})) && echo "ramdisk: tools left out: ${left_out[*]}" >&2

# udevd is udevadm under another name; with Debian's storage rules it gives
# lsblk its serials/WWNs and /dev/disk/by-* for root device hints.
if [[ -x /usr/bin/udevadm ]]; then
  add_file /usr/lib/systemd/systemd-udevd
  # 60-cdrom_id: a virtual CD-ROM (the BMC's boot ISO) gets its media and filesystem label
  # probed; without it lsblk shows sr0 with no LABEL and virtual media is never found.
  for rule in 50-udev-default 60-block 60-cdrom_id 60-persistent-storage 80-drivers; do
    add_file "/usr/lib/udev/rules.d/$rule.rules"
  done
  for helper in ata_id scsi_id cdrom_id; do add_program "/usr/lib/udev/$helper"; done
fi

# mtools (the ESP and config drive without mounting) converts FAT names with
# iconv, codepage 850 by default; glibc loads that converter at run time, so
# ldd does not list it, and without it every mtools call fails.
gconv=/usr/lib/x86_64-linux-gnu/gconv
for f in gconv-modules gconv-modules.d/gconv-modules-extra.conf IBM850.so; do
  [[ -e $gconv/$f ]] && add_file "$gconv/$f"
done

# --- busybox: the shell and everything else the init uses ------------------
add_file /usr/bin/busybox
# With /bin and /sbin merged into /usr, an applet must not shadow a real tool
# of the same name in the other directory (busybox's /sbin/ip before
# iproute2's /bin/ip on PATH=/usr/sbin:/usr/bin broke `ip -j`).
for applet in $(busybox --list-full); do
  name=${applet##*/}
  link=$root/usr/${applet#usr/}
  [[ -e $root/usr/bin/$name || -e $root/usr/sbin/$name || -L $link ]] || ln -s /usr/bin/busybox "$link"
done

# --- kernel modules ----------------------------------------------------------
moddir=lib/modules/$release
mkdir -p "$root/usr/$moddir"
for f in modules.builtin modules.builtin.modinfo modules.order; do
  cp "$kdir/root/$moddir/$f" "$root/usr/$moddir/"
done
[[ -f $kdir/root/$moddir/modules.dep ]] || depmod -b "$kdir/root" "$release"
for ko in $(grep -v '^#' "$here/modules.txt" | xargs -n1 |
  xargs -I{} modprobe -d "$kdir/root" -S "$release" --show-depends {} | awk '$1 == "insmod" {print $2}' | sort -u); do
  rel=${ko#"$kdir/root/"}
  install -D -m 0644 "$ko" "$root/usr/$rel"
done
depmod -b "$root" "$release"

# --- the init and its configuration ----------------------------------------
install -m 0755 "$here/init" "$root/init"
install -m 0644 "$here/agent.env" "$root/etc/metal-agent.env"
install -D -m 0755 "$here/udhcpc.script" "$root/usr/share/udhcpc/default.script"
printf 'root:x:0:0:root:/root:/bin/sh\n' >"$root/etc/passwd"
printf 'root:x:0:\ndisk:x:6:\n' >"$root/etc/group"
echo metal-agent >"$root/etc/hostname"
: >"$root/etc/resolv.conf"
ln -s /proc/mounts "$root/etc/mtab"
echo "metal-agent ramdisk, kernel $release, built $(date -u +%Y-%m-%dT%H:%M:%SZ)" >"$root/etc/metal-agent-release"
# The agent counts itself in a ramdisk (every disk writable, power actions real)
# only with this marker AND an in-memory root (src/system/safety.ts): a host
# that merely has a tmpfs root, such as a diskless one, has no such file.
echo "metal-agent ramdisk: disks and power belong to the agent" >"$root/etc/metal-agent-ramdisk"

# --- pack ---------------------------------------------------------------------
mkdir -p "$(dirname "$out")"
case $compress in
  # The kernel's xz decoder only knows CRC32 checks.
  xz) compressor=(xz --check=crc32 -9 -T0 -c) sqfs=(-comp xz -Xbcj x86 -b 1M) ;;
  zstd) compressor=(zstd -19 -T0 -q -c) sqfs=(-comp zstd -Xcompression-level 19 -b 1M) ;;
  zstd-fast) compressor=(zstd -3 -T0 -q -c) sqfs=(-comp zstd -Xcompression-level 3) ;; # quick dev rebuilds
  *) echo "ramdisk: unknown compressor $compress" >&2; exit 1 ;;
esac

# Everything but /usr stays plain: small, and it must be writable (/etc, /var).
mkdir -p "$early/early" "$early/usr"
(cd "$root" && find . -mindepth 1 -maxdepth 1 ! -name usr -exec cp -a {} "$early/" \;)
cp /usr/bin/busybox "$early/early/busybox"
for m in loop squashfs; do
  modprobe -d "$root" -S "$release" --show-depends "$m" | awk '$1 == "insmod" {print $2}' |
    while read -r ko; do cp "$ko" "$early/early/"; echo "${ko##*/}" >>"$early/early/modules"; done
done
mksquashfs "$root/usr" "$early/usr.sqfs" "${sqfs[@]}" -all-root -noappend -no-progress -quiet -no-xattrs >/dev/null

(cd "$early" && find . -mindepth 1 | LC_ALL=C sort |
  cpio --quiet -o -H newc --owner=0:0 --reproducible | "${compressor[@]}") >"$out.tmp"
mv "$out.tmp" "$out"
# What is inside and how big, for reviewing growth (bench/ramdisk.ts reads it).
(cd "$root" && find . -type f -printf '%s %p\n' | sort -rn) >"$out.files"
echo "ramdisk: $out $(du -b "$out" | cut -f1) bytes ($compress); in RAM after unpacking $(du -sb "$early" | cut -f1) bytes;" \
  "/usr squashfs $(du -b "$early/usr.sqfs" | cut -f1) bytes holding $(du -sb "$root/usr" | cut -f1) bytes"
