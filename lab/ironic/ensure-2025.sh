#!/usr/bin/env bash
# Makes sure a Debian 13 root with Ironic 29.0 (OpenStack 2025.1) exists, and prints its path on
# stdout (the only thing printed there; progress goes to stderr). For `make test` and the
# integration tests (test/integration/ironic-2025*.test.ts read METAL_AGENT_IRONIC_2025_ROOT, and
# otherwise run this script).
#
#   lab/ironic/ensure-2025.sh [ROOT]
#
# ROOT defaults to $METAL_AGENT_IRONIC_2025_ROOT, else /var/cache/metal-agent/ironic-2025: a cache
# that outlives work trees and test runs on the same machine.
#   - Present and complete (a stamp written after a successful build): prints the path at once
#     (well under a second; no network).
#   - Missing: builds it with install-2025.sh into ROOT.partial, then renames it to ROOT, so an
#     interrupted build never looks complete. About 5 minutes and ~1.5 GB on the CI machine.
#   - METAL_AGENT_IRONIC_2025_REFRESH=1: also apt-get upgrades the packages inside the root.
# Concurrent callers serialize on a lock next to ROOT. Needs root (debootstrap, chroot).
#
# A root may have host directories bind-mounted into it by start.sh (/work, /tmp, ...) while an
# Ironic runs from it: this script never deletes a tree that has anything mounted beneath it.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=${1:-${METAL_AGENT_IRONIC_2025_ROOT:-/var/cache/metal-agent/ironic-2025}}
[[ $root == /* ]] || root=$PWD/$root
root=${root%/}
[[ -n $root && $root != / ]] || { echo "ensure-2025: refusing root '$root'" >&2; exit 2; }
stamp=$root/.metal-agent-ironic-2025
say() { echo "ensure-2025: $*" >&2; }

# The fast path: no lock, no network.
if [[ -f $stamp && ${METAL_AGENT_IRONIC_2025_REFRESH:-0} != 1 ]] && [[ -x $root/usr/bin/python3 ]]; then
  echo "$root"; exit 0
fi

mkdir -p "$(dirname "$root")"
exec 9>"$root.lock"
flock 9
has_mounts() { findmnt -rn -o TARGET | awk -v p="$1/" 'index($0 "/", p) == 1 { found = 1 } END { exit !found }'; }

if [[ ! -f $stamp ]]; then
  partial=$root.partial
  [[ -d $root ]] && { has_mounts "$root" && { say "$root is incomplete and has mounts beneath it; not touching it" ; exit 1; }; say "removing incomplete $root"; rm -rf --one-file-system "$root"; }
  # A partial tree from an interrupted build is resumed: debootstrap and apt-get are both restartable,
  # except a debootstrap that died before finishing, which is redone from scratch.
  if [[ -d $partial && ! -x $partial/usr/bin/apt-get ]] || [[ -d $partial && -f $partial/debootstrap/debootstrap.log ]]; then
    has_mounts "$partial" && { say "$partial has mounts beneath it; not touching it"; exit 1; }
    say "removing an interrupted debootstrap in $partial"; rm -rf --one-file-system "$partial"
  fi
  started=$SECONDS
  say "building the Ironic 29.0 root in $partial (debootstrap trixie + python3-ironic; ~5 minutes)"
  "$here/install-2025.sh" "$partial" >&2
  # The root's own Ironic must import, and its packaged IPA be there to read.
  chroot "$partial" /usr/bin/python3 -c 'import ironic, ironic.drivers.modules.agent_client' >&2
  version=$(chroot "$partial" dpkg-query -W -f='${Version}' python3-ironic)
  chroot "$partial" apt-get clean >&2 || true
  mv -T "$partial" "$root"
  printf 'ironic=%s\nbuilt=%s\nseconds=%s\n' "$version" "$(date -u +%FT%TZ)" "$((SECONDS - started))" > "$stamp"
  say "built $root (ironic $version) in $((SECONDS - started))s"
elif [[ ${METAL_AGENT_IRONIC_2025_REFRESH:-0} == 1 ]]; then
  say "refreshing the packages in $root"
  chroot "$root" bash -c 'export DEBIAN_FRONTEND=noninteractive; apt-get update -qq && apt-get -y -qq upgrade >/dev/null && apt-get clean' >&2
  version=$(chroot "$root" dpkg-query -W -f='${Version}' python3-ironic)
  printf 'ironic=%s\nbuilt=%s\nrefreshed=%s\n' "$version" "$(sed -n 's/^built=//p' "$stamp")" "$(date -u +%FT%TZ)" > "$stamp"
fi
echo "$root"
