#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# Issue 22 benchmark (not a test): `painwatch backtest` throughput on the benchmark's generated
# population (gen.py), in patient-days per second, and its ratio to the engine's single-pass rate
# (the same binary and input evaluated once per patient: --from = --to), per CPU-second. Release build, no
# sanitizers. Figures go to tests/bench/README.md.
# usage: [JOBS=N] tests/bench/backtest.sh [PATIENTS[,PATIENTS...]] [DAYS]   (default 1000,10000 30)
# JOBS: backtest --jobs (default: painwatch's, the number of CPUs). CPU s counts every worker.
set -eu
root=$(CDPATH= cd "$(dirname "$0")/../.." && pwd)
sizes=${1:-1000,10000}
days=${2:-30}
jobs=${JOBS:+--jobs $JOBS}
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
printf '%-9s %-5s %9s %9s %8s %8s %9s %11s %6s %7s\n' patients days evals pat-days \
  wall_s cpu_s pd/cpu_s single/cpu_s ratio rss_MB
for n in $(echo "$sizes" | tr , ' '); do
  d=$work/p$n
  rm -rf "$d"
  # --days: every scored patient is on record from the period's first 12 h (patients x days).
  python3 "$root/tests/bench/gen.py" --patients "$n" --counts 1000 --base http://127.0.0.1:9 \
    --days "$days" --out "$d" >/dev/null
  # Backtest over the period (gen.py dates everything within the last days before now).
  /usr/bin/time -f '%e %M %U %S' -o "$d/time.full" "$build/painwatch" backtest $jobs --scope cohort \
    --from "$from" --to "$to" --step 1h --format json --out "$d/full.json" "$d"/p1000/*.json
  # Single pass: one evaluation per patient at the end of the period.
  /usr/bin/time -f '%e %M %U %S' -o "$d/time.single" "$build/painwatch" backtest $jobs --scope cohort \
    --from "$to" --to "$to" --format json --out "$d/single.json" "$d"/p1000/*.json
  python3 - "$d" "$n" "$days" <<'PY'
import json, sys
d, n, days = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
full = json.load(open(f"{d}/full.json"))
wall, rss, u, s = open(f"{d}/time.full").read().split()
_, _, su, ss = open(f"{d}/time.single").read().split()
cpu = max(float(u) + float(s), 0.01)
scpu = max(float(su) + float(ss), 0.01)
pds = full["patient_days"] / cpu
single = n / scpu
# CPU time (user + sys): robust on a shared machine; wall shown beside it.
print(f"{n:<9} {days:<5} {full['evaluations']:>9} {full['patient_days']:>9.0f} {float(wall):>8.2f} "
      f"{cpu:>8.2f} {pds:>9.0f} {single:>11.0f} {pds / single:>6.2f} {int(rss) / 1024:>7.1f}")
PY
done
