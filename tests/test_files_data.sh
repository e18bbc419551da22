#!/usr/bin/env bash
# Files are data (issue 17), through the command line:
#  1. hostile shard names in model.safetensors.index.json ('/', '..', an absolute path, '\') are refused
#     with one line naming the index and the shard, though the file they point at exists;
#  2. a Hugging Face cache layout (models--org--name/snapshots/<commit>/*, every file a relative symbolic
#     link to ../../blobs/<hash>), as the snapshot and through a link to it, gives the plain directory's
#     output, byte for byte: logits (1 and 2 ranks, sharded), generate and perplexity with the model's own
#     tokenizer (tokenizer.json; vocab.json + merges.txt), tokenize; quantize from it writes the same
#     checkpoint and refuses an --out that is the model through a link;
#  3. config sizes whose products overflow are refused naming the field, and so are planner byte counts
#     (KV cache of a huge batch x sequence length);
#  4. a shard truncated while 2 ranks load it: every rank exits within 10 s, non-zero, and one line names
#     the rank and the file.
# argv[1]: the test_files_data binary (writes the big checkpoint for 4).
set -u
: "${PP8:?}" "${PP8_GOLDEN:?}" "${PP8_SRC:?}"
helper=${1:?usage: test_files_data.sh TEST_FILES_DATA_BINARY}
[ -d "$PP8_GOLDEN/bloom-bf16-sharded" ] && [ -d "$PP8_GOLDEN/textgen/gen-bloom" ] && [ -d "$PP8_GOLDEN/textgen/gen-opt" ] ||
  { echo "FAIL: golden data missing: $PP8_GOLDEN"; exit 1; }
read -r -a MPI <<<"${PP8_MPIRUN:-mpirun --allow-run-as-root --oversubscribe}"
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
fail=0; n=0
. "$(dirname "$0")/expect_error.sh"
S="$PP8_GOLDEN/bloom-bf16-sharded"
ok() { n=$((n + 1)); echo "ok: $*"; }
bad() { n=$((n + 1)); echo "FAIL: $*"; fail=1; }

# ---- 1. shard names ------------------------------------------------------------------------------------
mkdir -p "$tmp/outside"
cp "$S/model-00002-of-00002.safetensors" "$tmp/outside/"
hostile() { # NAME REPLACEMENT WANT
  rm -rf "$tmp/h"; cp -r "$S" "$tmp/h"; chmod -R u+w "$tmp/h"
  rm "$tmp/h/model-00002-of-00002.safetensors"
  python3 - "$tmp/h/model.safetensors.index.json" "$2" <<'EOF'
import json, sys
p, to = sys.argv[1], sys.argv[2]
ix = json.load(open(p))
ix["weight_map"] = {k: (to if v == "model-00002-of-00002.safetensors" else v) for k, v in ix["weight_map"].items()}
json.dump(ix, open(p, "w"), indent=2)
EOF
  expect "index: $1" "$3" -- "$PP8" logits --model "$tmp/h" --tokens 1,2 --out "$tmp/x.npy"
}
hostile "'..' and '/'" "../outside/model-00002-of-00002.safetensors" "names the shard \"../outside/model-00002-of-00002.safetensors\", which contains '/'"
hostile "absolute path" "$tmp/outside/model-00002-of-00002.safetensors" "which is an absolute path"
hostile "backslash" '..\outside\model-00002-of-00002.safetensors' "which contains '\\\\'"
hostile "'..' alone" ".." "which contains '..'"
hostile "not .safetensors" "model-00002-of-00002.bin" "which does not end in .safetensors"

