#!/usr/bin/env bash
# pp8 perplexity (issue 14): Hugging Face's sliding-window perplexity.
#  1. One window over each golden checkpoint's tokens: pp8's mean NLL (fp16) equals the one transformers'
#     fp32 logits give (logits_fp32 in golden.safetensors) within 1e-3 relative. These random models
#     have NLLs of hundreds of nats, so mean_nll is compared, not ppl.
#  2. Several windows (stride < window): the reference is the NLL computed from `pp8 logits` on each
#     window's own tokens, only the tokens no earlier window scored (the guide's labels[:, :-trg_len] =
#     -100), summed over windows; within 1e-6 relative. Also under mpirun with 2 ranks (the last rank
#     computes the loss), which must give the same numbers.
#  3. Text in: --file and --text give the same result, with the BOS of an OPT tokenizer once in front.
set -u
: "${PP8:?}" "${PP8_GOLDEN:?}" "${PP8_BUILD:?}"
[ -d "$PP8_GOLDEN" ] || { echo "FAIL: golden data missing: $PP8_GOLDEN"; exit 1; }
read -r -a MPI <<<"${PP8_MPIRUN:-mpirun --allow-run-as-root --oversubscribe}"
check="$PP8_BUILD/tests/logits_check"
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
fail=0; compared=0
json_num() { python3 -c "import json,sys; v=json.load(open(sys.argv[1]))[sys.argv[2]]; print('null' if v is None else repr(v))" "$1" "$2"; }
close() { # A B RTOL -> exit 0 when |A-B| <= RTOL*|B|
  python3 -c "import sys; a,b,t=map(float,sys.argv[1:]); sys.exit(0 if abs(a-b) <= t*abs(b) else 1)" "$1" "$2" "$3"; }

for m in bloom-tiny opt-tiny bloom-bf16-sharded; do
  dir="$PP8_GOLDEN/$m"
  toks=$("$check" tokens "$dir/golden.safetensors") || { echo "FAIL: cannot read $dir/golden.safetensors"; fail=1; continue; }
  T=$(echo "$toks" | tr ',' '\n' | wc -l)
  # 1. one window
  read -r sum n < <("$check" nll "$dir/golden.safetensors" logits_fp32 "$toks" 1)
  ref=$(python3 -c "print($sum / $n)")
  if ! "$PP8" perplexity --model "$dir" --dtype fp16 --tokens "$toks" --max-length "$T" --json "$tmp/p.json" >"$tmp/out" 2>"$tmp/err"; then
    echo "FAIL: $m one window: $(cat "$tmp/err")"; fail=1; continue
  fi
  got=$(json_num "$tmp/p.json" mean_nll); ntok=$(json_num "$tmp/p.json" tokens); nwin=$(json_num "$tmp/p.json" windows)
  if close "$got" "$ref" 1e-3 && [ "$ntok" = "$((T - 1))" ] && [ "$nwin" = 1 ]; then
    echo "ok: $m one window of $T tokens: mean_nll $got vs transformers fp32 $ref ($ntok scored)"
  else
    echo "FAIL: $m one window: pp8 mean_nll $got tokens $ntok windows $nwin, transformers fp32 $ref over $n tokens"; fail=1
  fi
  grep -q "^ppl [0-9.e+inf]* mean_nll $(printf '%.6f' "$got") tokens $ntok windows 1$" "$tmp/out" || {
    echo "FAIL: $m: stdout line is not 'ppl P mean_nll X tokens N windows W': $(cat "$tmp/out")"; fail=1; }
  compared=$((compared + 1))

  # 2. several windows, reference from pp8 logits per window
  for LS in "8 3" "6 6" "10 1"; do
    read -r L S <<<"$LS"
    IFS=, read -r -a t <<<"$toks"
    total=0; count=0; prev=0; begin=0; wins=0
    while [ "$begin" -lt "$T" ]; do
      end=$((begin + L < T ? begin + L : T)); trg=$((end - prev)); len=$((end - begin))
      lo=$((len - trg > 1 ? len - trg : 1))
      w=$(IFS=,; echo "${t[*]:begin:len}")
      "$PP8" logits --model "$dir" --dtype fp16 --tokens "$w" --out "$tmp/w.npy" 2>"$tmp/err" || { echo "FAIL: logits: $(cat "$tmp/err")"; fail=1; }
      read -r s c < <("$check" nll "$tmp/w.npy" "$w" "$lo")
      total=$(python3 -c "print(repr($total + $s))"); count=$((count + c)); wins=$((wins + 1))
      prev=$end; [ "$end" -eq "$T" ] && break; begin=$((begin + S))
    done
    ref=$(python3 -c "print(repr($total / $count))")
    for np in 1 2; do
      if [ "$np" = 1 ]; then cmd=("$PP8"); else cmd=("${MPI[@]}" -np 2 "$PP8"); fi
      if ! "${cmd[@]}" perplexity --model "$dir" --dtype fp16 --tokens "$toks" --max-length "$L" --stride "$S" \
          --json "$tmp/p$np.json" >/dev/null 2>"$tmp/err"; then
        echo "FAIL: $m windows $L/$S on $np rank(s): $(cat "$tmp/err")"; fail=1; continue
      fi
      got=$(json_num "$tmp/p$np.json" mean_nll); ntok=$(json_num "$tmp/p$np.json" tokens); nwin=$(json_num "$tmp/p$np.json" windows)
      if close "$got" "$ref" 1e-6 && [ "$ntok" = "$count" ] && [ "$nwin" = "$wins" ]; then
        echo "ok: $m max-length $L stride $S, $np rank(s): mean_nll $got = per-window reference $ref ($ntok tokens, $nwin windows)"
      else
        echo "FAIL: $m max-length $L stride $S, $np rank(s): mean_nll $got tokens $ntok windows $nwin; reference $ref $count $wins"; fail=1
      fi
      compared=$((compared + 1))
    done
    cmp -s <(json_num "$tmp/p1.json" mean_nll) <(json_num "$tmp/p2.json" mean_nll) || { echo "FAIL: $m $L/$S: 1 and 2 ranks differ"; fail=1; }
  done
