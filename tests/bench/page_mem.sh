#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# Issue 18: peak memory of one search page on the worst shapes the 32 MiB body cap lets in,
# with the parse budget and entry cap (and, with --unbounded, without them: the code before).
# Prints a table; asserts nothing. Build first: cmake --build BUILD --target pw_bench_page_mem
#   tests/bench/page_mem.sh [BUILD_DIR] [--unbounded]
set -eu
build=${1:-build/release}
mode=${2:-}
bin="$build/tests/bench/pw_bench_page_mem"
[ -x "$bin" ] || { echo "no $bin: cmake --build $build --target pw_bench_page_mem" >&2; exit 1; }
printf '| shape | body bytes | entries | outcome | delivered | RSS before parse (MiB) | peak RSS (MiB) |\n'
printf '|---|---:|---:|---|---:|---:|---:|\n'
for s in empty-32M empty-1M-in-3MB small-32M obs-1000 obs-32M huge-4x8M huge-1x31M numbers-32M; do
    # shellcheck disable=SC2086
    "$bin" "$s" $mode | awk -F'\t' '{printf "| %s | %s | %s | %s | %s | %s | %s |\n", $1, $2, $3, $4, $5, $6, $7}'
done
