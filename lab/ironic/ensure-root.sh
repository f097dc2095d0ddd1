#!/usr/bin/env bash
# Makes sure a Debian root with a newer Ironic exists, and prints its path on stdout (the only thing
# printed there; progress goes to stderr). For `make test` and the integration tests.
#
#   lab/ironic/ensure-root.sh NAME [ROOT]
#
#   NAME 2025: Debian 13 (trixie), Ironic 29.0 = OpenStack 2025.1; ~5 minutes to build
#   NAME 2026: Debian sid,         Ironic 39.0 = OpenStack 2026.2
#
# ROOT defaults to $METAL_AGENT_IRONIC_<NAME>_ROOT, else /var/cache/metal-agent/ironic-<NAME>: a
# cache that outlives work trees and test runs on the same machine.
#   - Present and complete (a stamp written after a successful build): prints the path at once
#     (well under a second; no network).
#   - Missing: builds it with install-root.sh into ROOT.partial, then renames it to ROOT, so an
#     interrupted build never looks complete. Prints how long the build took.
#   - METAL_AGENT_IRONIC_<NAME>_REFRESH=1: also apt-get upgrades the packages inside the root.
#   - Either way the project's Ironic plugin (ironic-plugin/) is installed into the root by
#     install-plugin.sh, keyed by the plugin's source hash, not by the root's stamp: a changed
#     plugin is re-installed into a cached root (start.sh does the same before each start).
# Concurrent callers serialize on a lock next to ROOT. Needs root (debootstrap, chroot).
#
# A root may have host directories bind-mounted into it by start.sh (/work, /tmp, ...) while an
# Ironic runs from it: this script never deletes a tree that has anything mounted beneath it.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
name=${1:?usage: ensure-root.sh 2025|2026 [ROOT]}
case $name in
  2025) suite=trixie; what='Ironic 29.0 (Debian 13)' ;;
  2026) suite=sid; what='Ironic 39.0 (Debian sid)' ;;
  *) echo "ensure-root: unknown root '$name' (2025 or 2026)" >&2; exit 2 ;;
esac
given_var=METAL_AGENT_IRONIC_${name}_ROOT refresh_var=METAL_AGENT_IRONIC_${name}_REFRESH
root=${2:-${!given_var:-/var/cache/metal-agent/ironic-$name}}
refresh=${!refresh_var:-0}
[[ $root == /* ]] || root=$PWD/$root
root=${root%/}
[[ -n $root && $root != / ]] || { echo "ensure-$name: refusing root '$root'" >&2; exit 2; }
stamp=$root/.metal-agent-ironic-$name
say() { echo "ensure-$name: $*" >&2; }

# The fast path: no lock, no network.
if [[ -f $stamp && $refresh != 1 ]] && [[ -x $root/usr/bin/python3 ]]; then
  "$here/install-plugin.sh" "$root" >&2   # the project's Ironic plugin, current with ironic-plugin/ (its own source hash)
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
  say "building the $what root in $partial (debootstrap $suite + python3-ironic)"
  "$here/install-root.sh" "$suite" "$partial" >&2
  # The root's own Ironic must import, and its packaged IPA be there to read.
  chroot "$partial" /usr/bin/python3 -c 'import ironic, ironic.drivers.modules.agent_client' >&2
  version=$(chroot "$partial" dpkg-query -W -f='${Version}' python3-ironic)
  chroot "$partial" apt-get clean >&2 || true
  mv -T "$partial" "$root"
  printf 'ironic=%s\nbuilt=%s\nseconds=%s\n' "$version" "$(date -u +%FT%TZ)" "$((SECONDS - started))" > "$stamp"
  say "built $root (ironic $version) in $((SECONDS - started))s"
elif [[ $refresh == 1 ]]; then
  say "refreshing the packages in $root"
  chroot "$root" bash -c 'export DEBIAN_FRONTEND=noninteractive; apt-get update -qq && apt-get -y -qq upgrade >/dev/null && apt-get clean' >&2
  version=$(chroot "$root" dpkg-query -W -f='${Version}' python3-ironic)
  printf 'ironic=%s\nbuilt=%s\nrefreshed=%s\n' "$version" "$(sed -n 's/^built=//p' "$stamp")" "$(date -u +%FT%TZ)" > "$stamp"
fi
"$here/install-plugin.sh" "$root" >&2
echo "$root"
