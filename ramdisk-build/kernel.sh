#!/usr/bin/env bash
# Fetches Debian's current amd64 kernel package and unpacks it under OUT_DIR
# without installing anything on this machine:
#   ramdisk-build/kernel.sh OUT_DIR
# Leaves OUT_DIR/vmlinuz, OUT_DIR/root (the package's files: lib/modules/...)
# and OUT_DIR/version (the kernel release, e.g. 6.1.0-56-amd64).
set -euo pipefail
out=$1
mkdir -p "$out"
out=$(realpath "$out")

# linux-image-amd64 is a metapackage; its one dependency is the real image.
image_pkg=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
[[ -n $image_pkg ]] || { echo "kernel.sh: no linux-image dependency found (run apt-get update?)" >&2; exit 1; }
release=${image_pkg#linux-image-}

if [[ -f $out/version && $(cat "$out/version") == "$release" && -f $out/vmlinuz ]]; then
  exit 0 # already unpacked this exact kernel
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/metal-agent-kernel.XXXXXX")
trap 'rm -rf "$work"' EXIT
chmod 755 "$work" # apt downloads as _apt and must reach the folder
(cd "$work" && apt-get download -q "$image_pkg" >/dev/null)
rm -rf "$out/root"
dpkg-deb -x "$work"/"$image_pkg"_*.deb "$out/root"
cp "$out/root/boot/vmlinuz-$release" "$out/vmlinuz"
echo "$release" >"$out/version"
echo "kernel: $release"
