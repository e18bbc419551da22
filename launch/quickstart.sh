#!/usr/bin/env bash
# pp8 quickstart: install what is missing, build, then the main job: an mpirun benchmark of a real
# model shape (OPT-1.3B, seeded random weights, no download) at batch 1, 8, 32, int8 and bf16 side by
# side on 2 ranks, and the rank counts each dtype needs under a memory budget (pp8 plan).
#   bash launch/quickstart.sh [pp8 bench options, e.g. --config configs/bloom-560m.json]
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
bash launch/setup.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j "$(nproc)" >/dev/null
mkdir -p out
ranks=2; [ "$(nproc)" -ge 2 ] || ranks=1
echo "== pp8 plan: ranks needed for OPT-1.3B under a 2 GiB-per-rank budget (batch 1, 8, 32)"
./build/pp8 plan --config configs/opt-1.3b.json --mem-per-rank 2 --compare --batch 1,8,32 --json out/plan-opt-1.3b.json |
  sed -n "/^modelled ms per token/,/^\$/p"
echo "== pp8 plan: BLOOM-176B on A100-80GB, bf16 vs int8 (modelled; the full breakdown: pp8 plan ... --compare)"
./build/pp8 plan --config configs/bloom-176b.json --gpu a100-80g --compare --json out/plan-bloom-176b-a100-80g.json | sed -n '1,/^$/p;/^modelled ms per token/,/^$/p'
plans=()
for m in bloom-176b opt-175b opt-66b bloom-7b1; do
  for g in a100-40g a100-80g; do
    ./build/pp8 plan --config "configs/$m.json" --gpu "$g" --compare --json "out/plan-$m-$g.json" >/dev/null
    plans+=("out/plan-$m-$g.json")
  done
done
echo "== pp8 bench: $ranks ranks, int8 vs bf16, batch 1, 8, 32"
bash launch/pp8run -np "$ranks" -- pp8 bench --config configs/opt-1.3b.json --dtype int8,bf16 --batch 1,8,32 \
  --prompt-len 32 --gen 16 --json out/bench-opt-1.3b.json "$@"
bash launch/plot.sh out/bench-opt-1.3b.json --plan "${plans[@]}" --out out >/dev/null 2>&1 &&
  echo "plots: out/ms_per_token.png out/gpus_per_model.png" || true
