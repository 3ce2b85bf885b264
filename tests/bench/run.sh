#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The painwatch benchmark in one command: a Release build (no sanitizers) in build/release, then
# tests/bench/bench.py, which prints the B1-B7 table. Arguments go to bench.py (see --help), e.g.
#   tests/bench/run.sh --patients 1000,10000,100000
set -euo pipefail
src=$(cd "$(dirname "$0")/../.." && pwd)
build=${PW_BENCH_BUILD:-$src/build/release}
for tool in nginx wrk valgrind; do
  command -v "$tool" >/dev/null || [ -x "/usr/sbin/$tool" ] ||
    echo "bench: $tool not found (apt-get install nginx-light wrk valgrind); figures needing it are n/a" >&2
done
cmake -S "$src" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DPW_SANITIZE= >/dev/null
cmake --build "$build" -j2 --target painwatchd painwatch pw_bench_base
exec python3 "$src/tests/bench/bench.py" --build "$build" "$@"
