#!/usr/bin/env bash
# Stops what start.sh (and conductor.sh) started in STATE_DIR: the conductors and the API first, then
# MariaDB, each by its own pid file. Each was started by setsid, so it leads a process group of its
# own (the API's worker is in its launcher's group): the group is signalled, but only for a pid that
# is a number above 1 and still leads its group (a pid reused by an unrelated process is left alone).
#
#   stop.sh STATE_DIR         everything
#   stop.sh STATE_DIR api     ironic-api alone (the fleet bench's API outage; api.sh starts it again)
set -euo pipefail
state=${1:?usage: stop.sh STATE_DIR [api]}
only=${2:-}
[[ -d $state ]] || exit 0
leader() { [[ $1 =~ ^[0-9]+$ ]] && (($1 > 1)) && (($1 != $$)) && [[ $(ps -o pgid= -p "$1" 2>/dev/null | tr -d ' ') == "$1" ]]; }
stop_group() {   # stop_group PIDFILE SECONDS: TERM, then KILL after SECONDS
  local file=$1 secs=$2 pid
  [[ -f $file ]] || return 0
  pid=$(cat "$file")
  if leader "$pid"; then
    kill -TERM -- "-$pid" 2>/dev/null || true
    for _ in $(seq 1 $((secs * 4))); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
    if leader "$pid"; then kill -KILL -- "-$pid" 2>/dev/null || true; fi
  elif [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null; then
    echo "stop.sh: $file names pid '$pid', which does not lead its own group: left alone" >&2
  fi
  rm -f "$file"
}
if [[ $only == api ]]; then stop_group "$state/api.pid" 10; exit 0; fi
[[ -z $only ]] || { echo "stop.sh: unknown part '$only'" >&2; exit 2; }
for f in "$state"/conductor-*.pid; do [[ -e $f ]] && stop_group "$f" 10; done
stop_group "$state/api.pid" 10
stop_group "$state/mariadb.pid" 30   # a clean InnoDB shutdown takes a few seconds
exit 0
