#!/usr/bin/env bash
# Builds a Debian sid root holding Ironic 39.0 (OpenStack 2026.2) and IPA 13.0. See install-root.sh.
#
#   lab/ironic/install-2026.sh ROOT
exec "$(dirname "$0")/install-root.sh" sid "$@"
