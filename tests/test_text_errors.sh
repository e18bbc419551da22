#!/usr/bin/env bash
# Bad text input (issue 14): each case exits non-zero with exactly one "pp8 CMD: error: ..." line naming
# the file/field/flag, within the time limit, on 1 rank and (marked 2r) on 2 ranks, every rank exiting.
set -u
: "${PP8:?}" "${PP8_GOLDEN:?}" "${PP8_SRC:?}"
[ -d "$PP8_GOLDEN/textgen" ] || { echo "FAIL: golden data missing: $PP8_GOLDEN/textgen"; exit 1; }
read -r -a MPI <<<"${PP8_MPIRUN:-mpirun --allow-run-as-root --oversubscribe}"
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
fail=0; n=0
B="$PP8_GOLDEN/textgen/gen-bloom"; O="$PP8_GOLDEN/textgen/gen-opt"; TK="$PP8_GOLDEN/tokenizers/models"

. "$(dirname "$0")/expect_error.sh"
TWO=("${MPI[@]}" -np 2 "$PP8")

# tokenizer files
mkdir -p "$tmp/empty"
expect "no tokenizer files" "tokenizer.json" -- "$PP8" generate --model "$PP8_GOLDEN/bloom-tiny" --prompt hi
expect "no tokenizer files, --tokenizer suggested" "--tokenizer" -- "$PP8" generate --config "$PP8_SRC/configs/bloom-tiny-test.json" --tokenizer "$tmp/empty" --prompt hi
expect "text with --config and no tokenizer" "--tokenizer" -- "$PP8" generate --config "$PP8_SRC/configs/bloom-tiny-test.json" --prompt hi
cp -r "$B" "$tmp/badjson"; head -c 5000 "$B/tokenizer.json" >"$tmp/badjson/tokenizer.json"
expect "malformed tokenizer.json (2r)" "tokenizer.json" -- "${TWO[@]}" generate --model "$tmp/badjson" --prompt hi
cp -r "$B" "$tmp/unigram"; sed -i 's/"type": *"BPE"/"type": "Unigram"/' "$tmp/unigram/tokenizer.json"
expect "unsupported tokenizer model" "Unigram" -- "$PP8" generate --model "$tmp/unigram" --prompt hi
expect "tokenizer larger than the model's vocab_size" "vocab_size" -- "$PP8" generate --model "$PP8_GOLDEN/bloom-tiny" --tokenizer "$TK/bloom-5k" --prompt hi

# prompts
expect "prompt not valid UTF-8 (byte offset)" "offset 3" -- "$PP8" generate --model "$B" --prompt $'abc\xff def'
expect "prompt not valid UTF-8 (2r)" "offset" -- "${TWO[@]}" generate --model "$B" --prompt $'\xc3('
expect "empty BLOOM prompt" "empty" -- "$PP8" generate --model "$B" --prompt ""
expect "empty BLOOM prompt (2r)" "empty" -- "${TWO[@]}" generate --model "$B" --prompt "ok" --prompt ""
long=$(printf 'word %.0s' $(seq 1 400))
expect "prompt longer than --max-seq-len" "max-seq-len" -- "$PP8" generate --model "$B" --prompt "$long" --max-seq-len 64
expect "OPT prompt longer than max_position_embeddings" "max_position_embeddings" -- "$PP8" generate --model "$O" --prompt "$long$long" --max-new 4
expect "--max-seq-len beyond OPT's positions" "max_position_embeddings" -- "$PP8" generate --model "$O" --prompt hi --max-seq-len 4096
python3 -c "import json
for i in range(48): print(json.dumps('$long' * 2))" >"$tmp/many.jsonl"
expect "prompts larger than the memory plan" "does not fit" -- "$PP8" generate --config "$PP8_SRC/configs/opt-125m.json" --tokenizer "$TK/opt-3k" --prompts-file "$tmp/many.jsonl" --max-new 4 --mem-per-rank 0.4
expect "--prompt together with --tokens" "not both" -- "$PP8" generate --model "$B" --prompt hi --tokens 1,2
expect "--prompt together with --prompts-file" "give one" -- "$PP8" generate --model "$B" --prompt hi --prompts-file "$tmp/many.jsonl"
printf '"one"\n\n{"prompt": "two"}\nthree\n' >"$tmp/bad.jsonl"
expect "bad line in --prompts-file (its number)" "bad.jsonl:4" -- "$PP8" generate --model "$B" --prompts-file "$tmp/bad.jsonl"
printf '{"text": "no prompt field"}\n' >"$tmp/bad2.jsonl"
expect "--prompts-file object without prompt (2r)" "bad2.jsonl:1" -- "${TWO[@]}" generate --model "$B" --prompts-file "$tmp/bad2.jsonl"
expect "--prompts-file missing" "nope.jsonl" -- "$PP8" generate --model "$B" --prompts-file "$tmp/nope.jsonl"

# generation flags
expect "--max-new 0" "max-new 0" -- "$PP8" generate --model "$B" --prompt hi --max-new 0
expect "empty --stop" "--stop" -- "$PP8" generate --model "$B" --prompt hi --stop ""
expect "temperature < 0" "--temperature" -- "$PP8" generate --model "$B" --prompt hi --temperature -0.5
expect "top-p > 1" "--top-p" -- "$PP8" generate --model "$B" --prompt hi --temperature 1 --top-p 1.5
expect "top-p < 0" "--top-p" -- "$PP8" generate --model "$B" --prompt hi --top-p -0.1
expect "min-p > 1" "--min-p" -- "$PP8" generate --model "$B" --prompt hi --min-p 2
expect "min-p < 0" "--min-p" -- "$PP8" generate --model "$B" --prompt hi --min-p -1
expect "top-k < 0" "--top-k" -- "$PP8" generate --model "$B" --prompt hi --top-k -3
expect "repetition penalty 0" "--repetition-penalty" -- "$PP8" generate --model "$B" --prompt hi --repetition-penalty 0
expect "repetition penalty < 0 (2r)" "--repetition-penalty" -- "${TWO[@]}" generate --model "$B" --prompt hi --repetition-penalty -1
expect "old --seed for the weights" "weights-seed" -- "$PP8" logits --config "$PP8_SRC/configs/opt-tiny-test.json" --tokens 1,2 --seed 3 --out "$tmp/x.npy"

# perplexity
expect "perplexity of 1 token" "at least 2 tokens" -- "$PP8" perplexity --model "$B" --tokens 5
expect "perplexity of 1 token (2r)" "at least 2 tokens" -- "${TWO[@]}" perplexity --model "$B" --text "a"
expect "perplexity stride larger than the window" "stride" -- "$PP8" perplexity --model "$B" --tokens 1,2,3,4 --max-length 2 --stride 3
expect "perplexity window longer than --max-seq-len" "max-seq-len" -- "$PP8" perplexity --model "$O" --tokens 1,2,3,4 --max-length 1000
expect "perplexity text not UTF-8" "offset" -- "$PP8" perplexity --model "$B" --text $'ok\x80'

# tokenize / detokenize
expect "tokenize without tokenizer files" "tokenizer.json" -- "$PP8" tokenize --tokenizer "$tmp/empty" --text hi
expect "tokenize invalid UTF-8" "offset" -- "$PP8" tokenize --tokenizer "$TK/bloom-5k" --text $'\xe4\xb8'
expect "detokenize bad id list" "--ids" -- "$PP8" detokenize --tokenizer "$TK/bloom-5k" --ids 1,x

[ $n -ge 38 ] || { echo "FAIL: only $n cases ran"; fail=1; }
echo "$n cases"
exit $fail
