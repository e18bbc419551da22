#!/usr/bin/env bash
# Draws pp8's results as PNGs with gnuplot: ms/token vs batch per dtype and schedule from `pp8 bench --json`
# files, and the minimum GPU count per model for bf16/int8 from `pp8 plan --json` files (one file per
# model and GPU preset, e.g. 40 GB and 80 GB A100). Reads the JSON with python3's json module; draws
# nothing it was not given, and does not run pp8 itself.
#   launch/plot.sh BENCH.json... [--plan PLAN.json...] [--out DIR] [--plan-batch B]
set -euo pipefail

usage() {
  cat <<'EOF'
usage: launch/plot.sh [BENCH.json...] [--plan PLAN.json...] [--out DIR] [--plan-batch B]
  BENCH.json     pp8 bench --json output: draws DIR/ms_per_token.png (decode ms/token vs batch,
                 one line per file, dtype and schedule)
  --plan F...    pp8 plan --json outputs (e.g. pp8 plan --config configs/X.json --gpu a100-40g --compare
                 --json X-40g.json): draws DIR/gpus_per_model.png (minimum GPUs per model, bf16 and int8,
                 one bar per dtype and GPU preset)
  --plan-batch B which batch of the plan files to draw (default 1)
  --out DIR      where the PNGs go (default plots/)
EOF
}

bench=()
plans=()
out=plots
plan_batch=1
mode=bench
while [ $# -gt 0 ]; do
  case "$1" in
    -h | --help) usage; exit 0 ;;
    --plan) mode=plan ;;
    --out) [ $# -ge 2 ] || { echo "plot.sh: --out needs a directory" >&2; exit 2; }; out=$2; shift ;;
    --plan-batch) [ $# -ge 2 ] || { echo "plot.sh: --plan-batch needs a number" >&2; exit 2; }; plan_batch=$2; shift ;;
    --*) echo "plot.sh: unknown option $1 (launch/plot.sh --help)" >&2; exit 2 ;;
    *)
      [ -f "$1" ] || { echo "plot.sh: $1: no such file" >&2; exit 2; }
      if [ $mode = plan ]; then plans+=("$1"); else bench+=("$1"); fi ;;
  esac
  shift