# ---- 2. Hugging Face cache layout ---------------------------------------------------------------------
# hf_cache SRC ORG NAME -> prints the snapshot directory; blobs named by sha256 as huggingface_hub does
hf_cache() {
  local repo="$tmp/hub/models--$2--$3" commit=0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c
  mkdir -p "$repo/blobs" "$repo/snapshots/$commit" "$repo/refs"
  echo "$commit" >"$repo/refs/main"
  for f in "$1"/*; do
    case $(basename "$f") in golden.safetensors | outliers.json) continue ;; esac
    local h; h=$(sha256sum "$f" | cut -c1-64)
    cp "$f" "$repo/blobs/$h"
    ln -s "../../blobs/$h" "$repo/snapshots/$commit/$(basename "$f")"
  done
  echo "$repo/snapshots/$commit"
}
same() { # WHAT FILE_A FILE_B
  if cmp -s "$2" "$3"; then ok "$1: identical"; else bad "$1: outputs differ ($2 vs $3)"; fi
}
run() { # OUT ERR cmd... ; fails the case loudly when the command fails
  local out=$1 err=$2; shift 2
  "$@" >"$out" 2>"$err" || { bad "command failed: $* : $(tail -n 2 "$err")"; return 1; }
}
hs=$(hf_cache "$S" bigscience bloom-bf16-sharded)
ln -s "$hs" "$tmp/linked"
find "$hs" -type f | grep -q . && bad "snapshot holds regular files" || ok "snapshot holds only links: $(ls "$hs" | tr '\n' ' ')"
toks=3,17,42,99,5
run "$tmp/o" "$tmp/e" "$PP8" logits --model "$S" --tokens $toks --out "$tmp/plain.npy"
run "$tmp/o" "$tmp/e" "$PP8" logits --model "$hs" --tokens $toks --out "$tmp/hf.npy" && same "logits, sharded HF snapshot" "$tmp/plain.npy" "$tmp/hf.npy"
grep -q "bloom-bf16-sharded (bloom" "$tmp/e" && ok "model named after the repo: $(grep -o 'bloom-bf16-sharded (bloom[^)]*)' "$tmp/e")" ||
  bad "model not named after models--bigscience--bloom-bf16-sharded: $(grep -m1 'layers)' "$tmp/e")"
run "$tmp/o" "$tmp/e" "$PP8" logits --model "$tmp/linked" --tokens $toks --out "$tmp/hfl.npy" && same "logits, link to the snapshot" "$tmp/plain.npy" "$tmp/hfl.npy"
run "$tmp/o" "$tmp/e" "${MPI[@]}" -np 2 "$PP8" logits --model "$hs" --tokens $toks --out "$tmp/hf2.npy" && same "logits, HF snapshot on 2 ranks" "$tmp/plain.npy" "$tmp/hf2.npy"

for m in gen-bloom gen-opt; do
  src="$PP8_GOLDEN/textgen/$m"
  snap=$(hf_cache "$src" acme "$m")
  for d in "$src" "$snap"; do
    tag=$([ "$d" = "$src" ] && echo plain || echo hf)
    run "$tmp/$m.gen.$tag" "$tmp/e" "$PP8" generate --model "$d" --prompt "The quick brown fox" --prompt "Hello, world" --max-new 8 &&
      sed -i -E 's/, "[a-z_]*ms_per_token": [0-9.e+-]*//g' "$tmp/$m.gen.$tag" # timings differ run to run
    run "$tmp/$m.ppl.$tag" "$tmp/e" "$PP8" perplexity --model "$d" --text "It was the best of times, it was the worst of times."
    run "$tmp/$m.tok.$tag" "$tmp/e" "$PP8" tokenize --tokenizer "$d" --text "Symbolic links, followed: ../../blobs/ é"
  done
  same "$m generate (text in and out), HF snapshot" "$tmp/$m.gen.plain" "$tmp/$m.gen.hf"
  same "$m perplexity, HF snapshot" "$tmp/$m.ppl.plain" "$tmp/$m.ppl.hf"
  same "$m tokenize, HF snapshot" "$tmp/$m.tok.plain" "$tmp/$m.tok.hf"
  [ -s "$tmp/$m.gen.plain" ] && [ -s "$tmp/$m.tok.plain" ] || bad "$m: empty output"
done
run "$tmp/o" "$tmp/e" "$PP8" generate --config "$PP8_GOLDEN/textgen/gen-opt/config.json" --tokenizer "$snap" \
  --prompt "Hello" --max-new 4 && ok "--tokenizer DIR as an HF snapshot"

# quantize reads through the links and writes what it writes from the plain directory
run "$tmp/o" "$tmp/e" "$PP8" quantize --model "$S" --out "$tmp/q-plain" &&
  run "$tmp/o" "$tmp/e" "$PP8" quantize --model "$hs" --out "$tmp/q-hf" &&
  same "quantize from the HF snapshot" "$tmp/q-plain/model.safetensors" "$tmp/q-hf/model.safetensors"
[ -L "$tmp/q-hf/config.json" ] && bad "quantize copied config.json as a link"
expect "quantize --out = the model through a link" "--model directory" -- "$PP8" quantize --model "$hs" --out "$tmp/linked" --force
# the blobs/ every snapshot link points to: --force would delete the model
expect "quantize --out = the cache's blobs/" "holds files of the --model" -- "$PP8" quantize --model "$hs" \
  --out "$(dirname "$(dirname "$hs")")/blobs" --force
[ -n "$(ls "$(dirname "$(dirname "$hs")")/blobs")" ] || bad "quantize --out blobs/ --force emptied the blobs"
[ -z "$(find "$hs" -type f)" ] && [ "$(ls "$hs" | wc -l)" -eq 4 ] || bad "the snapshot changed: $(ls -l "$hs")"

# ---- 3. integers from files ---------------------------------------------------------------------------
cfg() { printf '%s' "$2" >"$tmp/$1.json"; }
cfg hidden '{"model_type": "opt", "hidden_size": 1073741824, "num_attention_heads": 16, "num_hidden_layers": 2, "ffn_dim": 256, "vocab_size": 256, "max_position_embeddings": 64}'
expect "config: OPT hidden_size x 3 overflows int" '"hidden_size" 1073741824 is too large' -- "$PP8" plan --config "$tmp/hidden.json"
cfg hidden_b '{"model_type": "bloom", "n_embed": 1073741824, "n_head": 16, "n_layer": 2, "vocab_size": 256}'
expect "config: BLOOM n_embed x 4 overflows int" '"n_embed" 1073741824 is too large' -- "$PP8" plan --config "$tmp/hidden_b.json"
cfg pos '{"model_type": "opt", "hidden_size": 64, "num_attention_heads": 4, "num_hidden_layers": 2, "ffn_dim": 256, "vocab_size": 256, "max_position_embeddings": 2147483647}'
expect "config: max_position_embeddings + 2 overflows int" '"max_position_embeddings" 2147483647' -- "$PP8" plan --config "$tmp/pos.json"
cfg layers '{"model_type": "bloom", "hidden_size": 64, "n_head": 4, "n_layer": 100000, "vocab_size": 256}'
expect "config: n_layer beyond what the planner plans" '"n_layer" 100000 is more layers' -- "$PP8" plan --config "$tmp/layers.json"
cfg layer '{"model_type": "bloom", "hidden_size": 100000000, "n_head": 4, "n_layer": 2, "vocab_size": 256}'
expect "config: one layer, hidden_size^2" "one layer ((4 x hidden_size² + 2 x hidden_size x 4 x hidden_size) x 2 bytes, hidden_size 100000000" -- "$PP8" plan --config "$tmp/layer.json"
cfg nlayers '{"model_type": "opt", "hidden_size": 10000000, "num_attention_heads": 4, "num_hidden_layers": 1000, "ffn_dim": 256, "vocab_size": 256, "max_position_embeddings": 64}'
expect "config: layers x hidden_size^2" "the weights of all layers (num_hidden_layers 1000 x" -- "$PP8" plan --config "$tmp/nlayers.json"
cfg vocab '{"model_type": "bloom", "hidden_size": 10000000, "n_head": 4, "n_layer": 2, "vocab_size": 2000000000}'
expect "config: vocab_size x hidden_size" "the token embedding (vocab_size 2000000000 x hidden_size 10000000" -- "$PP8" plan --config "$tmp/vocab.json"
cfg kv '{"model_type": "opt", "hidden_size": 1000000, "num_attention_heads": 4, "num_hidden_layers": 24, "ffn_dim": 256, "vocab_size": 256, "max_position_embeddings": 1000000000}'
expect "config: KV bytes of max_position_embeddings" "the KV cache of one sequence (num_hidden_layers 24 x max_position_embeddings 1000000000" -- "$PP8" plan --config "$tmp/kv.json"
cfg total '{"model_type": "opt", "hidden_size": 4000000, "num_attention_heads": 4, "num_hidden_layers": 2, "ffn_dim": 256, "vocab_size": 1000000000, "max_position_embeddings": 64, "tie_word_embeddings": false}'
expect "config: all weights together" "the model's weights (num_hidden_layers 2, hidden_size 4000000, vocab_size 1000000000)" -- "$PP8" plan --config "$tmp/total.json"
cfg ctrl '{"model_type": "bl\noom", "hidden_size": 64, "n_head": 4, "n_layer": 2, "vocab_size": 256}'
expect "config: a newline in a string stays on one line" 'model_type "bl?oom" is not supported' -- "$PP8" plan --config "$tmp/ctrl.json"
# the same refusal before any allocation when a model directory is loaded, on every rank
rm -rf "$tmp/m"; cp -r "$PP8_GOLDEN/bloom-tiny" "$tmp/m"; chmod -R u+w "$tmp/m"
python3 -c "import json,sys; c=json.load(open(sys.argv[1])); c['vocab_size']=2000000000; c['hidden_size']=10000000; json.dump(c, open(sys.argv[1],'w'))" "$tmp/m/config.json"
expect "config: logits on 2 ranks" "vocab_size 2000000000 x hidden_size 10000000" -- "${MPI[@]}" -np 2 "$PP8" logits --model "$tmp/m" --tokens 1,2 --out "$tmp/x.npy"
[ -e "$tmp/x.npy" ] && bad "logits wrote $tmp/x.npy after a refusal"
# planner byte counts from flags
expect "plan: KV bytes of batch x positions" "the KV cache, 2 (k, v) x batch 1048576 x 33554432 positions" -- \
  "$PP8" plan --config "$PP8_SRC/configs/bloom-560m.json" --batch 1048576 --prompt-len 16777216 --gen 16777216
expect "plan: workspace bytes of a prompt's attention scores" "the activation workspace for 16777216 rows" -- \
  "$PP8" plan --config "$PP8_SRC/configs/bloom-560m.json" --batch 1 --prompt-len 16777216 --gen 0
expect "bench: KV bytes of batch x positions" "the KV cache, 2 (k, v) x batch 65536 x 1048578 positions" -- \
  "$PP8" bench --config "$PP8_SRC/configs/bloom-176b.json" --batch 65536 --prompt-len 1 --gen 1048576 --max-seq-len 16777216
expect "bench: batch x prompt rows past int" "prefill rows per micro-batch" -- \
  "$PP8" bench --config "$PP8_SRC/configs/opt-125m.json" --batch 65536 --prompt-len 1048576

# ---- 4. a shard truncated while 2 ranks load it ---------------------------------------------------------
# 8 layers of hidden 1024 in two shards (~150 MB each): the planner gives rank 1 layers 4-7, all in shard 2,
# and loading them takes seconds. Shard 2 is cut once a rank has it mapped (/proc/PID/maps), so rank 1
# faults on its next read while rank 0, which never reads shard 2, waits for it.
big="$tmp/big-bloom"
if ! "$helper" write-bloom "$big" 1024 8 >/dev/null; then bad "could not write $big"; else
  shard="$big/model-00002-of-00002.safetensors"
  n=$((n + 1))
  "${MPI[@]}" -np 2 "$PP8" generate --model "$big" --tokens 1,2,3 --max-new 4 --threads 1 >/dev/null 2>"$tmp/bus.err" &
  job=$!
  # both ranks past ckpt_open (each validates the header against the size it saw), neither done loading
  mapped=0
  for _ in $(seq 1 1000); do
    mapped=0
    for p in $(pgrep -f "pp8 generate --model $big" 2>/dev/null); do
      [ "$(ps -o comm= -p "$p" 2>/dev/null)" = pp8 ] && grep -q "model-00002-of-00002.safetensors" "/proc/$p/maps" 2>/dev/null &&
        mapped=$((mapped + 1))
    done
    [ $mapped -ge 2 ] && break
    kill -0 $job 2>/dev/null || break
    sleep 0.01
  done
  if [ $mapped -lt 2 ]; then
    echo "FAIL: truncated shard: $mapped rank(s) mapped $shard:"; sed 's/^/    /' "$tmp/bus.err" | head -5; fail=1
    kill -9 $job $(pgrep -f "pp8 generate --model $big") 2>/dev/null
  else
    truncate -s 1M "$shard"; t0=$(date +%s.%N)
    for _ in $(seq 1 100); do kill -0 $job 2>/dev/null || break; sleep 0.1; done
    if kill -0 $job 2>/dev/null; then
      echo "FAIL: truncated shard: the job still runs 10 s after the truncation"
      kill -9 $job $(pgrep -f "pp8 generate --model $big") 2>/dev/null; fail=1
    else
      wait $job; rc=$?
      dt=$(python3 -c "import time; print('%.1f' % (time.time() - $t0))")
      left=$(pgrep -f "pp8 generate --model $big" | wc -l)
      lines=$(grep -c "^\[pp8 r[0-9]*/2 [^]]*\] error: $shard: the file changed while pp8 was reading it" "$tmp/bus.err")
      if [ $rc -eq 0 ] || [ "$left" -ne 0 ] || [ "$lines" -ne 1 ] || ! grep -q "^\[pp8 r1/2 " "$tmp/bus.err"; then
        echo "FAIL: truncated shard: rc=$rc, $left process(es) left, $lines line(s) from rank 1 naming the shard:"
        sed 's/^/    /' "$tmp/bus.err" | head -12; fail=1
      else
        echo "ok: truncated shard on 2 ranks: rc=$rc, every rank gone ${dt} s after the truncation: $(grep "changed while" "$tmp/bus.err")"
      fi
    fi
  fi
fi
echo "$n cases"
exit $fail
