#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# README's first command, after the build: the local demo. Starts the reference FHIR server on
# loopback (127.0.0.1:8080, base /fhir: what painwatchd's embedded default points at), loads the
# synthetic cohort, runs `painwatchd --once` on its embedded defaults (SQLite state and the audit
# trail under ./painwatch-state of the demo folder), prints a report, and stops the server.
# usage: demo.sh BUILD_DIR [DEMO_DIR]
set -eu
root=$(CDPATH= cd "$(dirname "$0")/../.." && pwd)
build=$(CDPATH= cd "${1:?usage: demo.sh BUILD_DIR [DEMO_DIR]}" && pwd)
work=${2:-$build/demo}
e2e=$root/tests/e2e
port=8080
base=http://127.0.0.1:$port/fhir

sh "$e2e/server/setup.sh" >/dev/null
rm -rf "$work"
mkdir -p "$work"
cd "$work"
if node -e "require('net').connect($port, '127.0.0.1').on('connect', () => process.exit(0)).on('error', () => process.exit(1))"; then
  echo "demo: 127.0.0.1:$port is in use; the embedded default expects the demo FHIR server there" >&2
  exit 1
fi
pid=$(sh "$e2e/server/start.sh" server.port server.log 1800 --port $port --base /fhir)
trap 'sh "$e2e/server/stop.sh" "$pid" >/dev/null 2>&1 || true' EXIT INT TERM

echo "== reference FHIR server (Medplum in memory, validating) at $base"
node "$e2e/cohort/generate.js" --out cohort >/dev/null
node "$e2e/cohort/load.js" --base "$base" cohort
echo "== painwatchd --once (embedded default configuration)"
"$build/painwatchd" --once 2>painwatchd.log || {
  echo "demo: painwatchd failed; its log:" >&2
  tail -n 30 painwatchd.log >&2
  exit 1
}
grep -E "cycle done" painwatchd.log | sed 's/^[a-z]*: \[main\] /   /'
echo "== Flags in the EHR compared with what each synthetic patient should get"
node "$e2e/cohort/compare.js" --base "$base" --cohort cohort
trail=$work/painwatch-state/audit/painwatch-audit.jsonl
echo "== audit trail: $trail ($(wc -l <"$trail") records)"
echo "   verify it:  $build/painwatch audit verify --key $work/painwatch-state/audit.key $trail"
"$build/painwatch" audit verify --key "$work/painwatch-state/audit.key" "$trail"
echo "   read it:    $build/painwatch audit show --rule bowel-regimen-missing $trail"
echo "== operational log (no patient data): $work/painwatchd.log"
