#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# Starts the reference FHIR server in the background on a free loopback port.
# usage: start.sh PORTFILE LOGFILE [MAX_LIFETIME_SECONDS] [extra server.js args...]
# Prints the server's pid once PORTFILE holds its port; stop it with stop.sh PID (or kill PID).
set -eu
[ $# -ge 2 ] || { echo "usage: start.sh PORTFILE LOGFILE [MAX_LIFETIME_SECONDS] [server args]" >&2; exit 2; }
portfile=$1 logfile=$2
lifetime=${3:-3600}
[ $# -ge 3 ] && shift 3 || shift 2
here=$(CDPATH= cd "$(dirname "$0")" && pwd)
node=${PW_NODE:-node}
[ -d "$here/node_modules/@medplum/fhir-router" ] || {
  echo "start.sh: $here/node_modules is missing: run 'npm ci --no-audit --no-fund' in $here" >&2; exit 1; }
rm -f "$portfile"
mkdir -p "$(dirname "$portfile")" "$(dirname "$logfile")"
# setsid + redirected stdio: the server must not hold the caller's pipes (ctest waits on them).
setsid "$node" "$here/server.js" --port 0 --port-file "$portfile" --max-lifetime "$lifetime" "$@" \
  </dev/null >"$logfile" 2>&1 &
pid=$!
# Medplum loads the R4 definitions in 2-3 s; allow a slow machine 90 s.
i=0
while [ ! -s "$portfile" ]; do
  if ! kill -0 "$pid" 2>/dev/null; then
    echo "start.sh: server exited before it was ready; log $logfile:" >&2
    tail -n 20 "$logfile" >&2
    exit 1
  fi
  i=$((i + 1))
  if [ "$i" -gt 900 ]; then
    echo "start.sh: server not ready after 90 s; log $logfile" >&2
    kill "$pid" 2>/dev/null || true
    exit 1
  fi
  sleep 0.1
done
echo "$pid"
