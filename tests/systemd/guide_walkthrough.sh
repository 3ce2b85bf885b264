#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# The operator's guide (systemd/README.md), followed step by step where a machine can: the .deb
# built by systemd_package_lintian installed into a scratch root with dpkg (maintainer scripts
# included: the user, the audit key), the shipped configuration checked as is, the manual pages
# read, the EHR registration (key pair, `painwatch jwks`, the JWK Set given to a loopback token
# endpoint, `painwatch auth test`), and the purge that keeps the data and says so. Nothing on
# this host outside the scratch root is touched: the scripts see $DPKG_ROOT and skip systemctl.
# Usage: guide_walkthrough.sh SOURCE_DIR BINARY_DIR EHR_STUB
set -eu
src=$1 bin=$2 stub=$3
for tool in dpkg dpkg-deb openssl man systemd-sysusers; do
    if ! command -v $tool >/dev/null 2>&1; then
        echo "SKIP: $tool not found (Debian packages: dpkg, openssl, man-db, systemd)"
        exit 77
    fi
done
deb=$(ls "$bin"/package-release/packages/painwatch_*.deb 2>/dev/null | head -1)
[ -n "$deb" ] || { echo "no package: run systemd_package_lintian first (a fixture of this test)"; exit 1; }
tmp=$(mktemp -d)
stub_pid=
cleanup() {
    [ -z "$stub_pid" ] || kill "$stub_pid" 2>/dev/null || true
    rm -rf "$tmp"
}
trap cleanup EXIT
root=$tmp/root
step() { echo "== guide $*"; }

step "1. install (dpkg --root, maintainer scripts run chrootless with DPKG_ROOT)"
mkdir -p "$root/var/lib/dpkg/info" "$root/var/lib/dpkg/updates" "$root/etc"
: >"$root/var/lib/dpkg/status"
dpkg --root="$root" --force-script-chrootless --force-depends --log=/dev/null -i "$deb" \
    >"$tmp/install.log" 2>&1 || { cat "$tmp/install.log"; exit 1; }
cat "$tmp/install.log"
for f in usr/sbin/painwatchd usr/bin/painwatch usr/lib/systemd/system/painwatch.service \
    etc/painwatch/painwatch.yaml usr/share/doc/painwatch/operator-guide.md \
    usr/share/doc/painwatch/copyright usr/share/painwatch/terminology/opioid-drugs.csv; do
    [ -e "$root/$f" ] || { echo "not installed: /$f"; exit 1; }
done
grep -q '^painwatch:' "$root/etc/passwd" || { echo "postinst did not create the painwatch user"; exit 1; }
creds=$root/etc/painwatch/credentials
[ "$(stat -c %a "$creds/audit-key")" = 600 ] || { echo "audit key: not mode 0600"; exit 1; }
[ "$(stat -c %a "$creds")" = 700 ] || { echo "credentials directory: not mode 0700"; exit 1; }
[ "$(tr -d '\n' <"$creds/audit-key" | wc -c)" -ge 64 ] || { echo "audit key too short"; exit 1; }
grep -q 'created the audit key' "$tmp/install.log" || { echo "postinst did not say it made the key"; exit 1; }
# The binaries look for their data under /usr/share/painwatch; in a scratch root, point there.
export PAINWATCH_TERMINOLOGY_DIR="$root/usr/share/painwatch/terminology"
pw="$root/usr/bin/painwatch"
conf=$root/etc/painwatch/painwatch.yaml
"$pw" --version
"$root/usr/sbin/painwatchd" --version

step "2. configure: the shipped file checks clean, with the service's credentials"
"$pw" --credentials-dir "$creds" config check "$conf" >"$tmp/check.out" 2>"$tmp/check.err" ||
    { cat "$tmp/check.err"; exit 1; }
[ ! -s "$tmp/check.err" ] || { echo "warnings on the shipped configuration:"; cat "$tmp/check.err"; exit 1; }
grep -q '"state_dir": "/var/lib/painwatch"' "$tmp/check.out" || { echo "state_dir is not set"; exit 1; }
CREDENTIALS_DIRECTORY=$creds "$root/usr/sbin/painwatchd" --check-config --config "$conf"
# Without the credentials the audit key cannot be found: refused, naming the credential.
if env -u CREDENTIALS_DIRECTORY "$pw" config check "$conf" >/dev/null 2>"$tmp/nocreds.err"; then
    echo "config check passed without the audit key credential"; exit 1
