#!/usr/bin/env bash
# pp8 quantize on the golden checkpoints (F16 BLOOM, F16 OPT, sharded BF16 BLOOM with unprefixed names):
# exit 0, and test_ckpt_int8 ($1) finds the int8 layout bit-exact against ref_quantize_weights; bad
# flags are refused with a message. Logits of the quantized model are tested with the forward pass.
set -euo pipefail
check=${1:?usage: test_quantize.sh TEST_CKPT_INT8}
: "${PP8:?}" "${PP8_GOLDEN:?}"
fail() { echo "FAIL: $*" >&2; exit 1; }
tmp=$(mktemp -d /tmp/pp8_quant_XXXXXX)
trap 'rm -rf "$tmp"' EXIT

for m in bloom-tiny opt-tiny bloom-bf16-sharded; do
  [ -d "$PP8_GOLDEN/$m" ] || fail "golden model $PP8_GOLDEN/$m is missing (set PP8_GOLDEN_DIR)"
  if ! "$PP8" quantize --model "$PP8_GOLDEN/$m" --out "$tmp/$m" 2>"$tmp/$m.log"; then
    cat "$tmp/$m.log" >&2
    fail "pp8 quantize $m exited non-zero"
  fi
  grep -q "quantize: layer" "$tmp/$m.log" || fail "no progress line for $m: $(cat "$tmp/$m.log")"
  [ -f "$tmp/$m/model.safetensors" ] && [ -f "$tmp/$m/config.json" ] || fail "$m: output files missing"
  [ -z "$(ls -d "$tmp/$m"/*.tmp* "$tmp/$m".tmp.* 2>/dev/null)" ] || fail "$m: temporary file left behind"
  "$check" "$tmp/$m" "$PP8_GOLDEN/$m" 6
done

# the threshold is recorded, and an existing output directory is replaced with --force
# (test_quantize_safe.sh tests --out and --force themselves)
"$PP8" quantize --model "$PP8_GOLDEN/bloom-tiny" --out "$tmp/bloom-tiny" --threshold 3.5 --force 2>/dev/null ||
  fail "--threshold 3.5"
"$check" "$tmp/bloom-tiny" "$PP8_GOLDEN/bloom-tiny" 3.5

expect_fail() { # name, needle, args...
  local name=$1 needle=$2; shift 2
  if "$PP8" quantize "$@" >"$tmp/out" 2>"$tmp/err"; then fail "$name: exited 0"; fi
  grep -q -- "$needle" "$tmp/err" || fail "$name: stderr lacks '$needle': $(cat "$tmp/err")"
  [ "$(grep -c . "$tmp/err")" = 1 ] || fail "$name: error is not one line: $(cat "$tmp/err")"
  echo "ok   $name: $(cat "$tmp/err")"
}
expect_fail "negative threshold" "--threshold -1" --model "$PP8_GOLDEN/bloom-tiny" --out "$tmp/neg" --threshold -1
[ ! -e "$tmp/neg/model.safetensors" ] || fail "negative threshold wrote output"
expect_fail "unknown flag" "--bogus" --model "$PP8_GOLDEN/bloom-tiny" --out "$tmp/x" --bogus
expect_fail "missing --out" "--out" --model "$PP8_GOLDEN/bloom-tiny"
expect_fail "missing model" "no such file" --model "$tmp/nowhere" --out "$tmp/y"
expect_fail "already int8" "load_in_8bit" --model "$tmp/bloom-tiny" --out "$tmp/z"
cp -r "$PP8_GOLDEN/opt-tiny" "$tmp/src" && chmod -R u+w "$tmp/src"
expect_fail "out is the model" "--model directory" --model "$tmp/src" --out "$tmp/src/."
cmp -s "$tmp/src/model.safetensors" "$PP8_GOLDEN/opt-tiny/model.safetensors" || fail "the source was overwritten"

"$PP8" quantize --help >"$tmp/help" 2>&1 || fail "--help exited non-zero"
grep -q "usage: pp8 quantize --model DIR --out DIR" "$tmp/help" || fail "--help: $(cat "$tmp/help")"
echo "test_quantize: all passed"
