#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# Installs the lint test's copy/paste detector, jscpd (pinned in tests/lint/jscpd/package-lock.json),
# from the npm registry into DEST (build/<dir>/tests/lint/jscpd), as tests/e2e/server/setup.sh
# installs the reference FHIR server: skipped when DEST already matches the lockfile (offline runs).
# jscpd 5.x is a native binary published as npm packages (jscpd-linux-x64-gnu, ...); 5.3.2 is the
# version tested here (5.4.x's Linux build is not served and npm ci refuses its lockfile).
# usage: setup.sh DEST     prints nothing on success but the path of the jscpd binary on stdout
set -eu
here=$(CDPATH= cd "$(dirname "$0")" && pwd)
dest=${1:?usage: setup.sh DEST}
mkdir -p "$dest"
stamp="$dest/node_modules/.painwatch-lock.sha256"
want=$(sha256sum "$here/jscpd/package-lock.json" | cut -d' ' -f1)
bin="$dest/node_modules/.bin/jscpd"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -x "$bin" ]; then
  echo "lint setup: jscpd matches package-lock.json ($want): no install" >&2
  echo "$bin"
  exit 0
fi
command -v npm >/dev/null 2>&1 || { echo "lint setup: npm not found (Debian: apt-get install npm)" >&2; exit 1; }
cp "$here/jscpd/package.json" "$here/jscpd/package-lock.json" "$dest/"
cd "$dest"
npm ci --no-audit --no-fund --loglevel=error >&2
"$bin" --version >&2
echo "$want" >"$stamp"
echo "$bin"
