#!/usr/bin/env bash
# pp8 against llama.cpp on the CPU, side by side (a benchmark, not a test). Builds llama.cpp's own tools
# (llama-bench, llama-batched-bench, llama-quantize; Release, CPU only) from the llama.cpp tree vendored in
# PyPI's llama-cpp-python source distribution, writes one random-weight BLOOM-560M-shape checkpoint with
# outlier feature dimensions and a BLOOM-layout tokenizer.json (launch/make_bloom_bench_ckpt.py), converts it
# with llama.cpp's convert_hf_to_gguf.py to F16 and BF16 and with llama-quantize to Q8_0 and Q8_0 with an
# F16 head, then measures decode at batch 1/8/32 and prefill of 32 and 512 tokens, alternating the engines
# run by run (launch/bench_vs_llamacpp.py). Everything is cached under BUILD/llamacpp/; nothing of
# llama.cpp is committed. It does not check outputs (random weights): speed only.
#
# usage: launch/bench-vs-llamacpp.sh [--pairs N] [--threads 1,2] [--tests decode,prefill32,prefill512]
#            [--gen N] [--json FILE] [--build DIR] [--jobs N] [--quick]
#   defaults: 3 pairs, threads 1,2, all tests, --gen 16 (decode steps), --build build, --jobs $(nproc)
#   --build DIR: pp8 is DIR/pp8, used as it is when it exists (else built there); llama.cpp, the venv, the
#     checkpoint and the GGUF files are cached in DIR/llamacpp/ (~10 GB; delete it to start afresh)
#   --quick: 1 pair, the first thread count, --gen 8 (checks the script; numbers are not for quoting)
# env:   PP8_ISA=avx512|avx2|scalar caps pp8's kernels and selects a llama.cpp build with the same ceiling
#        (AMX off, ...); unset or amx: llama.cpp built -DGGML_NATIVE=ON.
#        LLAMA_CPP_PYTHON_VERSION (default 0.3.36: the llama-cpp-python sdist whose llama.cpp is used)
set -euo pipefail
self=$(realpath "$0")
here=$(cd "$(dirname "$self")/.." && pwd)
cd "$here"
die() { echo "bench-vs-llamacpp: $*" >&2; exit 1; }
say() { echo "[bench-vs-llamacpp] $*" >&2; }

pairs=3; threads=1,2; tests=decode,prefill32,prefill512; gen=16; json=""; build=build; quick=0
jobs=$(nproc 2>/dev/null || echo 2)
while [ $# -gt 0 ]; do
  case "$1" in
    --pairs) pairs=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    --tests) tests=$2; shift 2 ;;
    --gen) gen=$2; shift 2 ;;
    --json) json=$(realpath -m "$2"); shift 2 ;;
    --build) build=$2; shift 2 ;;
    --jobs) jobs=$2; shift 2 ;;
    --quick) quick=1; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$self" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown option $1 (see --help)" ;;
  esac