done
if [ ${#bench[@]} -eq 0 ] && [ ${#plans[@]} -eq 0 ]; then usage >&2; exit 2; fi
command -v gnuplot >/dev/null || { echo "plot.sh: gnuplot not found (apt-get install gnuplot-nox)" >&2; exit 2; }
command -v python3 >/dev/null || { echo "plot.sh: python3 not found" >&2; exit 2; }
mkdir -p "$out"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# cairo when the build has it (anti-aliased), else libgd's png
term="pngcairo size 900,600 font ',11'"
gnuplot -e "set terminal pngcairo" >/dev/null 2>&1 || term="png size 900,600"

if [ ${#bench[@]} -gt 0 ]; then
  # one data block per (file, dtype, schedule, threshold): "batch ms"; the series titles go to a list
  python3 - "$tmp" "${bench[@]}" <<'EOF'
import json, os, sys
tmp, files = sys.argv[1], sys.argv[2:]
series = {}
for f in files:
    j = json.load(open(f))
    tag = os.path.splitext(os.path.basename(f))[0]
    for r in j.get("runs", []):
        if r.get("decode_ms_per_token") is None:
            continue
        key = (tag, r.get("dtype", "?"), r.get("schedule", ""), r.get("threshold"))
        series.setdefault(key, []).append((int(r["batch"]), float(r["decode_ms_per_token"])))
if not series:
    sys.exit("plot.sh: no runs[] with decode_ms_per_token in " + " ".join(files))
with open(os.path.join(tmp, "bench.list"), "w") as lst:
    for i, (key, pts) in enumerate(sorted(series.items(), key=lambda kv: (kv[0][1] != "int8", kv[0]))):
        tag, dtype, sched, thr = key
        with open(os.path.join(tmp, "bench%d.dat" % i), "w") as d:
            for b, ms in sorted(pts):
                d.write("%d %.6g\n" % (b, ms))
        title = "%s %s" % (dtype, sched) + ("" if len(files) == 1 else " (%s)" % tag)
        lst.write("%d\t%s\n" % (i, title.replace('"', "'")))
EOF
  plot=""
  while IFS=$'\t' read -r i title; do
    plot+="${plot:+, }'$tmp/bench$i.dat' using 1:2 with linespoints lw 2 pt 7 title \"$title\""
  done <"$tmp/bench.list"
  gnuplot <<EOF
set terminal $term
set output '$out/ms_per_token.png'
set title 'pp8 bench: decode ms per token (decode wall time / (batch x new tokens))'
set xlabel 'batch (sequences)'
set ylabel 'ms per token'
set logscale xy
set grid
set key top right
plot $plot
EOF
  echo "wrote $out/ms_per_token.png"
fi

if [ ${#plans[@]} -gt 0 ]; then
  # rows = models (by parameter count), columns = "<dtype> <gpu>" for bf16 and int8; NaN where it does not fit
  python3 - "$tmp" "$plan_batch" "${plans[@]}" <<'EOF'
import json, math, os, sys
tmp, want_batch, files = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
models, cols, cell = {}, [], {}
for f in files:
    j = json.load(open(f))
    model = j["model"]
    where = j.get("gpu") or "%.0f GiB" % (j.get("mem_per_rank_bytes", 0) / 2**30)
    models.setdefault(model, j.get("params", 0))
    for p in j["plans"]:
        if p["dtype"] not in ("bf16", "int8") or p["batch"] != want_batch:
            continue
        col = "%s %s" % (p["dtype"], where)
        if col not in cols:
            cols.append(col)
        cell[(model, col)] = p["ranks"] if p["fits"] else float("nan")
if not cell:
    sys.exit("plot.sh: no bf16/int8 plans at batch %d in %s" % (want_batch, " ".join(files)))
cols.sort(key=lambda c: (c.split()[0] != "bf16", c))
order = sorted(models, key=lambda m: (models[m], m))
with open(os.path.join(tmp, "plan.dat"), "w") as d:
    d.write("model " + " ".join('"%s"' % c for c in cols) + "\n")
    for m in order:
        vals = [cell.get((m, c), float("nan")) for c in cols]
        d.write('"%s" ' % m + " ".join("NaN" if (isinstance(v, float) and math.isnan(v)) else str(v) for v in vals) + "\n")
open(os.path.join(tmp, "plan.ncols"), "w").write(str(len(cols)))
with open(os.path.join(tmp, "plan.gp"), "w") as g:  # one tic per model, at its row index
    g.write("set xtics (" + ", ".join('"%s" %d' % (m, r) for r, m in enumerate(order)) + ") rotate by -30\n")
EOF
  ncols=$(cat "$tmp/plan.ncols")
  gnuplot <<EOF
set terminal $term
set output '$out/gpus_per_model.png'
set title 'pp8 plan: minimum GPUs (ranks) that hold the model, batch $plan_batch (modelled; no bar = does not fit)'
# explicit boxes (not histogram style) so the count labels sit on their bars: row r, column i
w = 0.8 / $ncols
x(r, i) = r + (i - 2 - ($ncols - 1) / 2.0) * w
set style fill solid 0.8 border -1
set boxwidth w
set ylabel 'GPUs (ranks)'
set yrange [0:*]
set offsets 0.5, 0.5, 1, 0
set grid ytics
set key top left
set key autotitle columnheader
load '$tmp/plan.gp'
plot for [i=2:$((ncols + 1))] '$tmp/plan.dat' using (x(\$0, i)):i with boxes title columnheader(i), \
     for [i=2:$((ncols + 1))] '$tmp/plan.dat' using (x(\$0, i)):i:(sprintf('%d', column(i))) with labels offset 0,0.7 notitle
EOF
  echo "wrote $out/gpus_per_model.png"
fi
