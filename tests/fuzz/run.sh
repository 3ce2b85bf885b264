#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# Run every libFuzzer target (or those named) for SECONDS each (default 600), from a scratch copy
# of its seed corpus, two at a time; print executions, coverage and crashes per target.
#
#   tests/fuzz/run.sh [-b BUILD_DIR] [-j JOBS] [-k] [SECONDS] [TARGET...]
#
# BUILD_DIR defaults to build/fuzz, configured once with
#   CC=clang cmake -S . -B build/fuzz -G Ninja -DPW_FUZZ=ON -DPW_SANITIZE=address,undefined
# (this script builds it when missing). -k keeps the grown corpora in BUILD_DIR/fuzz-run/<target>
# (merge them into tests/fuzz/corpus with -merge=1 when they add coverage). Crash inputs land in
# BUILD_DIR/fuzz-run/<target>/artifacts/; the script exits 1 when any target crashed.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
build=$root/build/fuzz
jobs=2
keep=0
while getopts b:j:k opt; do
  case $opt in
    b) build=$OPTARG ;;
    j) jobs=$OPTARG ;;
    k) keep=1 ;;
    *) sed -n 3,12p "$0"; exit 2 ;;
  esac
done
shift $((OPTIND - 1))
secs=${1:-600}
[ $# -gt 0 ] && shift
targets=$*
if [ -z "$targets" ]; then
  targets=$(cd "$here" && ls fuzz_*.c | sed -e 's/^fuzz_//' -e 's/\.c$//' | grep -v '^common$')
fi
if [ ! -f "$build/CMakeCache.txt" ]; then
  CC=clang cmake -S "$root" -B "$build" -G Ninja -DPW_FUZZ=ON -DPW_SANITIZE=address,undefined \
    -DPW_BUILD_BENCH=OFF >/dev/null
fi
bins=
for t in $targets; do bins="$bins fuzz_$t"; done
# shellcheck disable=SC2086
cmake --build "$build" --target $bins >/dev/null
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
run=$build/fuzz-run
mkdir -p "$run"
one() {
  t=$1
  w=$run/$t
  rm -rf "$w"
  mkdir -p "$w/corpus" "$w/artifacts"
  cp "$here/corpus/$t"/* "$w/corpus/"
  d=$here/dict/$t.dict
  [ -f "$d" ] || d=$here/dict/json.dict
  "$build/tests/fuzz_$t" -max_total_time="$secs" -timeout=25 -rss_limit_mb=2048 -max_len=65536 \
    -dict="$d" -artifact_prefix="$w/artifacts/" -print_final_stats=1 "$w/corpus" >"$w/log" 2>&1 || true
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$w/log" | tail -1)
  cov=$(grep -o 'cov: [0-9]*' "$w/log" | tail -1 | cut -d' ' -f2)
  ft=$(grep -o 'ft: [0-9]*' "$w/log" | tail -1 | cut -d' ' -f2)
  crashes=$(ls "$w/artifacts" | wc -l)
  printf '%-16s %6ss %12s execs  cov %6s  ft %7s  corpus %5s  crashes %s\n' "$t" "$secs" \
    "${execs:-?}" "${cov:-?}" "${ft:-?}" "$(ls "$w/corpus" | wc -l)" "$crashes"
  if [ "$crashes" -gt 0 ]; then
    grep -m3 -E 'ERROR|runtime error' "$w/log" | sed 's/^/    /'
    ls "$w/artifacts" | sed "s|^|    $w/artifacts/|"
  fi
  [ "$keep" = 1 ] || rm -rf "$w/corpus"
}
status=0
n=0
for t in $targets; do
  one "$t" >"$run/$t.summary" &
  n=$((n + 1))
  if [ "$n" -ge "$jobs" ]; then
    wait
    n=0
  fi
done
wait
for t in $targets; do
  cat "$run/$t.summary"
  [ "$(ls "$run/$t/artifacts" | wc -l)" -eq 0 ] || status=1
done
exit $status