done
if [ "$quick" = 1 ]; then pairs=1; threads=${threads%%,*}; gen=8; fi
[[ "$pairs" =~ ^[1-9][0-9]*$ ]] || die "--pairs $pairs: want a positive integer"
[[ "$gen" =~ ^[1-9][0-9]*$ ]] || die "--gen $gen: want a positive integer"
[[ "$threads" =~ ^[1-9][0-9]*(,[1-9][0-9]*)*$ ]] || die "--threads $threads: want a list like 1,2"
for t in ${tests//,/ }; do
  [[ "$t" =~ ^(decode|prefill32|prefill512)$ ]] || die "--tests: $t is not one of decode,prefill32,prefill512"
done
build=$(realpath -m "$build")
work=$build/llamacpp
mkdir -p "$work/dl" "$work/logs"
ver=${LLAMA_CPP_PYTHON_VERSION:-0.3.36}
py=${PYTHON:-python3}

# the expected duration, from smoke runs on a 2-core Xeon with AMX: per pair about 170 s + 5 s per --gen token
# at 1 thread, about 2/3 of that at 2 or more (all tests), up to 1.5x that when the machine is busy; the first
# run adds ~15 min of downloads and builds (llama.cpp with 2 jobs, twice on an AMX machine: see the probe below)
est=0
for t in ${threads//,/ }; do est=$((est + (170 + 5 * gen) * (t == 1 ? 3 : 2) / 3)); done
est=$((est * pairs / 60 + 1))
say "$pairs pair(s) x threads {$threads} x tests {$tests}, --gen $gen: expect about $est min on a quiet 2-core" \
    "machine (+ ~15 min the first time: downloads and builds)"

# --- pp8: an existing BUILD/pp8 is measured as it is (rebuild it yourself after changing the code; the table
# prints its git version); otherwise it is built here, Release --------------------------------------------------
pp8=$build/pp8
if [ ! -x "$pp8" ]; then
  if [ ! -f "$build/CMakeCache.txt" ]; then
    bash launch/setup.sh || die "launch/setup.sh failed (missing Debian packages?)"
    cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release >"$work/logs/pp8-configure.log" 2>&1 ||
      die "configuring pp8 in $build failed; log: $work/logs/pp8-configure.log"
  fi
  say "building pp8 in $build"
  cmake --build "$build" -j "$jobs" --target pp8 >"$work/logs/pp8-build.log" 2>&1 ||
    die "building pp8 in $build failed: $(grep -m1 'error' "$work/logs/pp8-build.log" || tail -1 "$work/logs/pp8-build.log"); log: $work/logs/pp8-build.log"
fi

# --- a venv (its pip: Debian's python3 has none of its own), llama.cpp's source: the tree vendored in
# llama-cpp-python's sdist ----------------------------------------------------------------------------------------
venv=$work/venv
if [ ! -x "$venv/bin/pip" ]; then
  "$py" -m venv "$venv" >"$work/logs/venv.log" 2>&1 ||
    die "$py -m venv $venv failed (python3-venv missing?): $(tail -1 "$work/logs/venv.log"); log: $work/logs/venv.log"
fi
sdist=$work/dl/llama_cpp_python-$ver.tar.gz
if [ ! -f "$sdist" ]; then
  say "downloading the llama-cpp-python $ver source distribution (PyPI)"
  "$venv/bin/pip" download -q --no-binary :all: --no-deps -d "$work/dl" "llama-cpp-python==$ver" \
    >"$work/logs/pip-download.log" 2>&1 ||
    die "pip download llama-cpp-python==$ver failed (no network, or PyPI unreachable?): $(tail -1 "$work/logs/pip-download.log"); log: $work/logs/pip-download.log"
  [ -f "$sdist" ] || die "pip download gave no $sdist"
fi
src=$work/src/llama_cpp_python-$ver
ll=$src/vendor/llama.cpp
if [ ! -f "$src/.unpacked" ]; then
  rm -rf "$src"; mkdir -p "$work/src"
  tar -xzf "$sdist" -C "$work/src" || die "unpacking $sdist failed"
  [ -f "$ll/convert_hf_to_gguf.py" ] && [ -f "$ll/ggml/CMakeLists.txt" ] ||
    die "$sdist has no vendored llama.cpp (vendor/llama.cpp)"
  touch "$src/.unpacked"
fi

# --- llama.cpp builds: which one depends on PP8_ISA -------------------------------------------------------------
cpuflags=" $(grep -m1 '^flags' /proc/cpuinfo | cut -d: -f2) "
has() { [[ "$cpuflags" == *" $1 "* ]]; }
variant_flags() { # VARIANT -> cmake flags (option names as in this tree's ggml/CMakeLists.txt)
  case "$1" in
    native) echo "-DGGML_NATIVE=ON" ;;
    avx512) # the native build less AMX
      local f="-DGGML_NATIVE=OFF -DGGML_AVX512=ON -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF"
      has avx512vbmi && f+=" -DGGML_AVX512_VBMI=ON"
      has avx512_vnni && f+=" -DGGML_AVX512_VNNI=ON"
      has avx512_bf16 && f+=" -DGGML_AVX512_BF16=ON"
      has avx_vnni && f+=" -DGGML_AVX_VNNI=ON"
      echo "$f" ;;
    avx2) echo "-DGGML_NATIVE=OFF -DGGML_AVX512=OFF -DGGML_AVX_VNNI=OFF" ;; # GGML_NATIVE=OFF: SSE4.2 AVX AVX2 FMA F16C BMI2
    scalar) echo "-DGGML_NATIVE=OFF -DGGML_SSE42=OFF -DGGML_AVX=OFF -DGGML_AVX2=OFF -DGGML_BMI2=OFF -DGGML_FMA=OFF -DGGML_F16C=OFF -DGGML_AVX512=OFF -DGGML_AVX_VNNI=OFF" ;;
  esac
}
build_llama() { # VARIANT: builds the three tools in $work/build-VARIANT (again when its flags changed)
  local v=$1 d=$work/build-$1
  if [ ! -x "$d/bin/llama-bench" ] || [ ! -x "$d/bin/llama-batched-bench" ] || [ ! -x "$d/bin/llama-quantize" ] ||
     [ "$(cat "$d/.bench-flags" 2>/dev/null)" != "$(variant_flags "$v")" ]; then
    say "building llama.cpp ($v: $(variant_flags "$v")) in $d, $jobs jobs (several minutes)"
    # shellcheck disable=SC2046
    cmake -S "$ll" -B "$d" -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=OFF -DGGML_CUDA=OFF -DGGML_OPENMP=ON \
      -DLLAMA_OPENSSL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF \
      -DLLAMA_BUILD_APP=OFF $(variant_flags "$v") >"$work/logs/llama-$v-configure.log" 2>&1 ||
      die "configuring llama.cpp ($v) failed: $(tail -1 "$work/logs/llama-$v-configure.log"); log: $work/logs/llama-$v-configure.log"
    cmake --build "$d" -j "$jobs" --target llama-bench llama-batched-bench llama-quantize \
      >"$work/logs/llama-$v-build.log" 2>&1 ||
      die "building llama.cpp ($v) failed: $(grep -m1 -i error "$work/logs/llama-$v-build.log" || tail -1 "$work/logs/llama-$v-build.log"); log: $work/logs/llama-$v-build.log"
    variant_flags "$v" >"$d/.bench-flags"
  fi
}
case "${PP8_ISA:-}" in
  ""|amx) variant=native ;;
  avx512|avx2|scalar) variant=$PP8_ISA ;;
  *) die "PP8_ISA=$PP8_ISA: want scalar|avx2|avx512|amx" ;;
