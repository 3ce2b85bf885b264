#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# Stops a server started by start.sh: SIGTERM, then SIGKILL after 10 s. Exit 0 if it is gone.
# usage: stop.sh PID | stop.sh --pidfile FILE [--if-ours]
#   --if-ours: only when that pid is still this project's server.js (a stale pid file may name a
#   process that has since been reused by something else: leave that alone).
set -eu
if [ "${1:-}" = "--pidfile" ]; then
  [ -f "${2:-}" ] || { echo "stop.sh: no pid file ${2:-}: nothing to stop"; exit 0; }
  pid=$(cat "$2")
  ours=${3:-}
else
  pid=${1:?usage: stop.sh PID | stop.sh --pidfile FILE [--if-ours]}
  ours=
fi
case $pid in ''|*[!0-9]*) echo "stop.sh: bad pid '$pid'" >&2; exit 2 ;; esac
if [ "$ours" = "--if-ours" ]; then
  if [ ! -r "/proc/$pid/cmdline" ] || ! tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q 'tests/e2e/server/server.js'; then
    echo "stop.sh: pid $pid is not a painwatch e2e server (any more): left alone"
    exit 0
  fi
fi
kill -TERM "$pid" 2>/dev/null || { echo "stop.sh: process $pid already gone"; exit 0; }
i=0
while kill -0 "$pid" 2>/dev/null; do
  i=$((i + 1))
  if [ "$i" -gt 100 ]; then
    kill -KILL "$pid" 2>/dev/null || true
    echo "stop.sh: process $pid killed after 10 s" >&2
    break
  fi
  sleep 0.1
done
echo "stop.sh: stopped $pid"
