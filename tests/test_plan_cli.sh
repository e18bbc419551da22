#!/usr/bin/env bash
# `pp8 plan` from the command line: runs without mpirun and without weights, prints the modelled time next
# to the published measurement for BLOOM-176B, writes DESIGN.md's JSON, and refuses bad input (unknown flag
# or preset, zero/negative memory, more ranks than layers, a config missing a field) with a non-zero exit
# and a message naming the thing. Env (tests/CMakeLists.txt): PP8 (binary), PP8_SRC. Not a test of numbers:
# test_plan.c checks those by hand.
set -u
fail=0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# The configs another part of the tree owns may not exist yet in a partial checkout: write BLOOM-176B's
# published config.json (bigscience/bloom) when configs/bloom-176b.json is missing.
cfg="$PP8_SRC/configs/bloom-176b.json"
if [ ! -f "$cfg" ]; then
  cfg="$tmp/bloom-176b.json"
  cat >"$cfg" <<'EOF'
{"model_type": "bloom", "architectures": ["BloomForCausalLM"], "hidden_size": 14336, "n_layer": 70, "n_head": 112,
 "vocab_size": 250880, "layer_norm_epsilon": 1e-05, "apply_residual_connection_post_layernorm": false,
 "bos_token_id": 1, "eos_token_id": 2, "pad_token_id": 3, "tie_word_embeddings": true, "torch_dtype": "bfloat16"}
EOF
fi

# run NAME WANT_RC PATTERN ARGS...: exit code and a pattern in stdout+stderr (kept in $last for `has`).
# Each pp8 start costs ~0.3 s of MPI singleton init, so one run serves several checks.
last=""
run() {
  local name=$1 want=$2 pat=$3
  shift 3
  local rc
  last=$("$PP8" plan "$@" 2>&1)
  rc=$?
  if [ "$want" = 0 ] && [ $rc -ne 0 ]; then
    echo "FAIL $name: exit $rc, want 0: $last" | head -5; fail=1; return
  fi
  if [ "$want" != 0 ] && [ $rc -eq 0 ]; then
    echo "FAIL $name: exit 0, want non-zero: $(echo "$last" | head -3)"; fail=1; return
  fi
  if ! grep -qE -- "$pat" <<<"$last"; then
    echo "FAIL $name: output lacks /$pat/: $(echo "$last" | head -5)"; fail=1; return
  fi
  echo "ok   $name"
}
# has NAME PATTERN: another pattern in the last run's output
has() {
  if grep -qE -- "$2" <<<"$last"; then echo "ok   $1"; else echo "FAIL $1: output lacks /$2/"; fail=1; fi
}

run help 0 "usage: pp8 plan" --help
out=$("$PP8" plan --help 2>/dev/null)
grep -q -- "--mem-per-rank" <<<"$out" || { echo "FAIL help is not on stdout"; fail=1; }

# A100-80GB: the seed's measured 282 ms next to the modelled number, each labelled
run a100-80g 0 "int8 4xA100-80GB published measurement.*282 / 37.5 / 10.2" --config "$cfg" --gpu a100-80g --compare
has a100-80g-modelled "pp8 modelled, same GPU count, naive schedule.*: [0-9.]+ / "
has int8-3-gpus "^int8 +1 +3 yes"
has bf16-5-gpus "^bf16 +32 +5 yes"
has roofline-label "roofline model, not measured"
has per-rank-table "rank +layers +n +weights +KV cache +workspace +reserve +total"

# A100-40GB, with the JSON of DESIGN.md "Benchmark output"
run a100-40g 0 "int8 5xA100-40GB published measurement.*out of memory" --config "$cfg" --gpu a100-40g --compare \
  --json "$tmp/plan.json"
has a100-40g-int8-32 "^int8 +32 +6 yes"
cat >"$tmp/check.py" <<'EOF'
import json, sys
j = json.load(open(sys.argv[1]))
assert j["model"] == "bloom-176b" and j["gpu"] == "a100-40g", j.keys()
assert j["workload"]["prompt_len"] == 16 and j["workload"]["gen"] == 100 and j["workload"]["batch"] == [1, 8, 32]
assert len(j["plans"]) == 9
for p in j["plans"]:
    for k in ("dtype", "batch", "ranks", "fits", "stages", "modelled_ms_per_token"):
        assert k in p, k
    assert p["fits"] and len(p["stages"]) == p["ranks"]
    nxt = 0
    for s in p["stages"]:
        b = s["bytes"]
        assert s["layer_begin"] == nxt and s["layer_end"] > nxt
        nxt = s["layer_end"]
        assert b["total"] == b["weights"] + b["kv_cache"] + b["workspace"] + b["reserve"]
        assert b["total"] <= 40960 * 2**20
    assert nxt == 70
r = {(p["dtype"], p["batch"]): p["ranks"] for p in j["plans"]}
assert r[("int8", 1)] == 5 and r[("int8", 32)] == 6 and r[("bf16", 8)] <= 10, r
EOF
if python3 "$tmp/check.py" "$tmp/plan.json"; then echo "ok   json"; else echo "FAIL json"; fail=1; fi

run fixed-not-fit 0 "DOES NOT FIT on 2 GPUs.*hold at most" --config "$cfg" --gpu a100-80g --dtype bf16 --ranks 2 --batch 1
run cpu-default 0 "MemTotal / ranks on this node" --config "$cfg" --batch 1
run mem-per-rank 0 "DOES NOT FIT.*embedding" --config "$cfg" --mem-per-rank 8 --dtype bf16 --batch 1
mkdir -p "$tmp/model" && cp "$cfg" "$tmp/model/config.json"
run model-dir 0 "fits on 3 GPUs" --model "$tmp/model" --gpu a100-80g --batch 1

# bad input: non-zero exit, the message names the thing
run unknown-flag 1 "--frobnicate" --config "$cfg" --frobnicate
run unknown-gpu 1 "a100-120g.*available: a100-40g, a100-80g, h100-80g" --config "$cfg" --gpu a100-120g
run zero-mem 1 "--mem-per-rank 0: .*positive" --config "$cfg" --mem-per-rank 0
run negative-mem 1 "--mem-per-rank -4: .*positive" --config "$cfg" --mem-per-rank -4
run gpu-and-mem 1 "--gpu a100-80g and --mem-per-rank" --config "$cfg" --gpu a100-80g --mem-per-rank 8
run too-many-ranks 1 "--ranks 71 is more than the 70 layers" --config "$cfg" --gpu a100-80g --ranks 71
run bad-dtype 1 "--dtype int4" --config "$cfg" --dtype int4
run missing-file 1 "nope.json" --config "$tmp/nope.json"
python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); del j["n_layer"]; json.dump(j, open(sys.argv[2], "w"))' \
  "$cfg" "$tmp/bloom-nolayers.json"
run missing-field 1 "n_layer|num_hidden_layers" --config "$tmp/bloom-nolayers.json" --gpu a100-80g

exit $fail
