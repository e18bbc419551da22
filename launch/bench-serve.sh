#!/usr/bin/env bash
# pp8 serve under load, side by side with pp8 bench in one run (a benchmark, not a test). OPT-1.3B's
# shape (seeded random weights) with the golden OPT tokenizer, R ranks x T threads:
#   1. pp8 bench --batch C --prompt-len 32 --gen G: decode tokens/s, the engine alone;
#   2. pp8 serve + launch/loadgen.py: C closed-loop streaming clients, prompts of 32 tokens, max_tokens G
#      with ignore_eos: served generated tokens/s (prefill of the next requests included), and the
#      ratio to 1 (target >= 0.85);
#   3. time to first token and inter-token latency p50/p99 at 1, 8 and C clients;
#   4. continuous vs --static-batching, max_tokens uniform in 8..256: served tokens/s, and the ratio
#      (target >= 1.5), on --compare-config (default OPT-1.3B's shape) for each of --compare-clients
#      N[,N..] (default 16,C), beside pp8 bench at that batch. --compare-only runs 4 alone.
# Prints a table with the machine and the commit; --json FILE writes every figure.
#   usage: launch/bench-serve.sh [--ranks R] [--threads T] [--clients C] [--gen G] [--dtype D]
#                                [--duration S] [--compare-config C] [--compare-clients N[,N..]] [--compare-only]
#                                [--json FILE]
# --duration: seconds of counted load in 2 (default: one round, C x G tokens at bench's rate + its prefill).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
golden=${PP8_GOLDEN:-$here/../shared/golden}
tok="$golden/tokenizers/models/opt-3k"
[ -d "$tok" ] || { echo "bench-serve: no golden tokenizer at $tok (set PP8_GOLDEN)" >&2; exit 1; }
ranks=2; threads=1; clients=32; gen=128; dtype=int8; duration=0; json=""; ccfg=configs/opt-1.3b.json; cclients=""
only=0
while [ $# -gt 0 ]; do
  case "$1" in
    --ranks) ranks=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    --clients) clients=$2; shift 2 ;;
    --gen) gen=$2; shift 2 ;;
    --dtype) dtype=$2; shift 2 ;;
    --duration) duration=$2; shift 2 ;;
    --json) json=$2; shift 2 ;;
    --compare-config) ccfg=$2; shift 2 ;;
    --compare-clients) cclients=$2; shift 2 ;;
    --compare-only) only=1; shift ;;
    -h|--help) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
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
over=(); [ $((ranks * threads)) -gt "$(nproc)" ] && over=(--oversubscribe)

# prompts of exactly 32 tokens, as ids (OPT's BOS 2, then 31 ids of real text)
build/pp8 tokenize --tokenizer "$tok" --file /usr/share/common-licenses/GPL-3 --no-special >"$tmp/ids.txt"
python3 - "$tmp/ids.txt" "$tmp/prompts.jsonl" <<'PY'
import json, sys
ids = [int(x) for x in open(sys.argv[1]).read().strip().split(",")]
with open(sys.argv[2], "w") as f:
    for k in range(64):
        f.write(json.dumps([2] + ids[k * 31:(k + 1) * 31]) + "\n")
PY

