#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# The example alerting rules parse and type-check with Prometheus's own tool.
# Usage: promtool_rules.sh SOURCE_DIR. Exits 77 (skipped) without promtool (Debian: prometheus).
set -eu
src=$1
if ! command -v promtool >/dev/null 2>&1; then
  echo "SKIP: promtool not found (Debian package: prometheus)" >&2
  exit 77
fi
promtool check rules "$src/config/painwatch-alerts.yml"
