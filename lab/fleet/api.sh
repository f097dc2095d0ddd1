#!/usr/bin/env bash
# Starts ironic-api of the lab that start.sh made in STATE_DIR (config STATE_DIR/ironic.conf), as its
# own process group, pid in STATE_DIR/api.pid, and waits until it answers. start.sh starts the API this
# way; the fleet bench calls it again to bring the API back after stopping it (`stop.sh STATE_DIR api`)
# for its outage fault. The request log is appended to STATE_DIR/api.log.
#
#   api.sh STATE_DIR API_URL
set -euo pipefail
state=$(cd "${1:?usage: api.sh STATE_DIR API_URL}" && pwd)
api_url=${2:?API_URL}
here=$(cd "$(dirname "$0")" && pwd)
source "$here/ironic-cmd.sh"
setsid bash -c "$(declare -f ironic_cmd); ironic_cmd ironic-api api '$state/ironic.conf'" >>"$state/api.log" 2>&1 </dev/null &
pid=$!
echo $pid > "$state/api.pid"
for _ in $(seq 1 60); do
  curl -fsS -m 2 "$api_url/" >/dev/null 2>&1 && { echo "ironic-api at $api_url pid $pid"; exit 0; }
  kill -0 "$pid" 2>/dev/null || break
  sleep 0.5
done
echo "ironic-api did not come up:" >&2; tail -20 "$state/api.log" >&2; exit 1
