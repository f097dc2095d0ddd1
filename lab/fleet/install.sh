#!/usr/bin/env bash
# Installs what the distributed Ironic lab (start.sh) needs on top of lab/ironic/install.sh (Ironic
# 21.4, its CLI, the project's plugin): MariaDB (Debian's mariadb-server; its own system instance is
# never started or used: start.sh runs a private one under the lab's STATE_DIR) and PyMySQL, the
# driver Ironic's `mysql+pymysql://` connection uses. Idempotent; needs root.
set -euo pipefail
need=(mariadb-server python3-pymysql)
missing=()
for p in "${need[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if ((${#missing[@]})); then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
echo "mariadb $(dpkg-query -W -f='${Version}' mariadb-server) installed"
"$(dirname "$0")/../ironic/install.sh"