fi
grep -q "audit-key" "$tmp/nocreds.err"
for page in man8/painwatchd.8.gz man1/painwatch.1.gz man5/painwatch.yaml.5.gz; do
    man -l "$root/usr/share/man/$page" >/dev/null 2>&1 || { echo "man -l $page failed"; exit 1; }
done
grep -q '^Documentation=man:painwatchd(8)' "$root/usr/lib/systemd/system/painwatch.service"
grep -q '^RestartPreventExitStatus=2' "$root/usr/lib/systemd/system/painwatch.service"

step "3. EHR registration: key pair, configuration, jwks, auth test"
(umask 077 && openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:3072 -out "$creds/ehr-key" 2>/dev/null)
# Edit the server's auth section as the guide shows (the shipped file has these lines commented).
sed -i -e 's|^      type: none$|      type: smart-backend|' \
    -e 's|^      # client_id: painwatch$|      client_id: painwatch|' \
    -e 's|^      # private_key_file: ehr-key$|      private_key_file: ehr-key|' \
    -e 's|^      # kid: painwatch-2026$|      kid: painwatch-2026|' "$conf"
grep -q '^      type: smart-backend$' "$conf" && grep -q '^      kid: painwatch-2026$' "$conf" ||
    { echo "the shipped configuration no longer has the lines the guide edits"; exit 1; }
"$pw" --credentials-dir "$creds" jwks --config "$conf" >"$tmp/jwks.json"
grep -q '"kid": "painwatch-2026"' "$tmp/jwks.json"
if grep -q '"d"' "$tmp/jwks.json"; then echo "jwks printed a private value"; exit 1; fi
# The EHR side: its token endpoint knows only the registered JWK Set.
mkfifo "$tmp/url"
"$stub" "$tmp/jwks.json" painwatch >"$tmp/url" 2>"$tmp/stub.err" &
stub_pid=$!
read -r url <"$tmp/url"
sed -i -e "s|^    base_url: https://ehr.example.org/fhir/r4$|    base_url: $url/fhir|" \
    -e "s|^      # token_url: https://ehr.example.org/oauth2/token$|      token_url: $url/oauth2/token|" \
    "$conf"
grep -q "token_url: $url" "$conf" || { echo "the shipped configuration has no token_url line"; exit 1; }
"$pw" --credentials-dir "$creds" config check --quiet "$conf"
"$pw" --credentials-dir "$creds" auth test --config "$conf" | tee "$tmp/auth.out"
grep -q 'ehr: token: obtained (smart-backend, client_id painwatch, kid painwatch-2026)' "$tmp/auth.out"
grep -q 'auth test: 1 of 1 server(s) OK' "$tmp/auth.out"
# A key the EHR does not know is refused, and auth test says so.
(umask 077 && openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-384 -out "$creds/ehr-key" 2>/dev/null)
sed -i 's|^      alg: RS384$|      alg: ES384|' "$conf"
if "$pw" --credentials-dir "$creds" auth test --config "$conf" >"$tmp/auth2.out" 2>&1; then
    echo "auth test passed with a key the EHR never saw"; exit 1
fi
grep -q 'ehr: token: FAILED' "$tmp/auth2.out"
kill "$stub_pid"
wait "$stub_pid" || true
stub_pid=
cat "$tmp/stub.err"

step "9. purge keeps the data, the keys and the user, and says so"
mkdir -p "$root/var/lib/painwatch/audit"
echo '{}' >"$root/var/lib/painwatch/audit/painwatch-audit.jsonl"
dpkg --root="$root" --force-script-chrootless --force-depends --log=/dev/null --purge painwatch \
    >"$tmp/purge.log" 2>&1 || { cat "$tmp/purge.log"; exit 1; }
cat "$tmp/purge.log"
grep -q 'Kept on purpose' "$tmp/purge.log"
[ ! -e "$root/usr/sbin/painwatchd" ] || { echo "painwatchd still installed"; exit 1; }
[ ! -e "$conf" ] || { echo "purge left the configuration"; exit 1; }
[ -f "$root/var/lib/painwatch/audit/painwatch-audit.jsonl" ] || { echo "purge deleted the trail"; exit 1; }
[ -f "$creds/audit-key" ] || { echo "purge deleted the audit key"; exit 1; }
grep -q '^painwatch:' "$root/etc/passwd" || { echo "purge deleted the user"; exit 1; }
echo "guide walkthrough: OK"
