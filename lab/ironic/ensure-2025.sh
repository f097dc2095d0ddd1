#!/usr/bin/env bash
# The Debian 13 root with Ironic 29.0 (OpenStack 2025.1): prints its path, building it on first use.
# See ensure-root.sh (METAL_AGENT_IRONIC_2025_ROOT, METAL_AGENT_IRONIC_2025_REFRESH).
#
#   lab/ironic/ensure-2025.sh [ROOT]
exec "$(dirname "$0")/ensure-root.sh" 2025 "$@"
