#!/usr/bin/env bash
# Pipeline parallelism (issue 4): under mpirun, P = 1..4 ranks (as far as layers allow) give bitwise
# identical logits to P = 1 in fp16 and int8; batched generation with sequences of different lengths
# gives identical ids across P and across both schedules for the same --micro-batches M (1, 2, 3),
# including M larger than the batch and batches that M does not divide; and 1 vs 2 threads per rank
# give bit-identical logits.
# With --gpu (test_gpu_pipeline): the same on the CUDA backend, every rank on one GPU with --share-gpus
# (hidden states staged through host memory over MPI; NCCL needs a GPU per rank: test_gpu_nccl), without
# the thread-count part, plus CUDA graphs against kernels launched one by one. Exits 77 (skipped, never
# passed) without a CUDA device. With --gpu-nccl ROUTE (test_gpu_pipeline_nccl): as --gpu, but the ranks
# sharing the GPU pass hidden states over NCCL (PP8_NCCL_SHARED_GPU=ROUTE, hostid | multi: a test route,
# parallel/nccl_host.h), and every multi-rank run must say so.
set -u
: "${PP8:?}" "${PP8_GOLDEN:?}" "${PP8_BUILD:?}" "${PP8_SRC:?}"
[ -d "$PP8_GOLDEN" ] || { echo "FAIL: golden data missing: $PP8_GOLDEN"; exit 1; }
read -r -a MPI <<<"${PP8_MPIRUN:-mpirun --allow-run-as-root --oversubscribe}"
gpu=0; extra=(); nccl=""
if [ "${1:-}" = --gpu ] || [ "${1:-}" = --gpu-nccl ]; then
  ndev=$("$PP8" --version 2>/dev/null | sed -n 's/^cuda devices visible: \([0-9]*\).*/\1/p')
  if [ -z "$ndev" ] || [ "$ndev" -lt 1 ]; then echo "skipped: no CUDA device (pp8 --version)"; exit 77; fi
  gpu=1; extra=(--backend cuda --share-gpus)
fi
if [ "${1:-}" = --gpu-nccl ]; then
  "$PP8" --version | grep -q "^transport: .*nccl" || { echo "FAIL: pp8 --version lists no NCCL transport"; exit 1; }
  nccl=${2:?--gpu-nccl needs a route: hostid or multi}
  export PP8_NCCL_SHARED_GPU=$nccl
fi
check="$PP8_BUILD/tests/logits_check"
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
fail=0; runs=0
mp() {
  local p=$1; shift
  "${MPI[@]}" -np "$p" "$PP8" "$@" "${extra[@]}" 2>"$tmp/err" || return 1
  # --gpu-nccl: the transport must have been NCCL, not the MPI fallback
  if [ -n "$nccl" ] && [ "$p" -gt 1 ] && ! grep -q "hidden states go over NCCL" "$tmp/err"; then
    echo "pp8 did not use the NCCL transport (PP8_NCCL_SHARED_GPU=$nccl)" >> "$tmp/err"; return 1
  fi
}

# logits: golden checkpoints and random-weight configs with more layers than ranks (uneven splits)
models=("--model $PP8_GOLDEN/bloom-tiny:2:1" "--model $PP8_GOLDEN/opt-tiny:2:1" "--model $PP8_GOLDEN/bloom-bf16-sharded:3:1"
        "--config $PP8_SRC/configs/bloom-tiny-test.json:4:3" "--config $PP8_SRC/configs/opt-tiny-test.json:4:3")
toks=$("$check" tokens "$PP8_GOLDEN/bloom-tiny/golden.safetensors")
for entry in "${models[@]}"; do
  IFS=: read -r src maxp mb <<<"$entry"
  for dt in fp16 int8; do
    for p in $(seq 1 "$maxp"); do
      {
        out="$tmp/l-$p-$mb.npy"
        # shellcheck disable=SC2086
        if ! mp "$p" logits $src --dtype $dt --tokens "$toks" --micro-batches $mb --out "$out"; then
          echo "FAIL: logits $src $dt P=$p M=$mb: $(cat "$tmp/err")"; fail=1; continue
        fi
        runs=$((runs + 1))
        if [ "$p" -gt 1 ] && ! cmp -s "$out" "$tmp/l-1-$mb.npy"; then
          echo "FAIL: logits $src $dt M=$mb: P=$p differs from P=1"; fail=1
        fi
      }
    done
  done
