#!/usr/bin/env bash
# Builds a Debian 13 root holding Ironic 29.0 (OpenStack 2025.1) and IPA 10.2. See install-root.sh.
#
#   lab/ironic/install-2025.sh ROOT
exec "$(dirname "$0")/install-root.sh" trixie "$@"