esac
build_llama "$variant"
lbin=$work/build-$variant/bin
llver="$("$lbin/llama-bench" --version 2>&1 | sed -n 's/^version: //p' | head -1) (llama-cpp-python $ver)"

# --- the converter's Python packages (in the venv, cached): the tree's pins, from PyPI only ----------------------
reqs=$work/requirements-convert.txt
# the tree's requirement files, less their download.pytorch.org index and their -r includes (both inlined
# here) and gguf (the tree's own gguf-py is installed instead). PyPI's Linux torch wheel brings its CUDA
# libraries (~4.5 GB in the venv): the converter imports torch, and PyPI has no CPU-only torch for x86_64.
sed -e '/^--/d' -e '/^-r /d' -e '/^gguf/d' -e '/^#/d' -e '/^ *$/d' \
  "$ll/requirements/requirements-convert_hf_to_gguf.txt" "$ll/requirements/requirements-convert_legacy_llama.txt" \
  | sort -u >"$reqs.new"
echo "tokenizers" >>"$reqs.new"
if ! cmp -s "$reqs.new" "$venv/.requirements"; then
  say "installing the converter's Python packages into $venv ($(paste -sd' ' "$reqs.new"))"
  "$venv/bin/pip" install -q -r "$reqs.new" "$ll/gguf-py" >"$work/logs/pip-install.log" 2>&1 ||
    die "pip install of the converter's packages failed (no network? disk full?): $(grep -m1 -i error "$work/logs/pip-install.log" || tail -1 "$work/logs/pip-install.log"); log: $work/logs/pip-install.log"
  "$venv/bin/python" -c "import torch, numpy, transformers, tokenizers, safetensors, sentencepiece" \
    >"$work/logs/venv-check.log" 2>&1 ||
    die "the converter's venv does not import: $(tail -1 "$work/logs/venv-check.log"); log: $work/logs/venv-check.log"
  cp "$reqs.new" "$venv/.requirements"
fi
rm -f "$reqs.new"

