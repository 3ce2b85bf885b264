#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# systemd-analyze security --offline=true rates painwatch.service at an exposure of 2.0 or lower.
# Usage: unit_security.sh UNIT_FILE
set -eu
unit=$1
if ! command -v systemd-analyze >/dev/null 2>&1; then
    echo "SKIP: systemd-analyze not found (Debian package: systemd)"
    exit 77
fi
if ! systemd-analyze security --help 2>&1 | grep -q -- '--offline'; then
    echo "SKIP: systemd-analyze security has no --offline (systemd >= 252 needed)"
    exit 77
fi
out=$(systemd-analyze security --offline=true --no-pager "$unit" 2>&1) || true
echo "$out" | grep -v '^✓'
level=$(echo "$out" | sed -n 's/.*Overall exposure level for painwatch.service: \([0-9.]*\).*/\1/p')
if [ -z "$level" ]; then
    echo "no exposure level in the output"
    exit 1
fi
# awk compares as numbers: 2.0 passes, 2.1 fails.
if awk -v l="$level" 'BEGIN { exit !(l <= 2.0) }'; then
    echo "exposure $level <= 2.0: OK"
else
    echo "exposure $level is above 2.0"
    exit 1
fi
