#!/usr/bin/env bash
# Golden logits (issues 2 and 3): for every model in ../shared/golden, `pp8 logits` on the stored tokens
# matches Hugging Face transformers' logits: fp16 vs logits_fp32, int8 t=6 vs logits_int8_t6, int8 t=0
# vs logits_int8_t0 (max|d| <= 1e-2 max|ref|, NMSE <= 2e-5), and t=6 is closer to fp32 than t=0;
# the bf16 baseline stays within a bf16-sized bound of fp32 (3e-2, 2e-4).
# The golden directory is required: a missing one fails the test.
set -u
: "${PP8:?}" "${PP8_GOLDEN:?}" "${PP8_BUILD:?}"
check="$PP8_BUILD/tests/logits_check"
[ -d "$PP8_GOLDEN" ] || { echo "FAIL: golden data missing: $PP8_GOLDEN (expected ../shared/golden beside the repo)"; exit 1; }
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
fail=0
for m in bloom-tiny opt-tiny bloom-bf16-sharded; do
  dir="$PP8_GOLDEN/$m"
  toks=$("$check" tokens "$dir/golden.safetensors") || { echo "FAIL: cannot read $dir/golden.safetensors"; fail=1; continue; }
  run() { "$PP8" logits --model "$dir" --tokens "$toks" --out "$tmp/$m-$1.npy" "${@:2}" || { echo "FAIL: pp8 logits $m $*"; fail=1; }; }
  run fp16 --dtype fp16
  run t6 --dtype int8 --threshold 6
  run t0 --dtype int8 --threshold 0
  run bf16 --dtype bf16
  "$check" compare "$tmp/$m-fp16.npy" "$dir/golden.safetensors" logits_fp32 1e-2 2e-5 || fail=1
  "$check" compare "$tmp/$m-t6.npy" "$dir/golden.safetensors" logits_int8_t6 1e-2 2e-5 || fail=1
  "$check" compare "$tmp/$m-t0.npy" "$dir/golden.safetensors" logits_int8_t0 1e-2 2e-5 || fail=1
  # bf16 keeps 8 significant bits (fp16 11): a looser sanity bound, so the baseline is known to be right
  "$check" compare "$tmp/$m-bf16.npy" "$dir/golden.safetensors" logits_fp32 3e-2 2e-4 || fail=1
  "$check" closer "$tmp/$m-t6.npy" "$tmp/$m-t0.npy" "$dir/golden.safetensors" logits_fp32 || fail=1
done
exit $fail
