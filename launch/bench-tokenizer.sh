#!/usr/bin/env bash
# Tokenizer speed, pp8 against Hugging Face tokenizers, single-threaded, side by side in one run (a
# benchmark, not a test). Documents: >= 1 MB of real text every Debian machine has
# (/usr/share/common-licenses, /usr/share/doc/*/copyright) plus the golden test texts, each encoded
# on its own (one encode per document, add_special_tokens=False) with bloom-5k and opt-3k-fast. Checks
# that the ids are identical, prints MB/s for both, the ratio pp8/HF and the CPU.
#
# usage: launch/bench-tokenizer.sh [BUILD_DIR]      (default: build; needs its tests/bench_tokenizer)
# env:   PP8_GOLDEN (default ../shared/golden), PP8_BENCH_VENV (default BUILD_DIR/bench-venv),
#        REPS (passes, best one counts; default 5)
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$here/build}
golden=${PP8_GOLDEN:-$here/../shared/golden}/tokenizers
venv=${PP8_BENCH_VENV:-$build/bench-venv}
reps=${REPS:-5}
bench=$build/tests/bench_tokenizer

[ -d "$golden/models" ] || { echo "bench-tokenizer: no golden tokenizers at $golden (set PP8_GOLDEN)" >&2; exit 1; }
if [ ! -x "$bench" ]; then
  echo "bench-tokenizer: building bench_tokenizer in $build" >&2
  cmake --build "$build" --target bench_tokenizer >&2
fi
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import tokenizers' 2>/dev/null; then
  echo "bench-tokenizer: installing Hugging Face tokenizers into $venv" >&2
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q 'tokenizers==0.23.3'
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# one thread on both sides (encode of one text is single-threaded in HF anyway; this pins the pools)
export RAYON_NUM_THREADS=1 TOKENIZERS_PARALLELISM=false OMP_NUM_THREADS=1

"$venv/bin/python" - "$golden" "$tmp/docs.bin" <<'EOF'
# the documents: distinct valid UTF-8 files, then the golden texts; "<byte length>\n<bytes>" each
import glob, hashlib, json, sys
golden, out = sys.argv[1], sys.argv[2]
paths = sorted(glob.glob("/usr/share/common-licenses/*")) + sorted(glob.glob("/usr/share/doc/*/copyright"))
seen, docs, total = set(), [], 0
for p in paths:
    try:
        b = open(p, "rb").read()
        b.decode("utf-8")
    except (OSError, UnicodeDecodeError):
        continue
    h = hashlib.sha256(b).digest()
    if not b or h in seen:
        continue
    seen.add(h)
    docs.append(b)
    total += len(b)
    if total > 3_000_000:
        break
for line in open(f"{golden}/A/texts.jsonl", encoding="utf-8"):
    t = json.loads(line)["text"].encode("utf-8")
    if t:
        docs.append(t)
        total += len(t)
with open(out, "wb") as f:
    for d in docs:
        f.write(b"%d\n" % len(d))
        f.write(d)
print(f"documents: {len(docs)} ({len(seen)} distinct files from /usr/share + the golden texts), {total / 1e6:.2f} MB",
      file=sys.stderr)
if total < 1_000_000:
    sys.exit("bench-tokenizer: less than 1 MB of documents found")
EOF

cpu=$(lscpu 2>/dev/null | sed -n 's/^Model name:[[:space:]]*//p' | head -1)
echo "CPU: ${cpu:-unknown} ($(nproc) cores; single-threaded runs)"
printf '%-14s %10s %10s %8s  %s\n' tokenizer "HF MB/s" "pp8 MB/s" "pp8/HF" "ids"
status=0
for name in bloom-5k opt-3k-fast; do
  dir=$golden/models/$name
  hf=$("$venv/bin/python" - "$dir/tokenizer.json" "$tmp/docs.bin" "$tmp/hf.ids" "$reps" <<'EOF'
import sys, time
from tokenizers import Tokenizer
tok = Tokenizer.from_file(sys.argv[1])
raw = open(sys.argv[2], "rb").read()
docs, i = [], 0
while i < len(raw):
    nl = raw.index(b"\n", i)
    n = int(raw[i:nl])
    docs.append(raw[nl + 1:nl + 1 + n].decode("utf-8"))
    i = nl + 1 + n
total = sum(len(d.encode("utf-8")) for d in docs)
best = 1e30
for _ in range(int(sys.argv[4])):
    t0 = time.perf_counter()
    for d in docs:
        tok.encode(d, add_special_tokens=False)
    best = min(best, time.perf_counter() - t0)
with open(sys.argv[3], "w") as f:
    for d in docs:
        f.write(" ".join(map(str, tok.encode(d, add_special_tokens=False).ids)) + "\n")
print(f"{total / 1e6 / best:.3f}")
EOF
)
  line=$("$bench" "$dir" "$tmp/docs.bin" --reps "$reps" --ids "$tmp/pp8.ids")
  echo "  $line" >&2
  pp8=$(sed -n 's/.* = \([0-9.]*\) MB\/s.*/\1/p' <<<"$line")
  if cmp -s "$tmp/hf.ids" "$tmp/pp8.ids"; then same="identical"; else same="DIFFERENT"; status=1; fi
  ratio=$(awk -v a="$pp8" -v b="$hf" 'BEGIN { printf "%.1fx", a / b }')
  printf '%-14s %10s %10s %8s  %s\n' "$name" "$hf" "$pp8" "$ratio" "$same"
done
exit $status
