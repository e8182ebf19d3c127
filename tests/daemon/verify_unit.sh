#!/bin/sh
# systemd-analyze verify of the generated faceadapt.service, with ExecStart pointed at the
# faceadaptd of this build (the installed path does not exist here). Exit 77 (skipped) when
# systemd-analyze is absent. Any complaint about the unit fails the test: systemd-analyze
# exits 0 for many of them (e.g. an unknown Type=), so its output is checked too.
# Usage: verify_unit.sh UNIT_FILE FACEADAPTD
set -eu
command -v systemd-analyze >/dev/null 2>&1 || { echo "systemd-analyze not found: skipped"; exit 77; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
sed "s|^ExecStart=[^ ]*|ExecStart=$2|" "$1" > "$work/faceadapt.service"
grep -q '^Type=notify$' "$work/faceadapt.service"
status=0
out=$(systemd-analyze verify "$work/faceadapt.service" 2>&1) || status=$?
echo "$out"
if [ "$status" -ne 0 ] || echo "$out" | grep -q 'faceadapt.service'; then
  echo "FAIL: systemd-analyze verify complained about the unit"; exit 1
fi
echo "faceadapt.service verified"
