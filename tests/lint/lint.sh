#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# The never-rules of painwatch's architecture, checked over a source tree (issue 20).
# usage: lint.sh TREE [JSCPD]
#   TREE   the root of a painwatch tree (daemon/, adapters/, include/ below it)
#   JSCPD  the jscpd binary (tests/lint/setup.sh installs it); without it the duplicate check fails
# Exits 1 naming every violation (file:line where there is one), 0 when the tree keeps the rules:
#  1. daemon/clinical is pure: it includes no libuv, libcurl, SQLite or libyaml header, directly or
#     through another header (the compiler's dependency list decides, so a header that includes
#     <uv.h> counts too).
#  2. adapters/ includes only the project's contracts ("painwatch/*.h", which must exist in
#     include/painwatch/) and system or library headers from the allowed set below.
#  3. At most one file uses both libuv and the curl multi API, and that file is daemon/core/http.c.
#  4. No run of more than 12 lines is copied in daemon/, adapters/ or include/ (tests/ may repeat
#     itself): jscpd, exact clones (comments and layout ignored), --min-lines 13.
set -u
tree=${1:?usage: lint.sh TREE [JSCPD]}
jscpd=${2:-}
case "$jscpd" in /* | "") ;; *) jscpd="$PWD/$jscpd" ;; esac
cc=${CC:-cc}
fail=0
say() { echo "lint: $*" >&2; fail=1; }

# Headers an adapter may include besides "painwatch/*.h": the C library, POSIX, and the libraries
# adapters use directly (jansson for JSON, OpenSSL for keys and digests, SQLite for the SQLite
# store, libcurl's URL API). libuv, libyaml, libmicrohttpd and libsystemd stay in core.
adapter_allowed='^(assert|ctype|errno|fcntl|float|inttypes|libgen|limits|locale|math|pthread|signal|stdarg|stdbool|stddef|stdint|stdio|stdlib|string|strings|time|unistd|sys/[a-z_]+|jansson|openssl/[a-z0-9_]+|sqlite3|curl/curl)\.h$'
# Headers that make a file depend on libuv, libcurl, SQLite or libyaml.
io_headers='(^|/)(uv\.h|uv/[^ ]+|curl/[^ ]+|sqlite3\.h|yaml\.h)$'

# 1. daemon/clinical: every header the preprocessor pulls in (-MG: a missing header still listed).
# In each make rule the compiler writes, the first prerequisite is the source file.
if [ -d "$tree/daemon/clinical" ]; then
  files=$(find "$tree/daemon/clinical" -name '*.c' | sort)
  hdrs=$(find "$tree/daemon/clinical" -name '*.h' | sort)
  # A header is checked on its own too (read as C), so one that no .c includes still counts.
  # shellcheck disable=SC2086
  bad=$(for f in $files $hdrs; do echo "$f"; done | while IFS= read -r f; do
      "$cc" -M -MG -I"$tree/include" -I"$tree/daemon" -x c "$f" 2>/dev/null
    done | sed -e ':a' -e '/\\$/N; s/\\\n//; ta' |
    PW_RE="$io_headers" awk '{ src = $2; for (i = 3; i <= NF; i++) if ($i ~ ENVIRON["PW_RE"]) print src " " $i }')
  echo "$bad" | while read -r f d; do
    [ -n "$f" ] && echo "${f#"$tree"/}: daemon/clinical must not depend on $d (libuv, libcurl, SQLite and libyaml stay in core and adapters)"
  done >"${TMPDIR:-/tmp}/pw-lint-clinical.$$"
  if [ -s "${TMPDIR:-/tmp}/pw-lint-clinical.$$" ]; then
    while IFS= read -r l; do say "$l"; done <"${TMPDIR:-/tmp}/pw-lint-clinical.$$"
  fi
  rm -f "${TMPDIR:-/tmp}/pw-lint-clinical.$$"
fi

# 2. adapters/: includes.
if [ -d "$tree/adapters" ]; then
  for f in $(find "$tree/adapters" -name '*.[ch]' | sort); do
    grep -n '^[[:space:]]*#[[:space:]]*include' "$f" | while IFS= read -r line; do
      n=${line%%:*}
      inc=$(echo "$line" | sed -n 's/.*#[[:space:]]*include[[:space:]]*\([<"].*[>"]\).*/\1/p')
      name=$(echo "$inc" | sed 's/^[<"]\(.*\)[>"]$/\1/')
      case "$inc" in
        \"painwatch/*\")
          [ -f "$tree/include/$name" ] ||
            echo "${f#"$tree"/}:$n: \"$name\" is not a header of include/painwatch/" ;;
        \"*\")
          echo "${f#"$tree"/}:$n: adapters include only \"painwatch/*.h\" from the project, not \"$name\"" ;;
        \<*\>)
          echo "$name" | grep -Eq "$adapter_allowed" ||
            echo "${f#"$tree"/}:$n: <$name> is not an allowed header for adapters (see tests/lint/lint.sh)" ;;
        *)
          echo "${f#"$tree"/}:$n: unreadable #include" ;;
      esac
    done
  done >"${TMPDIR:-/tmp}/pw-lint-adapters.$$"
  if [ -s "${TMPDIR:-/tmp}/pw-lint-adapters.$$" ]; then
    while IFS= read -r l; do say "$l"; done <"${TMPDIR:-/tmp}/pw-lint-adapters.$$"
  fi
  rm -f "${TMPDIR:-/tmp}/pw-lint-adapters.$$"
