#!/bin/bash
# `faceadapt user` fed garbage and hostile input: a name with an ANSI escape, an oversize
# password line, a wrong role, a corrupt users file. Each must exit non-zero with a clear error,
# print no raw control character, and leave the users file as it was.
#   user_cli_test.sh FACEADAPT_BINARY
set -u
fa=$1
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
# A good user first: the file every refusal below must leave byte-identical.
echo "good-password" | "$fa" user add admin --role admin --password-stdin --state-dir "$dir" >/dev/null 2>&1 \
  || fail "adding a good user failed"
users="$dir/console/users.json"
[ -f "$users" ] || fail "no users file at $users"
before=$(sha256sum "$users")
refused() {  # refused WHAT EXPECTED_TEXT -- command...
  local what=$1 text=$2; shift 3
  local out rc
  out=$("$@" 2>&1); rc=$?
  [ $rc -ne 0 ] || fail "$what: accepted (exit 0)"
  grep -q -- "$text" <<<"$out" || fail "$what: error does not say '$text': $out"
  if LC_ALL=C grep -q $'[\x01-\x08\x0b-\x1f\x7f]' <<<"$out"; then fail "$what: a raw control character reached the output"; fi
  [ "$(sha256sum "$users")" = "$before" ] || fail "$what: the users file changed"
  echo "ok: $what -> $(head -c 160 <<<"$out" | tr '\n' ' ')"
}
refused "ANSI escape in the name" "name" -- bash -c "echo good-password | '$fa' user add \$'\\e[31mevil' --password-stdin --state-dir '$dir'"
refused "HTML in the name" "name" -- bash -c "echo good-password | '$fa' user add '<script>' --password-stdin --state-dir '$dir'"
refused "10 MB password line" "password" -- bash -c "head -c 10000000 /dev/zero | tr '\\0' 'x' | '$fa' user add bob --password-stdin --state-dir '$dir'"
refused "no password on stdin" "password" -- bash -c "'$fa' user add bob --password-stdin --state-dir '$dir' </dev/null"
refused "unknown role" "role" -- bash -c "echo good-password | '$fa' user add bob --role root --password-stdin --state-dir '$dir'"
refused "passwd of a missing user" "ghost" -- bash -c "echo good-password | '$fa' user passwd ghost --password-stdin --state-dir '$dir'"
# A corrupt users file: an error naming it, and the file kept for the operator to look at.
cp "$users" "$dir/good.json"
printf '{"users": [ {"name": "admin", "ro\x1b[2J' > "$users"
before=$(sha256sum "$users")
refused "corrupt users file" "users.json" -- "$fa" user list --state-dir "$dir"
echo "PASS"
