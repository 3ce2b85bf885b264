#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# The standing suites of issue 18 from a shell, against their own reference server:
#
#   tests/hostile/run.sh matrix [--long] [--only REGEX]   hostile-server matrix
#   tests/hostile/run.sh crash [--kills N] [--seed S]     SIGKILL loop (N per server variant; 15)
#   tests/hostile/run.sh enospc                           full state/audit file system (root)
#   tests/hostile/run.sh soak [--minutes M] [--out CSV]   RSS/fd soak (60 minutes)
#
# Needs a built tree (BUILD, default build/test: painwatchd, painwatch) and the e2e server's
# node_modules (tests/e2e/server/setup.sh). Starts the server on a free loopback port, runs the
# suite, stops the server. Exit status: the suite's.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
build=${BUILD:-$root/build/test}
suite=${1:-}
[ $# -gt 0 ] && shift
case $suite in
  matrix) file=hostile.test.js ;;
  crash) file=crash-loop.test.js ;;
  enospc) file=enospc.test.js ;;
  soak) file=soak.js ;;
  *) sed -n 3,12p "$0"; exit 2 ;;
esac
while [ $# -gt 0 ]; do
  case $1 in
    --long) export PW_HOSTILE_LONG=1 ;;
    --only) export PW_HOSTILE_ONLY=$2; shift ;;
    --kills) export PW_CRASH_KILLS=$2; shift ;;
    --seed) export PW_CRASH_SEED=$2; shift ;;
    --minutes) export PW_SOAK_MINUTES=$2; shift ;;
    --out) export PW_SOAK_OUT=$2; shift ;;
    *) echo "run.sh: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
node=${PW_NODE:-node}
sh "$root/tests/e2e/server/setup.sh" "$node" >/dev/null
run=$(mktemp -d "${TMPDIR:-/tmp}/pw-suite-XXXXXX")
pid=$(sh "$root/tests/e2e/server/start.sh" "$run/port" "$run/server.log" 14400)
trap 'sh "$root/tests/e2e/server/stop.sh" "$pid" >/dev/null 2>&1 || true; rm -rf "$run"' EXIT INT TERM
export PW_E2E_DIR=$root/tests/e2e PW_E2E_PORT_FILE=$run/port PW_SOURCE_DIR=$root PW_BINARY_DIR=$build
export PAINWATCHD=$build/painwatchd PAINWATCH=$build/painwatch
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
case $file in
  *.test.js) "$node" --test --test-reporter=spec "$here/$file" ;;
  *) "$node" "$here/$file" ;;
esac
