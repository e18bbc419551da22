#!/usr/bin/env bash
# End-to-end golden logits on the GPU (issue 5): `pp8 logits --backend cuda` on every golden checkpoint
# matches transformers' logits with the same tolerances as the CPU (fp16 vs logits_fp32, int8 t=6 / t=0
# vs logits_int8_t6 / _t0), on 1 and 2 ranks (2 ranks share the GPU when there is one). Exits 77
# (skipped, never passed) without a CUDA device.
set -u
: "${PP8:?}" "${PP8_GOLDEN:?}" "${PP8_BUILD:?}"
ndev=$("$PP8" --version 2>/dev/null | sed -n 's/^cuda devices visible: \([0-9]*\).*/\1/p')
if [ -z "$ndev" ] || [ "$ndev" -lt 1 ]; then echo "skipped: no CUDA device (pp8 --version)"; exit 77; fi
[ -d "$PP8_GOLDEN" ] || { echo "FAIL: golden data missing: $PP8_GOLDEN"; exit 1; }
read -r -a MPI <<<"${PP8_MPIRUN:-mpirun --allow-run-as-root --oversubscribe}"
check="$PP8_BUILD/tests/logits_check"
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
fail=0
# 2 ranks: one GPU each, or both on one GPU (--share-gpus, hidden states over MPI through the host)
share=(); [ "$ndev" -lt 2 ] && share=(--share-gpus)
for m in bloom-tiny opt-tiny bloom-bf16-sharded; do
  dir="$PP8_GOLDEN/$m"; g="$dir/golden.safetensors"
  toks=$("$check" tokens "$g") || { fail=1; continue; }
  for np in 1 2; do
    for spec in "fp16 6 logits_fp32" "int8 6 logits_int8_t6" "int8 0 logits_int8_t0"; do
      read -r dt t key <<<"$spec"
      out="$tmp/$m-$np-$dt-$t.npy"
      if ! "${MPI[@]}" -np "$np" "$PP8" logits --backend cuda --model "$dir" --dtype "$dt" --threshold "$t" \
           --tokens "$toks" --out "$out" "${share[@]}"; then
        echo "FAIL: pp8 logits --backend cuda $m $dt t=$t np=$np"; fail=1; continue
      fi
      "$check" compare "$out" "$g" "$key" 1e-2 2e-5 || fail=1
    done
  done
done
exit $fail
