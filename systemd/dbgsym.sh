#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# Finish the -dbgsym package CPack builds beside the .deb (CPACK_DEBIAN_DEBUGINFO_PACKAGE):
# CMake 3.25 writes md5sums with its staging paths instead of package paths, and gives the
# package no /usr/share/doc entry. Rebuilt here as debhelper's dbgsym packages are: md5sums of
# the package's own files, and usr/share/doc/painwatch-dbgsym -> painwatch (the package it
# depends on, whose copyright and changelog apply).
# Usage: dbgsym.sh DIR [required|optional]   (DIR holds painwatch-dbgsym_*.ddeb, rewritten in
# place; optional: a build without debug symbols has none)
set -eu
dir=$1
need=${2:-required}
for ddeb in "$dir"/painwatch-dbgsym_*.ddeb; do
    if [ ! -f "$ddeb" ]; then
        [ "$need" = optional ] && exit 0
        echo "dbgsym.sh: no painwatch-dbgsym .ddeb in $dir" >&2
        exit 1
    fi
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' EXIT
    dpkg-deb -R "$ddeb" "$tmp/root"
    mkdir -p "$tmp/root/usr/share/doc"
    ln -sfn painwatch "$tmp/root/usr/share/doc/painwatch-dbgsym"
    (cd "$tmp/root" && find usr -type f -print | LC_ALL=C sort | xargs md5sum) >"$tmp/root/DEBIAN/md5sums"
    chmod 0644 "$tmp/root/DEBIAN/md5sums"
    dpkg-deb --root-owner-group -Zxz --build "$tmp/root" "$ddeb" >/dev/null
    rm -rf "$tmp"
    trap - EXIT
done
