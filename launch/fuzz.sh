#!/usr/bin/env bash
# Runs pp8's libFuzzer targets (tests/fuzz/) for a given time each and reports, per target, executions,
# exec/s, coverage (libFuzzer's cov: and ft:), the slowest input and the result. Builds build-fuzz/ first
# (clang, PP8_FUZZ=ON; launch/setup.sh installs what is missing). Each target runs over a copy of its
# committed corpus, its regressions and seeds taken from the golden data ($PP8_GOLDEN, default
# ../shared/golden), so runs never grow tests/fuzz/; the copy stays in build-fuzz/fuzz-work/TARGET/.
#   launch/fuzz.sh [--seconds S] [--jobs J] [--json FILE] [TARGET...]
#     --seconds S   time per target (default 60; CI: 30)
#     --jobs J      targets fuzzed at once, one process each (default 1)
#     --json FILE   the table as JSON too (for the README's reliability section)
# Exits non-zero when any target crashed, failed a check, tripped a sanitizer, leaked, ran out of memory
# (-rss_limit_mb=2048) or took over 1 s on one input (-timeout=1); the input is saved under
# build-fuzz/crashes/ (TARGET-crash-..., -timeout-..., -leak-..., -oom-...). To replay one:
#   build-fuzz/fuzz/TARGET build-fuzz/crashes/TARGET-crash-...
# A fixed crash's input belongs in tests/fuzz/regressions/TARGET/ (CTest replays it: fuzz_replay_NAME for fuzz_NAME).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
all=(fuzz_safetensors fuzz_safetensors_index fuzz_config fuzz_tokenizer fuzz_tokens fuzz_serve fuzz_sse fuzz_encode)
seconds=60 jobs=1 json="" targets=()
die() { echo "launch/fuzz.sh: error: $*" >&2; exit 2; }
while [ $# -gt 0 ]; do
  case "$1" in
    --seconds) [ $# -ge 2 ] || die "--seconds needs a number"; seconds=$2; shift 2 ;;
    --jobs) [ $# -ge 2 ] || die "--jobs needs a number"; jobs=$2; shift 2 ;;
    --json) [ $# -ge 2 ] || die "--json needs a file"; json=$2; shift 2 ;;
    -h|--help) sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) die "unknown option $1 (see --help)" ;;
    *) targets+=("$1"); shift ;;
  esac
