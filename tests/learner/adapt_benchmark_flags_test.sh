#!/bin/bash
# adapt_benchmark fed garbage and hostile flag values: a number with trailing characters, an
# out-of-range number, markup with a control character, a flag where a value belongs, a missing
# value, a NaN rate. Each must exit 2 before reading any data, name the flag, and echo none of the
# value (no markup, no raw control character).
#   adapt_benchmark_flags_test.sh ADAPT_BENCHMARK_BINARY
set -u
bin=$1
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
refused() {  # refused WHAT EXPECTED_TEXT -- args...
  local what=$1 text=$2; shift 3
  local out rc
  out=$("$bin" --cache "$dir/none" --shared "$dir/none" "$@" 2>&1); rc=$?
  [ $rc -eq 2 ] || fail "$what: exit $rc, expected 2: $out"
  grep -q -- "$text" <<<"$out" || fail "$what: error does not say '$text': $out"
  if grep -q -- "<script" <<<"$out"; then fail "$what: the value was echoed: $out"; fi
  if LC_ALL=C grep -q $'[\x01-\x08\x0b-\x1f\x7f]' <<<"$out"; then fail "$what: a raw control character reached the output"; fi
  [ -z "$(ls -A "$dir")" ] || fail "$what: something was written"
  echo "ok: $what -> $(head -c 160 <<<"$out" | tr '\n' ' ')"
}
refused "trailing characters" "--cycles: a missing or malformed value" -- --cycles 3x
refused "out of range" "--iters: a missing or malformed value" -- --iters 99999999999999
refused "markup and a bell" "--l2sp: a missing or malformed value" -- --l2sp $'<script>alert(1)</script>\a'
refused "markup in a list" "--mix: a missing or malformed value" -- --mix $'0.8,<script>\x1b[31m'
refused "a flag for a value" "--seed: a missing or malformed value" -- --seed --methods
refused "no value at all" "--switch-rates: a missing or malformed value" -- --switch-rates
refused "NaN rate" "--max-violation-rate must be in (0, 1]" -- --max-violation-rate nan
refused "rate above one" "--max-violation-rate must be in (0, 1]" -- --max-violation-rate 1.5
refused "mix of zero" "--mix: each value must be in (0, 1]" -- --mix 0
echo "all refused"
