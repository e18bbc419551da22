#!/usr/bin/env bash
# What text costs beside decoding (a benchmark, not a test): `pp8 generate --jsonl` reports, per
# sequence, text_ms_per_token (tokenizing the prompt, streaming detokenization, stop-string matching,
# writing the output) and decode_ms_per_token of the same run. On OPT-1.3B's shape (seeded random
# weights) with the golden OPT tokenizer (opt-3k, the facebook/opt hub layout):
#   - vocab 50272 (the real model's LM head): random weights pick ids beyond the 3000-token tokenizer
#     most of the time, which decode drops, so the text is short;
#   - vocab 3008 (the same layers, a smaller LM head, so a faster decode step: a harder ratio), where
#     every generated id has a token and the text is as long as real text.
# Each: 1 prompt streamed to stdout and 8 prompts as JSON Lines, with two stop strings that never match
# (so every token is checked and nothing stops early). Prints the run's own summary figures (rank 0's
# stderr line: text ms per generated token, decode ms per token) and text as % of decode.
#   usage: launch/bench-text.sh [--threads N] [--max-new N] [--ranks N]
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
golden=${PP8_GOLDEN:-$here/../shared/golden}
tok="$golden/tokenizers/models/opt-3k"
[ -d "$tok" ] || { echo "bench-text: no golden tokenizer at $tok (set PP8_GOLDEN)" >&2; exit 1; }
threads=$(nproc); max_new=32; ranks=1
while [ $# -gt 0 ]; do
  case "$1" in
    --threads) threads=$2; shift 2 ;;
    --max-new) max_new=$2; shift 2 ;;
    --ranks) ranks=$2; shift 2 ;;
    *) echo "bench-text: unknown option $1" >&2; exit 2 ;;
  esac
done
bash launch/setup.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j "$(nproc)" --target pp8 >/dev/null
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
sed 's/"vocab_size": 50272/"vocab_size": 3008/' configs/opt-1.3b.json >"$tmp/opt-1.3b-v3008.json"
python3 - "$tmp/prompts.jsonl" <<'PY'
import json, sys
prompts = ["The history of the region is long and complicated, and many peoples have lived there.",
           "def fibonacci(n):\n    if n < 2:\n        return n\n",
           "Le matin, les enfants partent à l'école en chantant.",
           "In 1869 the first transcontinental railroad was completed, linking",
           "東京は日本の首都であり、",
           "Once upon a time, in a small village at the edge of the forest,",
           "The results in Table 3 show that int8 inference",
           "Q: What is the capital of Australia?\nA:"]
with open(sys.argv[1], "w") as f:
    for p in prompts: f.write(json.dumps(p) + "\n")
PY
run() { # LABEL CONFIG ARGS...: one line with the text and decode ms/token of the run
  local label=$1 cfg=$2; shift 2
  if [ "$ranks" -gt 1 ]; then cmd=(bash launch/pp8run -np "$ranks" -- pp8); else cmd=(build/pp8); fi
  "${cmd[@]}" generate --config "$cfg" --tokenizer "$tok" --threads "$threads" --max-new "$max_new" \
    --stop "@@never@@" --stop $'\x01' "$@" >"$tmp/out" 2>"$tmp/err" || { cat "$tmp/err" >&2; exit 1; }
  # the run's own summary line (rank 0, stderr): "... N generated tokens; ... decode D ms/token; text T ms/token"
  python3 - "$tmp/err" "$tmp/out" "$label" <<'PY'
import re, sys
line = [l for l in open(sys.argv[1], encoding="utf-8", errors="replace") if "ms/token; text" in l][-1]
gen = int(re.search(r"(\d+) generated tokens", line).group(1))
dec = float(re.search(r"decode ([0-9.]+) ms/token", line).group(1))
text = float(re.search(r"text ([0-9.]+) ms/token", line).group(1))
chars = len(open(sys.argv[2], encoding="utf-8", errors="replace").read())
print(f"{sys.argv[3]:<50} {gen:>7} {chars:>8} {text:>12.5f} {dec:>13.3f} {100 * text / dec:>10.4f}%")
PY
}
echo "pp8 $(git rev-parse --short HEAD) on $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $ranks rank(s) x $threads thread(s), --max-new $max_new"
printf '%-50s %7s %8s %12s %13s %11s\n' "run" "tokens" "out_chars" "text_ms/tok" "decode_ms/tok" "text/decode"
for v in 50272 3008; do
  cfg=configs/opt-1.3b.json; [ $v = 3008 ] && cfg="$tmp/opt-1.3b-v3008.json"
  run "OPT-1.3B shape, vocab $v, 1 prompt streamed" "$cfg" --prompt "$(python3 -c "import json;print(json.loads(open('$tmp/prompts.jsonl').readline()))")"
  run "OPT-1.3B shape, vocab $v, 8 prompts, JSON Lines" "$cfg" --prompts-file "$tmp/prompts.jsonl"
done
