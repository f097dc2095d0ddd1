#!/usr/bin/env bash
# Builds a Debian root holding a newer Ironic (and the IPA Debian packages beside it, to read) for
# start.sh's IRONIC_CHROOT, so the same tests run against that release as well as the host's 21.4.
#
#   lab/ironic/install-root.sh SUITE ROOT     idempotent; needs root and debootstrap
#
#   SUITE trixie: Ironic 29.0 (OpenStack 2025.1), IPA 10.2; about 5 minutes, ~1.5 GB
#   SUITE sid:    Ironic 39.0 (OpenStack 2026.2), IPA 13.0
# sid's Release file may be past its Valid-Until date on the mirror (nobody re-signs a frozen
# snapshot), so apt inside the root is told not to check it; the signature is still checked.
set -euo pipefail
suite=${1:?usage: install-root.sh SUITE ROOT}
root=${2:?usage: install-root.sh SUITE ROOT}
mirror=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
mirror=${mirror:-$(awk '/^deb / {print $2; exit}' /etc/apt/sources.list 2>/dev/null)}
command -v debootstrap >/dev/null || { apt-get update -qq; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null; }
[[ -x $root/usr/bin/apt-get ]] || debootstrap --variant=minbase "$suite" "$root" "$mirror" >/dev/null
# Every apt-get in the root, also a later refresh (ensure-root.sh), reads this.
echo 'Acquire::Check-Valid-Until "false";' > "$root/etc/apt/apt.conf.d/99metal-agent-valid-until"
# sushy and ipmitool: start.sh enables the redfish and ipmi hardware types, which refuse to load without them.
if ! chroot "$root" dpkg -s python3-ironic python3-sushy ipmitool >/dev/null 2>&1; then
  chroot "$root" bash -c 'export DEBIAN_FRONTEND=noninteractive; apt-get update -qq &&
    apt-get install -y -qq --no-install-recommends python3-ironic python3-sushy ipmitool >/dev/null'
fi
# IPA is there to be read (what the agent must match), never run: its files are unpacked without
# its dependencies (sid's pulls in libguestfs and cryptsetup, whose scripts fail in a chroot).
ipa=$root/usr/lib/python3/dist-packages/ironic_python_agent
if [[ ! -d $ipa ]]; then
  chroot "$root" bash -c 'cd /tmp && apt-get download -qq ironic-python-agent && dpkg-deb -x ironic-python-agent_*.deb / &&
    dpkg-deb -f ironic-python-agent_*.deb Version > /usr/lib/python3/dist-packages/ironic_python_agent/DEBIAN_VERSION &&
    rm -f ironic-python-agent_*.deb'
fi
chroot "$root" dpkg-query -W -f='ironic ${Version} installed in '"$root"'\n' python3-ironic
echo "ironic-python-agent $(cat "$ipa/DEBIAN_VERSION" 2>/dev/null || chroot "$root" dpkg-query -W -f='${Version}' ironic-python-agent) unpacked in $root"
