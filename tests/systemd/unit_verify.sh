#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# systemd-analyze verify accepts painwatch.service (with ExecStart pointing at the built
# binaries, since verify checks that they exist), and the sysusers snippet parses.
# Usage: unit_verify.sh SOURCE_DIR PAINWATCHD PAINWATCH
set -eu
src=$1 daemon=$2 tool=$3
if ! command -v systemd-analyze >/dev/null 2>&1; then
    echo "SKIP: systemd-analyze not found (Debian package: systemd)"
    exit 77
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
sed -e "s|/usr/sbin/painwatchd|$daemon|" -e "s|/usr/bin/painwatch |$tool |" \
    "$src/systemd/painwatch.service" >"$tmp/painwatch.service"
grep -q "^ExecStart=$daemon " "$tmp/painwatch.service"
# verify also opens every man: page of Documentation=; they are found in the source tree, as
# the package installs them (issue 19: the unit points at the installed pages, not a README).
for page in "$src"/systemd/man/*.[0-9]; do
    section=${page##*.}
    mkdir -p "$tmp/man/man$section"
    cp "$page" "$tmp/man/man$section/"
done
# verify prints problems and exits non-zero on errors; any output at all is a finding here.
out=$(MANPATH="$tmp/man" systemd-analyze verify "$tmp/painwatch.service" 2>&1) || { echo "$out"; exit 1; }
if [ -n "$out" ]; then
    echo "systemd-analyze verify reported:"
    echo "$out"
    exit 1
fi
echo "systemd-analyze verify: painwatch.service OK"
# The unit must say what issue 7 asks for.
for key in 'Type=notify' 'WatchdogSec=' 'User=painwatch' 'StateDirectory=painwatch' \
    'LogsDirectory=painwatch' 'ExecReload=/bin/kill -HUP $MAINPID' 'NoNewPrivileges=yes' \
    'ProtectSystem=strict' 'PrivateTmp=yes' 'PrivateDevices=yes' 'CapabilityBoundingSet=$' \
    'RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX' 'SystemCallFilter=@system-service' \
    'LoadCredential=' 'RestartPreventExitStatus=2' 'Documentation=man:painwatchd(8)'; do
    if ! grep -q "^#*$key" "$src/systemd/painwatch.service"; then
        echo "painwatch.service lacks $key"
        exit 1
    fi
done
if command -v systemd-sysusers >/dev/null 2>&1; then
    mkdir -p "$tmp/root/etc"
    systemd-sysusers --root="$tmp/root" --dry-run "$src/systemd/painwatch.sysusers" >"$tmp/sysusers.out" 2>&1
    grep -q "Creating user 'painwatch'" "$tmp/sysusers.out" || { cat "$tmp/sysusers.out"; exit 1; }
    echo "systemd-sysusers --dry-run: creates user painwatch"
fi
