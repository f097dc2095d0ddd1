#!/usr/bin/env bash
# Stops the dnsmasq and busybox httpd that start.sh STATE_DIR started (their pids only).
set -euo pipefail
state=${1:?usage: stop.sh STATE_DIR}
for f in dnsmasq.pid httpd.pid; do
  [[ -f $state/$f ]] || continue
  pid=$(cat "$state/$f")
  # Only a number above 1: an empty pid or "kill -1" would signal every process.
  if [[ $pid =~ ^[0-9]+$ ]] && ((pid > 1)); then
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 20); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$state/$f"
done
