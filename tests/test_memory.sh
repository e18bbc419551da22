#!/usr/bin/env bash
# Honest memory (issue 17): each rank's peak resident memory (VmHWM, the load included), as pp8 bench
# reports it in runs[].peak_rss_bytes, stays within its plan (runs[].plan_bytes) + 5% + 64 MiB, for int8
# and bf16, on two model shapes (an OPT-125M fp16 checkpoint and a 4-layer BLOOM-560M bf16 one, written
# by make_checkpoint.py), on 1 and 2 ranks. Each checkpoint is larger than that slack, so a loader that
# kept the 16-bit pages it read (or staged a whole embedding) would fail here. Then one rank under a
# `ulimit -v` below its plan (a wrapper for that rank only): one error line naming the rank and what it
# tried to allocate, every rank gone, exit non-zero.
set -euo pipefail
PP8=${PP8:?} SRC=${PP8_SRC:?}
read -r -a MPI <<<"${PP8_MPIRUN:?}"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fails=0
ok() { echo "ok: $*"; }
bad() { echo "FAIL: $*"; fails=$((fails + 1)); }

python3 "$SRC/tests/make_checkpoint.py" "$SRC/configs/opt-125m.json" "$tmp/opt" --dtype F16
python3 "$SRC/tests/make_checkpoint.py" "$SRC/configs/bloom-560m.json" "$tmp/bloom" --dtype BF16 --layers 4

for model in opt bloom; do
  ck=$(stat -c %s "$tmp/$model/model.safetensors")
  for np in 1 2; do
    json=$tmp/$model-$np.json
    if ! timeout 300 "${MPI[@]}" -np "$np" "$PP8" bench --model "$tmp/$model" --dtype int8,bf16 --batch 1 \
      --prompt-len 16 --gen 4 --threads 1 --json "$json" >"$tmp/out" 2>&1; then
      cat "$tmp/out"
      bad "$model on $np rank(s): pp8 bench failed"
      continue
    fi
    grep "peak resident" "$tmp/out" || bad "$model on $np rank(s): no peak resident memory line"
    python3 - "$json" "$model" "$np" "$ck" <<'PY' || fails=$((fails + 1))
import json, sys
j, model, np_, ck = json.load(open(sys.argv[1])), sys.argv[2], sys.argv[3], int(sys.argv[4])
bad = 0
for r in j["runs"]:
    for q, (peak, plan) in enumerate(zip(r["peak_rss_bytes"], r["plan_bytes"])):
        slack = 0.05 * plan + 64 * 2**20
        what = f"{model} {r['dtype']} batch {r['batch']} on {np_} rank(s), rank {q}"
        if ck <= slack:
            print(f"FAIL: {what}: the checkpoint ({ck} B) is not larger than the slack ({slack:.0f} B): proves nothing")
            bad += 1
        if not (0 < peak <= plan + slack):
            print(f"FAIL: {what}: peak RSS {peak / 1e6:.1f} MB > plan {plan / 1e6:.1f} MB + 5% + 64 MiB")
            bad += 1
        else:
            print(f"ok: {what}: peak RSS {peak / 1e6:.1f} MB, plan {plan / 1e6:.1f} MB ({100 * (peak - plan) / plan:+.1f}%)")
sys.exit(1 if bad else 0)
PY
  done
done

# one rank under ulimit -v at 80% of its plan: bloom-560m's shape, random weights, bf16, 2 ranks
cfg=$SRC/configs/bloom-560m.json
timeout 120 "${MPI[@]}" -np 2 "$PP8" bench --config "$cfg" --dtype bf16 --batch 1 --prompt-len 8 --gen 2 --threads 1 \
  --json "$tmp/plan.json" >/dev/null 2>&1
limit_kb=$(python3 -c "import json; p=json.load(open('$tmp/plan.json'))['plan'][1]['bytes']['total']; print(int(0.8 * p / 1024))")
cat >"$tmp/vlimit.sh" <<EOF
#!/bin/sh
ulimit -v $limit_kb
exec "\$@"
EOF
chmod +x "$tmp/vlimit.sh"
start=$(date +%s.%N)
set +e
timeout 60 "${MPI[@]}" -np 1 "$PP8" bench --config "$cfg" --dtype bf16 --batch 1 --prompt-len 8 --gen 2 --threads 1 \
  : -np 1 "$tmp/vlimit.sh" "$PP8" bench --config "$cfg" --dtype bf16 --batch 1 --prompt-len 8 --gen 2 --threads 1 \
  >"$tmp/v.out" 2>"$tmp/v.err"
rc=$?
set -e
secs=$(python3 -c "import time; print(round(time.time() - $start, 1))")
[ "$rc" -ne 0 ] && [ "$rc" -ne 124 ] && ok "ulimit -v $limit_kb on rank 1: exit $rc after $secs s" ||
  bad "ulimit -v on rank 1: exit $rc (124 = hung)"
n=$(grep -c "error:" "$tmp/v.err" || true)
line=$(grep "error:" "$tmp/v.err" | head -1)
if [ "$n" = 1 ] && [[ "$line" == *"rank 1: cannot allocate"*"GB for this rank's weights"*"ulimit -v $limit_kb"* ]]; then
  ok "one line: $line"
else
  cat "$tmp/v.err"
  bad "ulimit -v on rank 1: expected one 'rank 1: cannot allocate ... ulimit -v' line, got $n"
fi
sleep 0.5
if pgrep -f "$tmp/vlimit.sh|pp8 bench --config $cfg" >/dev/null; then bad "pp8 processes left after the refusal"; else ok "every rank exited"; fi

[ "$fails" = 0 ] && echo "test_memory: all passed" || { echo "test_memory: $fails failure(s)"; exit 1; }
