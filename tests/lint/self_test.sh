#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# The lint test's own test: lint.sh must pass a small clean tree and fail, naming the place, on each
# planted violation of a never-rule. Trees are written to a temporary folder, one per case.
# usage: self_test.sh JSCPD
set -u
here=$(CDPATH= cd "$(dirname "$0")" && pwd)
jscpd=${1:?usage: self_test.sh JSCPD}
work=$(mktemp -d "${TMPDIR:-/tmp}/pw-lint-self.XXXXXX")
trap 'rm -rf "$work"' EXIT
passed=0
failed=0

# clean TREE: a tiny tree that keeps every rule.
clean() {
  mkdir -p "$1/include/painwatch" "$1/daemon/clinical" "$1/daemon/core" "$1/adapters"
  printf '#pragma once\nint pw_x(void);\n' >"$1/include/painwatch/x.h"
  printf '#include <math.h>\n#include "painwatch/x.h"\nint pw_x(void) { return (int)floor(1.5); }\n' \
    >"$1/daemon/clinical/x.c"
  printf '#include <uv.h>\n#include <curl/curl.h>\nvoid h(CURLM *m, uv_loop_t *l);\nvoid h(CURLM *m, uv_loop_t *l) { curl_multi_perform(m, 0); uv_run(l, UV_RUN_NOWAIT); }\n' \
    >"$1/daemon/core/http.c"
  printf '#include <jansson.h>\n#include <openssl/evp.h>\n#include <string.h>\n#include "painwatch/x.h"\nint a(void);\nint a(void) { return pw_x(); }\n' \
    >"$1/adapters/sink_x.c"
}

# func NAME: 20 lines of code that differ from any other NAME's only in NAME.
func() {
  echo "int $1(const int *v, int n);"
  echo "int $1(const int *v, int n) {"
  echo "    int sum = 0, max = 0, min = 0;"
  i=0
  while [ $i -lt 14 ]; do
    echo "    if (n > $i && v[$i] > max) { max = v[$i]; sum += v[$i] * $i; } else { min -= $i; }"
    i=$((i + 1))
  done
  echo "    return sum + max + min;"
  echo "}"
}

# expect NAME STATUS TEXT: lint.sh over $work/NAME exits STATUS and its output contains TEXT.
expect() {
  out=$(sh "$here/lint.sh" "$work/$1" "$jscpd" 2>&1)
  rc=$?
  if [ $rc -eq "$2" ] && echo "$out" | grep -qF -- "$3"; then
    echo "ok: $1"
    passed=$((passed + 1))
  else
    echo "FAIL: $1: exit $rc (want $2), output lacks '$3':"
    echo "$out" | sed 's/^/    /'
    failed=$((failed + 1))
  fi
}

clean "$work/clean"
expect clean 0 "lint: OK"

clean "$work/clinical_uv"
printf '#include <stdio.h>\n#include <uv.h>\nint y(void);\nint y(void) { return 0; }\n' >"$work/clinical_uv/daemon/clinical/y.c"
expect clinical_uv 1 "daemon/clinical/y.c: daemon/clinical must not depend on"

for h in curl/curl.h sqlite3.h yaml.h; do
  n=clinical_$(echo "$h" | tr -c 'a-z0-9\n' _)
  clean "$work/$n"
  printf '#include <%s>\n' "$h" >"$work/$n/daemon/clinical/z.h"
  expect "$n" 1 "daemon/clinical/z.h: daemon/clinical must not depend on"
done

# Through a project header: clinical includes painwatch/io.h, which includes <sqlite3.h>.
clean "$work/clinical_indirect"
printf '#pragma once\n#include <sqlite3.h>\n' >"$work/clinical_indirect/include/painwatch/io.h"
printf '#include "painwatch/io.h"\n' >>"$work/clinical_indirect/daemon/clinical/x.c"
expect clinical_indirect 1 "daemon/clinical/x.c: daemon/clinical must not depend on"

clean "$work/adapter_core_header"
printf '#include "core/outbox.h"\n' >>"$work/adapter_core_header/adapters/sink_x.c"
expect adapter_core_header 1 "adapters/sink_x.c:7: adapters include only"

clean "$work/adapter_missing_contract"
printf '#include "painwatch/nope.h"\n' >>"$work/adapter_missing_contract/adapters/sink_x.c"
expect adapter_missing_contract 1 "adapters/sink_x.c:7: \"painwatch/nope.h\" is not a header"

clean "$work/adapter_uv"
printf '#include <uv.h>\n' >>"$work/adapter_uv/adapters/sink_x.c"
expect adapter_uv 1 "adapters/sink_x.c:7: <uv.h> is not an allowed header"

clean "$work/uv_curl_twice"
cp "$work/uv_curl_twice/daemon/core/http.c" "$work/uv_curl_twice/daemon/core/sched.c"
expect uv_curl_twice 1 "daemon/core/sched.c uses both libuv and the curl multi API"

clean "$work/copied"
func pw_a >"$work/copied/daemon/core/a.c"
func pw_b >"$work/copied/adapters/b.c"
expect copied 1 "code copied for more than 12 lines"

# The same copy inside tests/ is allowed.
clean "$work/copied_in_tests"
mkdir -p "$work/copied_in_tests/tests/daemon"
func pw_a >"$work/copied_in_tests/tests/daemon/a.c"
func pw_b >"$work/copied_in_tests/tests/daemon/b.c"
expect copied_in_tests 0 "lint: OK"

echo "$passed passed, $failed failed"
[ $failed -eq 0 ]
