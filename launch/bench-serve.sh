#!/usr/bin/env bash
# pp8 serve under load, side by side with pp8 bench in one run (a benchmark, not a test). OPT-1.3B's
# shape (seeded random weights) with the golden OPT tokenizer, R ranks x T threads:
#   1. pp8 bench --batch C --prompt-len 32 --gen G: decode tokens/s, the engine alone;
#   2. pp8 serve + launch/loadgen.py: C closed-loop streaming clients, prompts of 32 tokens, max_tokens G
#      with ignore_eos: served generated tokens/s (prefill of the next requests included), and the
#      ratio to 1 (target >= 0.85);
#   3. time to first token and inter-token latency p50/p99 at 1, 8 and C clients;
#   4. continuous vs --static-batching, max_tokens uniform in 8..256: served tokens/s, and the ratio
#      (target >= 1.5).
# Prints a table with the machine and the commit; --json FILE writes every figure.
#   usage: launch/bench-serve.sh [--ranks R] [--threads T] [--clients C] [--gen G] [--dtype D]
#                                [--duration S] [--json FILE]
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
golden=${PP8_GOLDEN:-$here/../shared/golden}
tok="$golden/tokenizers/models/opt-3k"
[ -d "$tok" ] || { echo "bench-serve: no golden tokenizer at $tok (set PP8_GOLDEN)" >&2; exit 1; }
ranks=2; threads=1; clients=32; gen=128; dtype=int8; duration=0; json=""
while [ $# -gt 0 ]; do
  case "$1" in
    --ranks) ranks=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    --clients) clients=$2; shift 2 ;;
    --gen) gen=$2; shift 2 ;;
    --dtype) dtype=$2; shift 2 ;;
    --duration) duration=$2; shift 2 ;;
    --json) json=$2; shift 2 ;;
    -h|--help) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "bench-serve: unknown option $1" >&2; exit 2 ;;
  esac