# --- the checkpoint and its GGUF files -------------------------------------------------------------------------
models=$work/models
stem=bloom-560m
hf=$models/$stem-hf
outliers=6
gen_stamp="$(cksum <launch/make_bloom_bench_ckpt.py | cut -d' ' -f1)-$(cksum <tests/make_checkpoint.py | cut -d' ' -f1)-$outliers"
if [ "$(cat "$hf/.done" 2>/dev/null)" != "$gen_stamp" ]; then
  say "writing the random BLOOM-560M-shape checkpoint to $hf"
  rm -rf "$hf" "$models/$stem"-*.gguf
  "$venv/bin/python" launch/make_bloom_bench_ckpt.py configs/bloom-560m.json "$hf" --outliers "$outliers" \
    >"$work/logs/checkpoint.log" 2>&1 ||
    die "writing the checkpoint failed: $(tail -1 "$work/logs/checkpoint.log"); log: $work/logs/checkpoint.log"
  echo "$gen_stamp" >"$hf/.done"
fi
for t in F16 BF16; do
  f=$models/$stem-$t.gguf
  [ -f "$f" ] && continue
  say "converting to $t with convert_hf_to_gguf.py"
  "$venv/bin/python" launch/bench_vs_llamacpp.py convert "$ll" "$hf" --outtype "${t,,}" --outfile "$f.tmp" \
    >"$work/logs/convert-$t.log" 2>&1 ||
    die "convert_hf_to_gguf.py --outtype ${t,,} failed: $(grep -v '^ *$' "$work/logs/convert-$t.log" | tail -1); log: $work/logs/convert-$t.log"
  mv "$f.tmp" "$f"
done
# BLOOM ties its LM head to token_embd, so llama.cpp's head is token_embd: Q8_0 quantizes it too,
# --token-embedding-type f16 keeps it F16 (pp8's default: int8 layers, fp16 embedding and head)
for t in Q8_0 Q8_0-f16-head; do
  f=$models/$stem-$t.gguf
  [ -f "$f" ] && continue
  extra=(); [ "$t" = Q8_0-f16-head ] && extra=(--token-embedding-type f16 --output-tensor-type f16)
  say "quantizing to $t with llama-quantize"
  "$lbin/llama-quantize" "${extra[@]}" "$models/$stem-F16.gguf" "$f.tmp" Q8_0 >"$work/logs/quantize-$t.log" 2>&1 ||
    die "llama-quantize $t failed: $(tail -1 "$work/logs/quantize-$t.log"); log: $work/logs/quantize-$t.log"
  mv "$f.tmp" "$f"
done

# --- llama.cpp's AMX kernels: a probe, and a build without them where they crash --------------------------------
fallback=(); fbv=""
if [ "$variant" = native ] && has amx_int8; then
  rc=0 # (a subshell that waits, whose stderr is the log, so that bash's "Segmentation fault" line goes there too)
  ("$lbin/llama-bench" -m "$models/$stem-Q8_0.gguf" -t 1 -p 16 -n 0 -r 1 --no-warmup; r=$?; exit $r) \
    >"$work/logs/amx-probe.log" 2>&1 || rc=$?
  if [ "$rc" -gt 128 ]; then # killed by a signal (SIGSEGV in ggml_backend_amx_mul_mat on the machine this was written on)
    if has avx512f; then fbv=avx512; else fbv=avx2; fi
    say "llama.cpp's native (AMX) build dies (signal $((rc - 128))) on a 16-token Q8_0 prefill here" \
        "(log: $work/logs/amx-probe.log); runs that die so are repeated with the $fbv build (AMX off)," \
        "and the table says which build ran"
    build_llama "$fbv"
    fallback=(--fallback-bin "$work/build-$fbv/bin" --fallback-label "$fbv")
  fi
fi

# --- measure ---------------------------------------------------------------------------------------------------
logs=$work/logs/run-$(date +%Y%m%d-%H%M%S)
args=(run --pp8 "$pp8" --hf "$hf" --gguf "$models" --stem "$stem" --outliers "$outliers" --llama-bin "$lbin"
      --llama-label "$variant" --llama-version "$llver" "${fallback[@]}" --pairs "$pairs" --threads "$threads"
      --tests "$tests" --gen "$gen" --logdir "$logs")
[ -n "$json" ] && args+=(--json "$json")
say "measuring; per-run logs in $logs"
"$py" launch/bench_vs_llamacpp.py "${args[@]}"