done

# thread count: 1 and 2 threads per rank give bit-identical logits (DESIGN.md, Determinism)
[ $gpu = 1 ] || for dt in fp16 int8 bf16; do
  for th in 1 2; do
    "$PP8" logits --config "$PP8_SRC/configs/opt-tiny-test.json" --dtype $dt --threads $th --tokens "$toks" \
      --out "$tmp/t$th.npy" 2>"$tmp/err" || { echo "FAIL: logits --threads $th: $(cat "$tmp/err")"; fail=1; }
    runs=$((runs + 1))
  done
  cmp -s "$tmp/t1.npy" "$tmp/t2.npy" || { echo "FAIL: $dt logits differ between 1 and 2 threads"; fail=1; }
done

# GPU: CUDA graphs (decode steps of <= 8 rows replay a captured graph) give the bits of launching the
# kernels one by one (PP8_CUDA_GRAPHS=0): logits of 5 tokens, and generated ids of 2 ranks
if [ $gpu = 1 ]; then
  for dt in fp16 int8; do
    for g in 1 0; do
      PP8_CUDA_GRAPHS=$g mp 1 logits --config "$PP8_SRC/configs/opt-tiny-test.json" --dtype $dt --tokens 1,2,3,4,5 \
        --out "$tmp/g$g.npy" || { echo "FAIL: logits PP8_CUDA_GRAPHS=$g: $(cat "$tmp/err")"; fail=1; }
      PP8_CUDA_GRAPHS=$g mp 2 generate --config "$PP8_SRC/configs/bloom-tiny-test.json" --dtype $dt \
        --tokens "1,2,3;7,8,9,10,11;5" --max-new 6 --micro-batches 2 >"$tmp/g$g.txt" ||
        { echo "FAIL: generate PP8_CUDA_GRAPHS=$g: $(cat "$tmp/err")"; fail=1; }
      runs=$((runs + 2))
    done
    cmp -s "$tmp/g1.npy" "$tmp/g0.npy" || { echo "FAIL: $dt logits differ with and without CUDA graphs"; fail=1; }
    cmp -s "$tmp/g1.txt" "$tmp/g0.txt" || { echo "FAIL: $dt generated ids differ with and without CUDA graphs"; fail=1; }
  done
fi

# generate: 4 sequences of lengths 3, 5, 1, 4; M = 1, 2, 3 (3 does not divide 4) and 6 (> batch)
batch="1,2,3;7,8,9,10,11;5;4,4,4,4"
for combo in bloom-tiny-test:int8:"1 2 3 6":"1 2 3 4" opt-tiny-test:int8:"2 3":"1 2 4" opt-tiny-test:fp16:"3":"1 3"; do
  IFS=: read -r cfg dt mbs ps <<<"$combo"
  {
    for mb in $mbs; do
      ref=""
      for p in $ps; do
        for sched in pipelined naive; do
          if ! mp "$p" generate --config "$PP8_SRC/configs/$cfg.json" --dtype $dt --tokens "$batch" --max-new 5 \
               --micro-batches $mb --schedule $sched >"$tmp/g.txt"; then
            echo "FAIL: generate $cfg $dt P=$p M=$mb $sched: $(cat "$tmp/err")"; fail=1; continue
          fi
          runs=$((runs + 1))
          lines=$(wc -l <"$tmp/g.txt")
          [ "$lines" -eq 4 ] || { echo "FAIL: generate printed $lines lines, want 4"; fail=1; }
          if [ -z "$ref" ]; then ref=$(cat "$tmp/g.txt");
          elif [ "$(cat "$tmp/g.txt")" != "$ref" ]; then
            echo "FAIL: generate $cfg $dt M=$mb: P=$p $sched gives different ids"; diff <(echo "$ref") "$tmp/g.txt"; fail=1
          fi
        done
      done
    done
  }
done
echo "$runs runs, $([ $fail = 0 ] && echo all identical || echo FAILURES)"
exit $fail
