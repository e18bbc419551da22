#!/usr/bin/env bash
# pp8 generate's text output and sampling (issue 14):
#  - one prompt streams to stdout: the streamed bytes, --no-stream's and --jsonl's "text" are the same
#    completion; --echo prints the prompt first;
#  - a stop string is cut from the text (also when it spans tokens), finish_reason "stop", the ids
#    end with the token that completed it, and the streamed output never shows it;
#  - sampling: the same --seed gives the same text and ids for P = 1, 2, 3 ranks and both schedules;
#    another seed gives other text; a sequence's draws depend only on (seed, its index, its step): the
#    first sequence of [A, B] and of [A, C] is the same;
#  - EOS ends a sequence (finish_reason "stop", the EOS id last in "ids", not in the text).
set -u
: "${PP8:?}" "${PP8_GOLDEN:?}" "${PP8_SRC:?}"
[ -d "$PP8_GOLDEN/textgen" ] || { echo "FAIL: golden data missing: $PP8_GOLDEN/textgen"; exit 1; }
read -r -a MPI <<<"${PP8_MPIRUN:-mpirun --allow-run-as-root --oversubscribe}"
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
fail=0; checks=0
B="$PP8_GOLDEN/textgen/gen-bloom"
ok() { checks=$((checks + 1)); echo "ok: $*"; }
bad() { checks=$((checks + 1)); echo "FAIL: $*"; fail=1; }
field() { python3 -c "import json,sys; o=[json.loads(l) for l in open(sys.argv[1], encoding='utf-8')][int(sys.argv[2])]; v=o[sys.argv[3]]; sys.stdout.write(v if isinstance(v, str) else json.dumps(v))" "$@"; }

# 1. streaming, --no-stream, --jsonl, --echo (BLOOM p01 greedy runs its 24 tokens)
P="The quick brown fox jumps over the lazy dog."
"$PP8" generate --model "$B" --dtype fp16 --prompt "$P" --max-new 24 >"$tmp/stream.txt" 2>"$tmp/err" || bad "stream: $(cat "$tmp/err")"
"$PP8" generate --model "$B" --dtype fp16 --prompt "$P" --max-new 24 --no-stream >"$tmp/nostream.txt" 2>/dev/null || bad "--no-stream"
"$PP8" generate --model "$B" --dtype fp16 --prompt "$P" --max-new 24 --echo >"$tmp/echo.txt" 2>/dev/null || bad "--echo"
"$PP8" generate --model "$B" --dtype fp16 --prompt "$P" --max-new 24 --jsonl >"$tmp/one.jsonl" 2>/dev/null || bad "--jsonl"
{ field "$tmp/one.jsonl" 0 text; echo; } >"$tmp/want.txt"
cmp -s "$tmp/stream.txt" "$tmp/want.txt" && ok "streamed output = --jsonl text + newline ($(wc -c <"$tmp/want.txt") bytes)" || bad "streamed output differs from --jsonl text"
cmp -s "$tmp/nostream.txt" "$tmp/want.txt" && ok "--no-stream = streamed" || bad "--no-stream differs"
{ printf '%s' "$P"; cat "$tmp/want.txt"; } | cmp -s - "$tmp/echo.txt" && ok "--echo = prompt + completion" || bad "--echo output wrong"
grep -q 'text [0-9.]* ms/token' "$tmp/err" && ok "the run reports text ms/token beside decode ms/token: $(grep -o 'decode.*' "$tmp/err")" || bad "no text ms/token line: $(cat "$tmp/err")"

# 2. stop strings: cut the greedy completion of p00 ("Hello, world!" -> " test-1 O testja") at "1 O",
#    which spans the tokens "-1" and " O"
"$PP8" generate --model "$B" --dtype fp16 --prompt "Hello, world!" --max-new 24 --jsonl >"$tmp/full.jsonl" 2>/dev/null
full=$(field "$tmp/full.jsonl" 0 text)
for stop in "1 O" "test" "ja" "zzz-never"; do
  "$PP8" generate --model "$B" --dtype fp16 --prompt "Hello, world!" --max-new 24 --jsonl --stop "$stop" --stop "qqq" >"$tmp/s.jsonl" 2>/dev/null || bad "--stop $stop"
  "$PP8" generate --model "$B" --dtype fp16 --prompt "Hello, world!" --max-new 24 --stop "$stop" --stop "qqq" >"$tmp/s.txt" 2>/dev/null
  text=$(field "$tmp/s.jsonl" 0 text); reason=$(field "$tmp/s.jsonl" 0 finish_reason)
  if [ "$stop" = zzz-never ]; then want="$full"; else want="${full%%"$stop"*}"; fi
  if [ "$text" = "$want" ] && [ "$(cat "$tmp/s.txt")" = "$want" ] && { [ "$stop" = zzz-never ] || [ "$reason" = stop ]; } &&
     ! grep -qF -- "$stop" "$tmp/s.txt"; then ok "--stop '$stop': text '$text', finish $reason, not in the stream"
  else bad "--stop '$stop': text '$text' (want '$want'), finish $reason, stream '$(cat "$tmp/s.txt")'"; fi