start_server() { # CONFIG extra serve flags...
  local c=$1; shift
  bash launch/pp8run -np "$ranks" --threads "$threads" "${over[@]}" -- pp8 serve --config "$c" --tokenizer "$tok" \
    --dtype "$dtype" --weights-seed 1234 --port 0 \
    --max-seq-len 512 --max-seqs "$seqs" "$@" >"$tmp/serve.out" 2>"$tmp/serve.err" &
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
if [ "$only" = 0 ]; then
  seqs=$clients
  echo "== 1. pp8 bench: $ranks ranks x $threads thread(s), batch $clients, prompt 32, gen $gen" >&2
  bash launch/pp8run -np "$ranks" --threads "$threads" "${over[@]}" -- pp8 bench --config "$cfg" --dtype "$dtype" \
    --weights-seed 1234 --batch "$clients" --prompt-len 32 --gen "$gen" --json "$tmp/bench.json" >&2

  # a round of C requests of G tokens takes about C*G / (bench tokens/s) seconds plus its prefill
  round=$(python3 -c "import json; r=json.load(open('$tmp/bench.json'))['runs'][0]; print(int($clients*$gen/r['decode_tokens_per_s'] + r['prefill_s']) + 1)")
  [ "$duration" -gt 0 ] 2>/dev/null || duration=$((2 * round))
  echo "== 2. pp8 serve: $clients streaming clients, prompt 32, max_tokens $gen, ignore_eos, ${duration} s after a ${round} s warm-up round" >&2
  start_server "$cfg"
  load served "$clients" "$gen" "$duration" "$round" --ignore-eos
  echo "== 3. latency at 1, 8, $clients clients" >&2
  for c in 1 8; do load "lat$c" "$c" 32 $((round / 2 + 10)) 5 --ignore-eos; done
  cp "$tmp/served.json" "$tmp/lat$clients.json"
  stop_server
fi
# default: 16 clients (8 rows per in-flight item with 2 ranks: a step still costs about what a 1-row
# step does, as on an HBM-bound GPU) and C (on a 2-core CPU a 16-row item is compute-bound, and there
# the step's cost follows its rows, so static batching's thin late steps are cheap): the ratio is the
# step's cost curve as much as the scheduler, and both points are printed
[ -n "$cclients" ] || cclients="16,$clients"
for cc in ${cclients//,/ }; do
  seqs=$cc
  echo "== 4. continuous vs static batching on $ccfg, $cc clients, max_tokens 8..256, ignore_eos" >&2
  bash launch/pp8run -np "$ranks" --threads "$threads" "${over[@]}" -- pp8 bench --config "$ccfg" --dtype "$dtype" \
    --weights-seed 1234 --batch "$cc" --prompt-len 32 --gen 256 --json "$tmp/cbench$cc.json" >&2
  # a static round lasts as long as its longest request (about 256 tokens); two of them are counted
  sround=$(python3 -c "import json; r=json.load(open('$tmp/cbench$cc.json'))['runs'][0]; print(int($cc*256/r['decode_tokens_per_s'] + r['prefill_s']) + 1)")
  start_server "$ccfg"
  load "continuous$cc" "$cc" 8:256 $((2 * sround)) "$sround" --ignore-eos
  stop_server
  start_server "$ccfg" --static-batching
  load "static$cc" "$cc" 8:256 $((2 * sround)) "$sround" --ignore-eos
  stop_server
done

python3 - "$tmp" "$clients" "$gen" "$ranks" "$threads" "$dtype" "$ccfg" "$cclients" "$only" "${json:-}" <<'PY'
import json, os, subprocess, sys
d, clients, gen, ranks, threads, dtype, ccfg, cclients, only, out = sys.argv[1:11]
only = only == "1"
J = lambda n: json.load(open(os.path.join(d, n + ".json")))
cpu = next(l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name"))
git = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
print(f"pp8 {git} on {cpu}: {dtype}, {ranks} ranks x {threads} thread(s)")
report = {"git": git, "cpu": cpu, "ranks": int(ranks), "threads": int(threads), "dtype": dtype}
if not only:
  b, srv = J("bench")["runs"][0], J("served")
  bt = b["decode_tokens_per_s"]
  print(f"pp8 bench --batch {clients} --prompt-len 32 --gen {gen}: decode {bt:.2f} tokens/s")
  st = srv["server_generated_tokens_per_s"]
  print(f"pp8 serve, {clients} streaming clients, max_tokens {gen}, ignore_eos: {st:.2f} tokens/s = {st / bt:.3f} x bench (target >= 0.85)")
  print("clients   TTFT p50 / p99 (s)    ITL p50 / p99 (ms)   requests/s")
  for c in ["1", "8", clients]:
      r = J("lat" + c)
      print(f"{c:>7}   {r['ttft_ms']['p50'] / 1e3:8.3f} / {r['ttft_ms']['p99'] / 1e3:<8.3f}   {r['itl_ms']['p50']:8.1f} / "
            f"{r['itl_ms']['p99']:<8.1f}   {r['requests_per_s']:.3f}")
cmp = []
for cc in cclients.split(","):
    cont, stat, cb = J("continuous" + cc), J("static" + cc), J("cbench" + cc)["runs"][0]
    ct, sst = cont["server_generated_tokens_per_s"], stat["server_generated_tokens_per_s"]
    print(f"{ccfg}, {cc} clients, max_tokens 8..256: continuous {ct:.2f} tokens/s, static {sst:.2f} tokens/s: "
          f"{ct / sst:.2f}x (target >= 1.5); pp8 bench --batch {cc} --gen 256: {cb['decode_tokens_per_s']:.2f} tokens/s, "
          f"bound by {cb.get('bound', '?')}")
    cmp.append({"clients": int(cc), "continuous": cont, "static": stat, "bench": cb, "continuous_over_static": ct / sst})
if not only:
  pre = b["prefill_s"] / (b["prefill_s"] + b["decode_s"])
  print(f"(bench: prefill {b['prefill_s']:.1f} s + decode {b['decode_s']:.1f} s per round of {clients} x {gen}: a closed "
        f"loop whose clients restart together cannot beat {1 - pre:.3f} x bench's decode rate when prefill rows cost "
        f"what decode rows do, i.e. when decode is compute-bound)")
  report.update({"bench": b, "served": srv, "latency": {c: J("lat" + c) for c in ["1", "8", clients]},
                 "served_over_bench": st / bt})
report.update({"compare_config": ccfg, "compare": cmp})
if out:
    json.dump(report, open(out, "w"), indent=1)
PY
