#!/bin/sh
# Installs the systemd component of the build into a scratch prefix, with `cmake --install
# --prefix` (not the configured CMAKE_INSTALL_PREFIX), and checks that the installed unit's
# ExecStart and Documentation name that prefix, not /usr/local (issue 18).
# Usage: unit_prefix.sh BUILD_DIR CMAKE
set -eu
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
prefix="$work/opt/fa"
"$2" --install "$1" --prefix "$prefix" --component systemd >/dev/null
unit=$(find "$prefix" -name faceadapt.service)
[ -n "$unit" ] || { echo "FAIL: no faceadapt.service under $prefix"; exit 1; }
cat "$unit" | grep -E '^(ExecStart|Documentation)='
grep -q "^ExecStart=$prefix/sbin/faceadaptd " "$unit" || { echo "FAIL: ExecStart does not follow --prefix"; exit 1; }
grep -q "^Documentation=file://$prefix/share/doc/" "$unit" || { echo "FAIL: Documentation does not follow --prefix"; exit 1; }
if grep -q /usr/local "$unit"; then echo "FAIL: /usr/local left in the unit"; exit 1; fi
[ -f "$prefix/lib/sysusers.d/faceadapt.conf" ] || { echo "FAIL: sysusers snippet not installed"; exit 1; }
echo "installed unit follows --prefix $prefix"
