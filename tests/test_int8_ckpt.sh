#!/usr/bin/env bash
# pp8 quantize round trip (issue 3): loading the int8 checkpoint gives logits bit-identical to
# quantizing at load, for each golden model; broken 8-bit checkpoints are refused.
set -u
: "${PP8:?}" "${PP8_GOLDEN:?}" "${PP8_BUILD:?}"
[ -d "$PP8_GOLDEN" ] || { echo "FAIL: golden data missing: $PP8_GOLDEN"; exit 1; }
check="$PP8_BUILD/tests/logits_check"
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
fail=0
for m in bloom-tiny opt-tiny bloom-bf16-sharded; do
  toks=$("$check" tokens "$PP8_GOLDEN/$m/golden.safetensors")
  "$PP8" quantize --model "$PP8_GOLDEN/$m" --out "$tmp/$m-q" 2>/dev/null || { echo "FAIL: quantize $m"; fail=1; continue; }
  for t in 6 0; do
    "$PP8" logits --model "$PP8_GOLDEN/$m" --dtype int8 --threshold $t --tokens "$toks" --out "$tmp/a.npy" 2>/dev/null &&
    "$PP8" logits --model "$tmp/$m-q" --dtype int8 --threshold $t --tokens "$toks" --out "$tmp/b.npy" 2>/dev/null ||
      { echo "FAIL: logits $m t=$t"; fail=1; continue; }
    if cmp -s "$tmp/a.npy" "$tmp/b.npy"; then echo "ok: $m t=$t: quantized checkpoint == quantize at load (bitwise)";
    else echo "FAIL: $m t=$t: logits of the quantized checkpoint differ from quantize-at-load"; fail=1; fi
  done
done
"$PP8_BUILD/tests/int8_ckpt_errors" "$tmp/bloom-tiny-q" "$tmp/bad" || fail=1
exit $fail