fi

# 3. libuv + curl multi in one file: only daemon/core/http.c.
both=$(for d in daemon adapters include; do [ -d "$tree/$d" ] && find "$tree/$d" -name '*.[ch]'; done |
  sort | while IFS= read -r f; do
    if grep -Eq '(#[[:space:]]*include[[:space:]]*<uv\.h>|\buv_[a-z_]+\()' "$f" &&
      grep -Eq '\bcurl_multi_[a-z_]+\b|\bCURLM\b' "$f"; then
      echo "${f#"$tree"/}"
    fi
  done)
for f in $both; do
  [ "$f" = daemon/core/http.c ] ||
    say "$f uses both libuv and the curl multi API: only daemon/core/http.c may (submit through pw_http)"
done

# 4. Copied code: jscpd over daemon/, adapters/, include/ (tests/ left out).
if [ -z "$jscpd" ] || [ ! -x "$jscpd" ]; then
  say "no jscpd binary (${jscpd:-none given}): run tests/lint/setup.sh, or ctest runs it as lint_jscpd_setup"
else
  dirs=
  for d in daemon adapters include; do [ -d "$tree/$d" ] && dirs="$dirs $d"; done
  if [ -n "$dirs" ]; then
    # shellcheck disable=SC2086
    out=$(cd "$tree" && JSCPD_NO_TIPS=1 "$jscpd" --min-lines 13 --format c,c-header --mode mild \
      --ignore "**/tests/**,**/build/**" --reporters console --no-colors --no-gitignore \
      --absolute --exit-code 3 $dirs 2>&1)
    rc=$?
    if [ $rc -eq 3 ]; then
      # Clone blocks: "Clone found (c)", " - /abs/a.c [l:c - l:c] (...)", "   /abs/b.c [l:c - l:c]".
      # A copy inside one file listed in pending-copies.txt is left to its owner (and reported).
      clones=$(echo "$out" | grep -A2 '^Clone found' | grep -v '^Clone found' | grep -v '^--$' |
        sed -e 's/^ *- *//' -e 's/^ *//' -e "s|^$(cd "$tree" && pwd)/||" | paste - -)
      pending=
      [ -f "$tree/tests/lint/pending-copies.txt" ] &&
        pending=$(sed -e 's/#.*//' -e 's/[[:space:]]*$//' -e '/^$/d' "$tree/tests/lint/pending-copies.txt")
      echo "$clones" | while IFS="$(printf '\t')" read -r a b; do
        fa=${a%% *}
        fb=${b%% *}
        if [ "$fa" = "$fb" ] && echo "$pending" | grep -qxF "$fa"; then
          echo "lint: pending (tests/lint/pending-copies.txt): $a ~ $b" >&2
        else
          echo "copied: $a ~ $b"
        fi
      done >"${TMPDIR:-/tmp}/pw-lint-copies.$$"
      if [ -s "${TMPDIR:-/tmp}/pw-lint-copies.$$" ]; then
        cat "${TMPDIR:-/tmp}/pw-lint-copies.$$" >&2
        say "code copied for more than 12 lines (above): make one function serve both places"
      fi
      rm -f "${TMPDIR:-/tmp}/pw-lint-copies.$$"
    elif [ $rc -ne 0 ]; then
      echo "$out" >&2
      say "jscpd failed (exit $rc)"
    fi
  fi
fi

if [ $fail -ne 0 ]; then
  echo "lint: FAILED" >&2
  exit 1
fi
echo "lint: OK ($tree)"
