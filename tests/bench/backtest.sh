#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# Issue 22 benchmark (not a test): `painwatch backtest` throughput on the benchmark's generated
# population (gen.py), in patient-days per second, and its ratio to the engine's single-pass rate
# (the same binary and input evaluated once per patient: --from = --to). Release build, no
# sanitizers. Figures go to tests/bench/README.md.
# usage: tests/bench/backtest.sh [PATIENTS[,PATIENTS...]] [DAYS]   (default 1000,10000 30)
set -eu
root=$(CDPATH= cd "$(dirname "$0")/../.." && pwd)
sizes=${1:-1000,10000}
days=${2:-30}
build=$root/build/release
work=$build/bench-backtest
if [ ! -f "$build/build.ninja" ]; then
  cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
fi
cmake --build "$build" --target painwatch >/dev/null
export PAINWATCH_TERMINOLOGY_DIR="$root/config/terminology"
mkdir -p "$work"
now=$(date -u +%s)
to=$(date -u -d "@$now" +%Y-%m-%dT%H:%M:%SZ)
from=$(date -u -d "@$((now - days * 86400))" +%Y-%m-%dT%H:%M:%SZ)
printf '%-9s %-6s %10s %12s %14s %10s %14s %8s %9s\n' patients days evals patient-days \
  pd/s wall_s single_pat/s ratio maxrss_MB
for n in $(echo "$sizes" | tr , ' '); do
  d=$work/p$n
  rm -rf "$d"
  python3 "$root/tests/bench/gen.py" --patients "$n" --counts 1000 --base http://127.0.0.1:9 \
    --out "$d" >/dev/null
  # Backtest over the period (gen.py dates everything within the last days before now).
  /usr/bin/time -f '%e %M' -o "$d/time.full" "$build/painwatch" backtest --scope cohort \
    --from "$from" --to "$to" --step 1h --format json --out "$d/full.json" "$d"/p1000/*.json
  # Single pass: one evaluation per patient at the end of the period.
  /usr/bin/time -f '%e %M' -o "$d/time.single" "$build/painwatch" backtest --scope cohort \
    --from "$to" --to "$to" --format json --out "$d/single.json" "$d"/p1000/*.json
  python3 - "$d" "$n" "$days" <<'PY'
import json, sys
d, n, days = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
full = json.load(open(f"{d}/full.json"))
wall, rss = open(f"{d}/time.full").read().split()
swall, _ = open(f"{d}/time.single").read().split()
wall, swall = max(float(wall), 0.01), max(float(swall), 0.01)
pds = full["patient_days"] / wall
single = n / swall
print(f"{n:<9} {days:<6} {full['evaluations']:>10} {full['patient_days']:>12.0f} {pds:>14.0f} "
      f"{wall:>10.2f} {single:>14.0f} {pds / single:>8.2f} {int(rss) / 1024:>9.1f}")
PY
done