done
ids_full=$(field "$tmp/full.jsonl" 0 ids); "$PP8" generate --model "$B" --dtype fp16 --prompt "Hello, world!" --max-new 24 --jsonl --stop "1 O" >"$tmp/s.jsonl" 2>/dev/null
ids_stop=$(field "$tmp/s.jsonl" 0 ids)
python3 -c "import json,sys; a,b=json.loads(sys.argv[1]),json.loads(sys.argv[2]); sys.exit(0 if b==a[:len(b)] and len(b)==3 else 1)" "$ids_full" "$ids_stop" \
  && ok "--stop '1 O' keeps the ids up to the token that completed it: $ids_stop of $ids_full" || bad "--stop ids $ids_stop vs $ids_full"

# 3. EOS: p00's greedy run ends on EOS (id 2) after 6 tokens
ids=$(field "$tmp/full.jsonl" 0 ids); reason=$(field "$tmp/full.jsonl" 0 finish_reason)
[ "$ids" = "[1813, 958, 466, 1813, 4499, 2]" ] && [ "$reason" = stop ] && ok "EOS ends the sequence: ids $ids, finish $reason" || bad "EOS: ids $ids finish $reason"

# 4. sampling across ranks and schedules: a 5-layer random BLOOM with the bloom-5k tokenizer
sed 's/"vocab_size": 256/"vocab_size": 5000/' "$PP8_SRC/configs/bloom-tiny-test.json" >"$tmp/cfg.json"
S=(--config "$tmp/cfg.json" --tokenizer "$PP8_GOLDEN/tokenizers/models/bloom-5k" --dtype fp16 --temperature 0.9 --top-k 40 --top-p 0.95
   --max-new 12 --jsonl --micro-batches 2 --prompt "Once upon a time" --prompt "Le chat")
strip() { sed -E 's/, "text_ms_per_token": [0-9.]+, "decode_ms_per_token": [0-9.]+//' "$1"; }
"$PP8" generate "${S[@]}" --seed 7 >"$tmp/ref.jsonl" 2>"$tmp/err" || bad "sampling: $(cat "$tmp/err")"
for p in 1 2 3; do
  for sch in pipelined naive; do
    "${MPI[@]}" -np $p "$PP8" generate "${S[@]}" --seed 7 --schedule $sch >"$tmp/r.jsonl" 2>"$tmp/err" || bad "P=$p $sch: $(cat "$tmp/err")"
    cmp -s <(strip "$tmp/ref.jsonl") <(strip "$tmp/r.jsonl") && ok "--seed 7: P=$p $sch gives the same text and ids" || bad "--seed 7: P=$p $sch differs"
  done
done
"$PP8" generate "${S[@]}" --seed 8 >"$tmp/other.jsonl" 2>/dev/null
cmp -s <(strip "$tmp/ref.jsonl") <(strip "$tmp/other.jsonl") && bad "--seed 8 gives the same output as --seed 7" || ok "--seed 8 differs from --seed 7"
G=(--config "$tmp/cfg.json" --tokenizer "$PP8_GOLDEN/tokenizers/models/bloom-5k" --dtype fp16 --temperature 0.9 --top-k 40 --top-p 0.95
   --max-new 12 --jsonl)
"$PP8" generate "${G[@]}" --micro-batches 1 --seed 7 --prompt "Once upon a time" --prompt "Le chat" >"$tmp/ab.jsonl" 2>/dev/null
"$PP8" generate "${G[@]}" --micro-batches 1 --seed 7 --prompt "Once upon a time" --prompt "Ein ganz anderer Satz hier" >"$tmp/ac.jsonl" 2>/dev/null
a=$(field "$tmp/ab.jsonl" 0 ids); c=$(field "$tmp/ac.jsonl" 0 ids); b2=$(field "$tmp/ab.jsonl" 1 ids)
[ -n "$a" ] && [ "$a" = "$c" ] && ok "sequence 0 draws the same ids beside another sequence 1: $a" || bad "sequence 0: $a vs $c"
"$PP8" generate "${G[@]}" --seed 7 --prompt "Le chat" >"$tmp/b.jsonl" 2>/dev/null
b=$(field "$tmp/b.jsonl" 0 ids)
[ "$b" != "$b2" ] && ok "the same prompt as sequence 0 and as sequence 1 draws from different streams" || bad "index does not enter the stream: $b"

[ $checks -ge 19 ] || { echo "FAIL: only $checks checks ran"; fail=1; }
echo "$checks checks"
exit $fail
