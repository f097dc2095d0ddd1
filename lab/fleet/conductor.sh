#!/usr/bin/env bash
# Starts ironic-conductor N of the lab that start.sh made in STATE_DIR (its config: ironic.conf, then
# conductor-N.conf with its host name), as its own process group, pid in STATE_DIR/conductor-N.pid,
# and waits until the API lists it alive and its JSON-RPC server takes connections (Ironic registers
# the conductor before that server listens: an API call routed to it in between gets ECONNREFUSED). start.sh starts every conductor this way; the fleet test
# calls it again to bring back a conductor it killed (same host name: Ironic clears that host's
# stale reservations at start).
#
#   conductor.sh STATE_DIR N
set -euo pipefail
state=$(cd "${1:?usage: conductor.sh STATE_DIR N}" && pwd)
n=${2:?N}
[[ $n =~ ^[0-9]+$ && -f $state/conductor-$n.conf ]] || { echo "no conductor $n in $state" >&2; exit 2; }
here=$(cd "$(dirname "$0")" && pwd)
source "$here/ironic-cmd.sh"
host=$(sed -n 's/^host = //p' "$state/conductor-$n.conf")
api_url=$(cat "$state/api-url")
rpc_port=$(sed -n '/^\[json_rpc\]/,/^\[/s/^port = //p' "$state/ironic.conf")
setsid bash -c "$(declare -f ironic_cmd); ironic_cmd ironic-conductor conductor '$state/ironic.conf' '$state/conductor-$n.conf'" \
  >>"$state/conductor-$n.log" 2>&1 </dev/null &
pid=$!
echo $pid > "$state/conductor-$n.pid"
# Alive in the API's eyes (GET /v1/conductors, API 1.49): registered, with a recent check-in.
for _ in $(seq 1 120); do
  if curl -fsS -m 2 -H 'X-OpenStack-Ironic-API-Version: 1.49' "$api_url/v1/conductors/$host" 2>/dev/null | grep -q '"alive": *true' &&
    curl -sS -m 2 -o /dev/null "http://$host:${rpc_port:-8089}/" 2>/dev/null; then
    echo "conductor $n ($host) pid $pid"; exit 0
  fi
  kill -0 "$pid" 2>/dev/null || break
  sleep 0.5
done
echo "conductor $n ($host) did not come up:" >&2; tail -20 "$state/conductor-$n.log" >&2; exit 1