done
[[ "$seconds" =~ ^[1-9][0-9]*$ ]] || die "--seconds $seconds: give a whole number of seconds"
[[ "$jobs" =~ ^[1-9][0-9]*$ ]] || die "--jobs $jobs: give a positive whole number"
[ ${#targets[@]} -gt 0 ] || targets=("${all[@]}")
for t in "${targets[@]}"; do
  [[ " ${all[*]} " == *" $t "* ]] || die "no fuzz target $t (targets: ${all[*]})"
done
golden=${PP8_GOLDEN:-$here/../shared/golden}
[ -d "$golden/tokenizers/models" ] || die "$golden: no golden data (set PP8_GOLDEN to ../shared/golden)"
golden=$(cd "$golden" && pwd)

bash launch/setup.sh
build=$here/build-fuzz
mkdir -p "$build"
CC=clang cmake -S . -B "$build" -DPP8_FUZZ=ON -DPP8_CUDA=OFF -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  >"$build/configure.log" 2>&1 || { cat "$build/configure.log" >&2; die "configuring $build failed"; }
cmake --build "$build" -j "$(nproc 2>/dev/null || echo 2)" --target "${targets[@]}" >"$build/build.log" 2>&1 ||
  { tail -40 "$build/build.log" >&2; die "building the fuzz targets failed (log: $build/build.log)"; }

work=$build/fuzz-work
mkdir -p "$build/crashes" "$work"
scratch=$(mktemp -d /dev/shm/pp8-fuzz-run.XXXXXX) # the targets' own files (fuzz_dir) go below it
trap 'rm -rf "$scratch"' EXIT

# the working corpus: committed seeds + regressions + seeds made from the golden data (not committed)
seed_corpus() {
  local t=$1 dir=$2
  rm -rf "$dir" && mkdir -p "$dir"
  cp tests/fuzz/corpus/"$t"/* "$dir"/
  [ -d tests/fuzz/regressions/"$t" ] && cp tests/fuzz/regressions/"$t"/* "$dir"/ 2>/dev/null || true
  python3 - "$t" "$dir" "$golden" <<'EOF'
import glob, json, os, struct, sys
t, out, g = sys.argv[1:4]
def put(name, data):
    with open(os.path.join(out, "golden-" + name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())
def texts(limit):
    with open(os.path.join(g, "tokenizers", "A", "texts.jsonl"), encoding="utf-8") as f:
        rows = [json.loads(l)["text"] for l in f if l.strip()]
    return [r for r in rows if len(r.encode()) <= limit]
if t == "fuzz_config":
    for p in sorted(glob.glob(os.path.join(g, "*", "config.json"))):
        put(os.path.basename(os.path.dirname(p)) + ".json", open(p, "rb").read())
elif t == "fuzz_safetensors":  # headers only (the real files would make every input 240 kB long)
    for p in sorted(glob.glob(os.path.join(g, "**", "*.safetensors"), recursive=True)):
        b = open(p, "rb").read(1 << 20)
        n = struct.unpack("<Q", b[:8])[0]
        if n < len(b):
            put(os.path.relpath(p, g).replace("/", "-"), b[:8 + n] + b[8 + n:8 + n + 64])
elif t == "fuzz_safetensors_index":
    for p in sorted(glob.glob(os.path.join(g, "*", "model.safetensors.index.json"))):
        put(os.path.basename(os.path.dirname(p)) + ".json", open(p, "rb").read())
elif t == "fuzz_tokenizer":  # the golden side files around the committed seeds' small vocabulary
    sep = b"\n--8<--\n"
    hub = open(os.path.join(out, "hub-opt.txt"), "rb").read().split(sep)
    m = os.path.join(g, "tokenizers", "models")
    for d in ("opt-3k", "opt-3k-fast", "bloom-5k"):
        c, s = (os.path.join(m, d, f) for f in ("tokenizer_config.json", "special_tokens_map.json"))
        if os.path.exists(c) and os.path.exists(s):
            put(d + "-hub.txt", sep.join(hub[:2] + [open(c, "rb").read(), open(s, "rb").read()]))
elif t == "fuzz_encode":
    for i, s in enumerate(texts(4096)):
        put("text%03d.txt" % i, s)
elif t == "fuzz_serve":
    for i, s in enumerate(texts(2048)[:40]):
        body = json.dumps({"prompt": s, "max_tokens": 8, "stop": ["\n"]}, ensure_ascii=i % 2 == 0)
        put("req%03d.bin" % i, b"0POST\0/v1/completions\0\0application/json\0" + body.encode())
EOF
}

run_one() {
  local t=$1 dir=$work/$1
  mkdir -p "$dir"
  if ! seed_corpus "$t" "$dir/corpus" >"$dir/seed.log" 2>&1; then
    { echo "pp8 fuzz: seeding the corpus failed:"; cat "$dir/seed.log"; } >"$dir/log"
    echo 1 >"$dir/rc"
    return
  fi
  local dict=() ; [ -f tests/fuzz/dict/"$t".dict ] && dict=(-dict="$here/tests/fuzz/dict/$t.dict")
  rm -f "$build/crashes/$t"-*.tmp
  local rc=0
  ( cd "$dir" && PP8_GOLDEN=$golden PP8_FUZZ_TMP=$scratch \
      ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:detect_odr_violation=0 \
      UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
      timeout $((seconds + 300)) "$build/fuzz/$t" -max_total_time="$seconds" -timeout=1 -rss_limit_mb=2048 \
      -print_final_stats=1 -artifact_prefix="$build/crashes/$t-" "${dict[@]}" corpus ) >"$dir/log" 2>&1 || rc=$?
  echo "$rc" >"$dir/rc"
}

echo "pp8 fuzz: ${#targets[@]} targets x ${seconds} s, $jobs at a time (logs: $work/TARGET/log)" >&2
running=0
for t in "${targets[@]}"; do
  run_one "$t" &
  running=$((running + 1))
  if [ "$running" -ge "$jobs" ]; then wait -n || true; running=$((running - 1)); fi
done
wait || true

# the table, from each log's final stats
python3 - "$work" "$seconds" "$json" "$build/crashes" "${targets[@]}" <<'EOF'
import datetime, json, os, re, subprocess, sys
work, seconds, out, crashes = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
rows, bad = [], 0
for t in sys.argv[5:]:
    log = open(os.path.join(work, t, "log"), errors="replace").read()
    rc = int(open(os.path.join(work, t, "rc")).read().strip() or 1)
    def stat(k, conv=int):
        m = re.findall(r"stat::%s:\s+(\d+)" % k, log)
        return conv(m[-1]) if m else None
    cov = re.findall(r"cov: (\d+) ft: (\d+) corp: (\d+)/", log)
    execs = stat("number_of_executed_units")
    if execs is None:
        n = re.findall(r"^#(\d+)", log, re.M)
        execs = int(n[-1]) if n else 0
    art = re.findall(r"Test unit written to (\S+)", log)
    why = re.findall(r"(ERROR: AddressSanitizer: [\w-]+|ERROR: LeakSanitizer|runtime error: .*|ERROR: libFuzzer: [\w-]+"
                     r"|pp8 fuzz: check failed.*|==\d+== ERROR: libFuzzer: [\w-]+)", log)
    ok = rc == 0 and not art and not why
    bad += not ok
    rows.append({"target": t, "seconds": seconds, "executions": execs,
                 "exec_per_s": stat("average_exec_per_sec") or (execs // seconds),
                 "cov": int(cov[-1][0]) if cov else None, "ft": int(cov[-1][1]) if cov else None,
                 "corpus": int(cov[-1][2]) if cov else None, "slowest_s": stat("slowest_unit_time_sec"),
                 "peak_rss_mb": stat("peak_rss_mb"),
                 "result": "ok" if ok else "FAIL (rc %d): %s" % (rc, why[0][:160] if why else "see the log"),
                 "artifact": art[-1] if art else None})
fmt = "%-24s %6s %11s %8s %6s %7s %7s %8s  %s"
print(fmt % ("target", "s", "executions", "exec/s", "cov", "ft", "corpus", "slowest", "result"))
for r in rows:
    print(fmt % (r["target"], r["seconds"], r["executions"], r["exec_per_s"], r["cov"], r["ft"], r["corpus"],
                 "%ss" % r["slowest_s"], r["result"]))
    if r["artifact"]:
        print("    input saved: %s" % r["artifact"])
if out:
    git = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    with open(out, "w") as f:
        json.dump({"date": datetime.date.today().isoformat(), "git": git, "host_cores": os.cpu_count(),
                   "targets": rows}, f, indent=1)
sys.exit(1 if bad else 0)
EOF