done
bash launch/setup.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j "$(nproc)" --target pp8 >/dev/null
tmp=$(mktemp -d)
server=""
cleanup() { [ -n "$server" ] && kill -TERM "$server" 2>/dev/null && wait "$server" 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT
cfg=configs/opt-1.3b.json
common=(--config "$cfg" --tokenizer "$tok" --dtype "$dtype" --weights-seed 1234)
over=(); [ $((ranks * threads)) -gt "$(nproc)" ] && over=(--oversubscribe)

# prompts of exactly 32 tokens (the BOS included), cut from real text
python3 - "$tmp/prompts.jsonl" "$here/build/pp8" "$tok" <<'PY'
import json, subprocess, sys
out, pp8, tok = sys.argv[1:4]
words = open("/usr/share/common-licenses/GPL-3").read().split()
prompts, i = [], 0
while len(prompts) < 64 and i < len(words) - 200:
    lo, hi = 1, 60
    while lo < hi:  # the most words whose ids number at most 32
        mid = (lo + hi + 1) // 2
        n = len(subprocess.run([pp8, "tokenize", "--tokenizer", tok, "--text", " ".join(words[i:i + mid])],
                               capture_output=True, text=True, check=True).stdout.strip().split(","))
        lo, hi = (mid, hi) if n <= 32 else (lo, mid - 1)
    text = " ".join(words[i:i + lo])
    n = len(subprocess.run([pp8, "tokenize", "--tokenizer", tok, "--text", text], capture_output=True, text=True,
                           check=True).stdout.strip().split(","))
    if n == 32:
        prompts.append(text)
    i += lo
with open(out, "w") as f:
    for p in prompts: f.write(json.dumps(p) + "\n")
print(f"bench-serve: {len(prompts)} prompts of 32 tokens", file=sys.stderr)
PY

echo "== 1. pp8 bench: $ranks ranks x $threads thread(s), batch $clients, prompt 32, gen $gen" >&2
bash launch/pp8run -np "$ranks" --threads "$threads" "${over[@]}" -- pp8 bench --config "$cfg" --dtype "$dtype" \
  --weights-seed 1234 --batch "$clients" --prompt-len 32 --gen "$gen" --json "$tmp/bench.json" >&2

start_server() { # extra serve flags...
  bash launch/pp8run -np "$ranks" --threads "$threads" "${over[@]}" -- pp8 serve "${common[@]}" --port 0 \
    --max-seq-len 512 --max-seqs "$clients" "$@" >"$tmp/serve.out" 2>"$tmp/serve.err" &
  server=$!
  for _ in $(seq 1 600); do
    port=$(sed -n 's/.*on http:\/\/[^:]*:\([0-9]*\)\/v1.*/\1/p' "$tmp/serve.err" | head -1)
    [ -n "$port" ] && curl -sf "http://127.0.0.1:$port/health" >/dev/null && return 0
    kill -0 "$server" 2>/dev/null || { cat "$tmp/serve.err" >&2; exit 1; }
    sleep 0.5
  done
  echo "bench-serve: the server did not come up" >&2; exit 1
}
stop_server() { kill -TERM "$server"; wait "$server" || true; server=""; }
load() { # NAME CLIENTS MAX_TOKENS SECONDS WARMUP extra...
  local name=$1 c=$2 mt=$3 secs=$4 warm=$5; shift 5
  python3 launch/loadgen.py --url "http://127.0.0.1:$port" --clients "$c" --prompts "$tmp/prompts.jsonl" \
    --max-tokens "$mt" --duration "$secs" --warmup "$warm" --json "$tmp/$name.json" "$@" >&2
}
# a round of C requests of G tokens takes about C*G / (bench tokens/s) seconds plus its prefill
round=$(python3 -c "import json; r=json.load(open('$tmp/bench.json'))['runs'][0]; print(int($clients*$gen/r['decode_tokens_per_s'] + r['prefill_s']) + 1)")
[ "$duration" -gt 0 ] 2>/dev/null || duration=$((3 * round))
echo "== 2. pp8 serve: $clients streaming clients, prompt 32, max_tokens $gen, ignore_eos, ${duration} s after a ${round} s warm-up round" >&2
start_server
load served "$clients" "$gen" "$duration" "$round" --ignore-eos
echo "== 3. latency at 1, 8, $clients clients" >&2
for c in 1 8; do load "lat$c" "$c" 32 $((round / 2 + 10)) 5 --ignore-eos; done
cp "$tmp/served.json" "$tmp/lat$clients.json"
echo "== 4. continuous vs static batching, max_tokens 8..256" >&2
load continuous "$clients" 8:256 "$duration" "$round" --ignore-eos
stop_server
start_server --static-batching
load static "$clients" 8:256 "$duration" "$round" --ignore-eos
stop_server

python3 - "$tmp" "$clients" "$gen" "$ranks" "$threads" "$dtype" "${json:-}" <<'PY'
import json, os, subprocess, sys
d, clients, gen, ranks, threads, dtype, out = sys.argv[1:8]
J = lambda n: json.load(open(os.path.join(d, n + ".json")))
b = J("bench")["runs"][0]
srv, cont, stat = J("served"), J("continuous"), J("static")
cpu = next(l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name"))
git = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
print(f"pp8 {git} on {cpu}: OPT-1.3B shape, {dtype}, {ranks} ranks x {threads} thread(s)")
bt = b["decode_tokens_per_s"]
print(f"pp8 bench --batch {clients} --prompt-len 32 --gen {gen}: decode {bt:.2f} tokens/s")
st = srv["generated_tokens_per_s"]
print(f"pp8 serve, {clients} streaming clients, max_tokens {gen}, ignore_eos: {st:.2f} tokens/s = {st / bt:.3f} x bench (target >= 0.85)")
print("clients   TTFT p50 / p99 (s)    ITL p50 / p99 (ms)   requests/s")
for c in ["1", "8", clients]:
    r = J("lat" + c)
    print(f"{c:>7}   {r['ttft_ms']['p50'] / 1e3:8.3f} / {r['ttft_ms']['p99'] / 1e3:<8.3f}   {r['itl_ms']['p50']:8.1f} / "
          f"{r['itl_ms']['p99']:<8.1f}   {r['requests_per_s']:.3f}")
ct, sst = cont["generated_tokens_per_s"], stat["generated_tokens_per_s"]
print(f"max_tokens 8..256: continuous {ct:.2f} tokens/s, static {sst:.2f} tokens/s: {ct / sst:.2f}x (target >= 1.5)")
if out:
    json.dump({"git": git, "cpu": cpu, "ranks": int(ranks), "threads": int(threads), "dtype": dtype, "bench": b,
               "served": srv, "latency": {c: J("lat" + c) for c in ["1", "8", clients]},
               "continuous": cont, "static": stat, "served_over_bench": st / bt, "continuous_over_static": ct / sst},
              open(out, "w"), indent=1)
PY
