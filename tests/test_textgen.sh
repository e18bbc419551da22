#!/usr/bin/env bash
# Text in, text out against transformers (issue 14): for gen-bloom and gen-opt (hub-style checkpoint
# directories with their own tokenizer files), `pp8 generate --dtype fp16 --jsonl` on every golden
# prompt gives transformers' greedy ids and text, and its repetition-penalty (1.3) ids and text, up to
# the first step whose fp32 top-1/top-2 margin is below 0.04 (textgen_check.py). All prompts run as one
# batch; the greedy runs once more on 2 ranks, which must print the same bytes.
set -u
: "${PP8:?}" "${PP8_GOLDEN:?}" "${PP8_SRC:?}"
G="$PP8_GOLDEN/textgen"
[ -d "$G" ] || { echo "FAIL: golden data missing: $G"; exit 1; }
read -r -a MPI <<<"${PP8_MPIRUN:-mpirun --allow-run-as-root --oversubscribe}"
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
fail=0
for m in bloom:171:131 opt:247:191; do
  IFS=: read -r arch min_greedy min_rep <<<"$m"
  ref="$G/gen-$arch.generate.jsonl"
  python3 -c "import json,sys
for l in open(sys.argv[1], encoding='utf-8'): print(json.dumps(json.loads(l)['prompt']))" "$ref" >"$tmp/prompts.jsonl"
  for run in greedy rep_penalty; do
    extra=(); [ $run = rep_penalty ] && extra=(--repetition-penalty 1.3)
    if ! "$PP8" generate --model "$G/gen-$arch" --dtype fp16 --jsonl --prompts-file "$tmp/prompts.jsonl" --max-new 24 \
        "${extra[@]}" >"$tmp/$run.jsonl" 2>"$tmp/err"; then
      echo "FAIL: gen-$arch $run: $(cat "$tmp/err")"; fail=1; continue
    fi
    min=$min_greedy; [ $run = rep_penalty ] && min=$min_rep
    python3 "$PP8_SRC/tests/textgen_check.py" "$ref" $run "$tmp/$run.jsonl" "$min" || fail=1
  done
  "${MPI[@]}" -np 2 "$PP8" generate --model "$G/gen-$arch" --dtype fp16 --jsonl --prompts-file "$tmp/prompts.jsonl" \
    --max-new 24 >"$tmp/greedy2.jsonl" 2>"$tmp/err" || { echo "FAIL: gen-$arch on 2 ranks: $(cat "$tmp/err")"; fail=1; }
  # text_ms_per_token and decode_ms_per_token are timings; everything else must be the same bytes
  strip() { sed -E 's/, "text_ms_per_token": [0-9.]+, "decode_ms_per_token": [0-9.]+//' "$1"; }
  if cmp -s <(strip "$tmp/greedy.jsonl") <(strip "$tmp/greedy2.jsonl"); then echo "ok: gen-$arch: 2 ranks print the same JSON Lines"
  else echo "FAIL: gen-$arch: 2 ranks differ from 1:"; diff <(strip "$tmp/greedy.jsonl") <(strip "$tmp/greedy2.jsonl") | head -5; fail=1; fi
done
exit $fail
