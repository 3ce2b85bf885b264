#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# The manual pages render with man -l without a groff warning, have a NAME line whatis can
# read (lexgrog), and document every command `painwatch --help` lists and every option
# `painwatchd --help` lists.
# Usage: man_pages.sh SOURCE_DIR PAINWATCHD PAINWATCH
set -eu
src=$1 daemon=$2 tool=$3
for t in man lexgrog; do
    command -v $t >/dev/null 2>&1 || { echo "SKIP: $t not found (Debian package: man-db)"; exit 77; }
done
fail=0
for page in painwatchd.8 painwatch.1 painwatch.yaml.5; do
    f="$src/systemd/man/$page"
    out=$(LC_ALL=C.UTF-8 MANWIDTH=80 man --warnings=all -l "$f" 2>&1 >/dev/null) || fail=1
    if [ -n "$out" ]; then
        echo "$page: $out"
        fail=1
    fi
    text=$(LC_ALL=C.UTF-8 MANWIDTH=80 man -l "$f" 2>/dev/null | col -b)
    name=${page%.*}
    echo "$text" | grep -q "^NAME" || { echo "$page: no NAME section"; fail=1; }
    echo "$text" | grep -q "^EXIT STATUS\|^CONVENTIONS" || { echo "$page: no EXIT STATUS"; fail=1; }
    lexgrog "$f" | grep -q "\"$name - " || { echo "$page: whatis cannot read the NAME line"; fail=1; }
    echo "$page: renders ($(echo "$text" | wc -l) lines)"
done
# Every command of the tool and every option of the daemon is in its page.
tool_page=$(LC_ALL=C.UTF-8 MANWIDTH=200 man -l "$src/systemd/man/painwatch.1" 2>/dev/null | col -b)
for cmd in $("$tool" --help | awk '/^commands:/ {on=1; next} on && /^  [a-z]/ {print $1}'); do
    echo "$tool_page" | grep -q "^ *$cmd " || { echo "painwatch(1) does not document '$cmd'"; fail=1; }
done
daemon_page=$(LC_ALL=C.UTF-8 MANWIDTH=200 man -l "$src/systemd/man/painwatchd.8" 2>/dev/null | col -b)
for opt in $("$daemon" --help | grep -o -- '--[a-z-]*' | sort -u); do
    echo "$daemon_page" | grep -q -- "$opt" || { echo "painwatchd(8) does not document $opt"; fail=1; }
done
exit $fail