done

# 3. text in (gen-opt: OPT's tokenizer puts </s> in front once)
G="$PP8_GOLDEN/textgen/gen-opt"
printf 'The quick brown fox jumps over the lazy dog. Perplexity is exp of the mean NLL.\n' >"$tmp/text.txt"
ids=$("$PP8" tokenize --tokenizer "$G" --file "$tmp/text.txt" 2>"$tmp/err") || { echo "FAIL: tokenize: $(cat "$tmp/err")"; fail=1; }
case "$ids" in 2,*) ;; *) echo "FAIL: OPT tokenize does not start with the BOS 2: $ids"; fail=1 ;; esac
"$PP8" perplexity --model "$G" --dtype fp16 --file "$tmp/text.txt" --max-length 16 --stride 8 --json "$tmp/f.json" >/dev/null 2>"$tmp/err" || { echo "FAIL: --file: $(cat "$tmp/err")"; fail=1; }
"$PP8" perplexity --model "$G" --dtype fp16 --text "$(cat "$tmp/text.txt")"$'\n' --max-length 16 --stride 8 --json "$tmp/t.json" >/dev/null 2>"$tmp/err" || { echo "FAIL: --text: $(cat "$tmp/err")"; fail=1; }
"$PP8" perplexity --model "$G" --dtype fp16 --tokens "$ids" --max-length 16 --stride 8 --json "$tmp/i.json" >/dev/null 2>"$tmp/err" || { echo "FAIL: --tokens: $(cat "$tmp/err")"; fail=1; }
a=$(json_num "$tmp/f.json" mean_nll); b=$(json_num "$tmp/t.json" mean_nll); c=$(json_num "$tmp/i.json" mean_nll)
if [ "$a" = "$b" ] && [ "$a" = "$c" ]; then echo "ok: --file, --text and --tokens (with the BOS) agree: mean_nll $a"; compared=$((compared + 1))
else echo "FAIL: --file $a, --text $b, --tokens $c differ"; fail=1; fi

[ "$compared" -ge 22 ] || { echo "FAIL: only $compared comparisons ran"; fail=1; }
echo "$compared comparisons"
exit $fail
