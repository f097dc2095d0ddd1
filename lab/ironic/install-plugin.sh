#!/usr/bin/env bash
# Installs ironic-plugin/ (the `direct-kexec` deploy interface and the *-kexec hardware types) into
# the Python that runs a conductor: the host's /usr/bin/python3 (Ironic 21.4), or the one inside a
# root given as ROOT (Ironic 29.0 from ensure-2025.sh). Offline and idempotent: the files and a
# dist-info with the entry points go to that Python's /usr/local/lib/pythonX.Y/dist-packages (what
# `pip install` as root would do; Debian's PEP 668 guard and the root without pip rule pip out);
# a copy of the same source is left alone, a changed source replaces it. start.sh runs this before
# every start, so a conductor never runs a stale plugin; install.sh runs it for the host.
#
#   lab/ironic/install-plugin.sh [ROOT]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
plugin=$(cd "$here/../../ironic-plugin" && pwd)
root=${1:-}
[[ -z $root || $root == / ]] && root=
py() { ${root:+chroot "$root"} /usr/bin/python3 "$@"; }
site=$(py -c 'import sys; print("/usr/local/lib/python%d.%d/dist-packages" % sys.version_info[:2])')
py -c "import sys; sys.exit('$site' not in sys.path)" || { echo "install-plugin: $site is not on ${root:-the host}'s sys.path" >&2; exit 1; }
# Concurrent starts (parallel test files) share the same site-packages.
exec 9>/run/lock/metal-agent-ironic-plugin.lock
flock 9
out=$(/usr/bin/python3 "$plugin/install_files.py" "$root$site")
echo "$out"
if [[ $out != *unchanged* ]]; then
  # Loadable through the entry points Ironic uses (a separate process: no eventlet needed here).
  py -c '
from importlib.metadata import entry_points
eps = entry_points()
deploy = {e.name: e for e in eps.select(group="ironic.hardware.interfaces.deploy")}
types = {e.name: e for e in eps.select(group="ironic.hardware.types")}
deploy["direct-kexec"].load()
for t in ("manual-management-kexec", "ipmi-kexec", "redfish-kexec"):
    types[t].load()
print("install-plugin: direct-kexec and the *-kexec hardware types load")'
fi
