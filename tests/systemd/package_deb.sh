#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# The .deb builds with cpack from the build tree, lists the expected files, marks the config as
# a conffile, declares the runtime dependencies and creates the user in postinst.
# Usage: package_deb.sh SOURCE_DIR BINARY_DIR
set -eu
src=$1 bin=$2
for tool in cpack dpkg-deb; do
    if ! command -v $tool >/dev/null 2>&1; then
        echo "SKIP: $tool not found (Debian packages: cmake, dpkg)"
        exit 77
    fi
done
if [ ! -d "$src/config/terminology" ]; then
    echo "SKIP: config/terminology (shipped code tables) is not in this tree yet"
    exit 77
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cpack -G DEB --config "$bin/CPackConfig.cmake" -B "$tmp/out" >"$tmp/cpack.log" 2>&1 || {
    cat "$tmp/cpack.log"
    exit 1
}
deb=$(ls "$tmp"/out/painwatch_*.deb)
dpkg-deb --contents "$deb" | awk '{print $NF}' >"$tmp/contents"
cat "$tmp/contents"
fail=0
for f in ./usr/sbin/painwatchd ./usr/bin/painwatch ./usr/lib/systemd/system/painwatch.service \
    ./usr/lib/sysusers.d/painwatch.conf ./usr/lib/tmpfiles.d/painwatch.conf \
    ./etc/painwatch/painwatch.yaml ./usr/share/painwatch/terminology/ \
    ./usr/share/doc/painwatch/README.md; do
    grep -qx "$f" "$tmp/contents" || { echo "MISSING from the package: $f"; fail=1; }
done
# Every shipped terminology table is in the package.
for t in "$src"/config/terminology/*; do
    [ -f "$t" ] || continue
    grep -qx "./usr/share/painwatch/terminology/$(basename "$t")" "$tmp/contents" ||
        { echo "MISSING terminology table: $(basename "$t")"; fail=1; }
done
dpkg-deb -e "$deb" "$tmp/control"
grep -qx /etc/painwatch/painwatch.yaml "$tmp/control/conffiles" || { echo "config is not a conffile"; fail=1; }
depends=$(dpkg-deb -f "$deb" Depends)
for lib in libuv1 libcurl4 libjansson4 libssl3 libsqlite3-0 libyaml-0-2 libsystemd0 libmicrohttpd12; do
    echo "$depends" | grep -q "$lib" || { echo "Depends lacks $lib"; fail=1; }
done
[ -x "$tmp/control/postinst" ] && grep -q systemd-sysusers "$tmp/control/postinst" ||
    { echo "postinst does not create the user"; fail=1; }
for script in postinst prerm postrm; do
    sh -n "$tmp/control/$script" || { echo "$script: shell syntax error"; fail=1; }
done
[ "$(dpkg-deb -f "$deb" Package)" = painwatch ] || { echo "wrong package name"; fail=1; }
exit $fail
