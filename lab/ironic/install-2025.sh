#!/usr/bin/env bash
# Builds a Debian 13 root holding Ironic 29.0 (OpenStack 2025.1) and IPA 10.2, for start.sh's
# IRONIC_CHROOT: the same tests then run against the newest Ironic Debian ships as well as 21.4.
#
#   lab/ironic/install-2025.sh ROOT        idempotent; needs root and debootstrap; about 5 minutes, ~1.5 GB
set -euo pipefail
root=${1:?usage: install-2025.sh ROOT}
mirror=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
mirror=${mirror:-$(awk '/^deb / {print $2; exit}' /etc/apt/sources.list 2>/dev/null)}
command -v debootstrap >/dev/null || { apt-get update -qq; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null; }
[[ -x $root/usr/bin/apt-get ]] || debootstrap --variant=minbase trixie "$root" "$mirror" >/dev/null
if ! chroot "$root" dpkg -s python3-ironic >/dev/null 2>&1; then
  chroot "$root" bash -c 'export DEBIAN_FRONTEND=noninteractive; apt-get update -qq &&
    apt-get install -y -qq --no-install-recommends python3-ironic ironic-python-agent >/dev/null'
fi
chroot "$root" dpkg-query -W -f='ironic ${Version} installed in '"$root"'\n' python3-ironic
