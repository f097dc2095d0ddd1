#!/usr/bin/env bash
# Stops the ironic-inspector that inspector-start.sh STATE_DIR started: its process group (setsid'd
# by inspector-start.sh), and any process still running with this STATE_DIR's inspector.conf (an
# oslo.service launcher that left the group).
set -euo pipefail
pidfile=${1:?usage: inspector-stop.sh STATE_DIR}/inspector.pid
[[ -f $pidfile ]] || exit 0
state=$(cd "$(dirname "$pidfile")" && pwd)
conf=$state/inspector.conf
pid=$(cat "$pidfile")
# Only a number above 1, never this script: "kill -- -1" (or an empty pid) would signal every process.
signalable() { [[ $1 =~ ^[0-9]+$ ]] && (($1 > 1)) && (($1 != $$)); }
by_conf() {
  local p parts
  for p in /proc/[0-9]*; do
    p=${p#/proc/}
    mapfile -d '' -t parts 2>/dev/null < "/proc/$p/cmdline" || continue
    [[ "${parts[*]}" == *"$conf"* ]] && signalable "$p" && echo "$p"
  done
  return 0
}
alive() { local p; for p in "$@"; do kill -0 "$p" 2>/dev/null && return 0; done; return 1; }
others=$(by_conf)
if signalable "$pid"; then
  kill -- "-$pid" 2>/dev/null || kill "$pid" 2>/dev/null || true
else
  echo "inspector-stop.sh: ignoring the pid '$pid' in $pidfile" >&2
  pid=
fi
for p in $others; do kill "$p" 2>/dev/null || true; done
for _ in $(seq 1 20); do alive $pid $others || break; sleep 0.5; done
for p in $pid $others; do kill -0 "$p" 2>/dev/null && { kill -KILL "$p" 2>/dev/null || true; }; done
if [[ -n $pid ]] && kill -0 -- "-$pid" 2>/dev/null; then kill -KILL -- "-$pid" 2>/dev/null || true; fi
rm -f "$pidfile"
