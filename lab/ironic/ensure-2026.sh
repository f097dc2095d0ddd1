#!/usr/bin/env bash
# The Debian sid root with Ironic 39.0 (OpenStack 2026.2): prints its path, building it on first use.
# See ensure-root.sh (METAL_AGENT_IRONIC_2026_ROOT, METAL_AGENT_IRONIC_2026_REFRESH).
#
#   lab/ironic/ensure-2026.sh [ROOT]
exec "$(dirname "$0")/ensure-root.sh" 2026 "$@"
