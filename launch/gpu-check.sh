#!/usr/bin/env bash
# gpu-check.sh: the prepared GPU check (issue 15), in phases, for a fresh GPU machine with no network.
#
#   bash launch/gpu-check.sh OUT [PHASE...]     phases: build kernels bench peer nccl (default: all, in order)
#
#   build    configure + build build-gpu/ for this GPU's architecture only, `ctest -L gpu` without the
#            long pipeline and NCCL tests, and the GPU's read bandwidth (pp8 bench's probe)       cap 330 s
#   kernels  one decode step per op and layer (pp8 bench --profile: CUDA event pairs, no host waits;
#            runs[].kernels in the JSON) at batch 1 and 8, OPT-13B int8 and bf16, for each kernel set in
#            PP8_CUDA_KERNELS_LIST (default "v1 v2": old and new side by side); the summary: us per step by op;
#            torch's F.linear bf16 on the same shapes at 1/8/32 rows (launch/torch_linear.py)     cap 120 s
#   bench    pp8 bench --backend cuda, OPT-13B, int8 and bf16, batch 1/8/32, prompt 32, gen 64, per
#            kernel set in PP8_BENCH_KERNELS (default "v2")                                      cap 150 s
#   peer     the seed's system beside pp8 on one checkpoint (the peer kit's run_on_gpu.sh, OPT-6.7B:
#            transformers + bitsandbytes int8, bf16, fp16; logits compared)                    cap 330 s
#   nccl     NCCL's version, then `ctest -L nccl`: test_gpu_nccl on 2 and 3 ranks sharing the GPU by
#            both test routes (PP8_NCCL_SHARED_GPU=hostid|multi) and pipeline_identical over NCCL  cap 240 s
#
# Each phase runs alone too (later phases build first when build-gpu/ is missing). Each writes, as soon
# as it ends, OUT/PHASE.json ({"phase", "rc", "seconds", "cap_s", "summary", ...}), its log OUT/PHASE.log
# and one line of OUT/summary.txt, so a run cut short still returns what it did. Caps: PP8_CAP_<PHASE>
# (seconds). The caps add up to 19.5 minutes, more than one 10-minute call of the device tool: run
# "build kernels bench", then "peer", then "nccl" as separate calls (build-gpu/ stays while the machine
# is warm), with each call's timeout above its caps. Times on an H200 are not measured yet.
#
# Prepare on a machine with Debian's registry: `bash launch/gpu-kit.sh` (Open MPI, cJSON and
# libmicrohttpd as .deb files, nccl.h, the peer kit, in gpukit/), then carry "gpukit" with the checkout.
# NCCL comes from /usr/local/cuda when it has it, else from the image's nvidia-nccl wheel.
set -uo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-}
case "$out" in ""|-h|--help) sed -n '2,28p' "$0" | sed 's/^# \{0,1\}//'; [ -n "$out" ]; exit $? ;; esac
shift
phases=("$@")
[ ${#phases[@]} -gt 0 ] || phases=(build kernels bench peer nccl)
for p in "${phases[@]}"; do
  case "$p" in build|kernels|bench|peer|nccl) ;; *) echo "gpu-check: unknown phase '$p' (build kernels bench peer nccl)" >&2; exit 2 ;; esac
done
mkdir -p "$out" && out=$(cd "$out" && pwd)
cd "$here"
kit=${PP8_GPU_KIT:-$here/gpukit}
bdir=$here/build-gpu
PY=${PYTHON:-python3}
T0=$SECONDS
say() { echo "[gpu-check +$(( SECONDS - T0 ))s] $*" | tee -a "$out/run.log" >&2; }

# ---- environment: the kit's libraries for pp8, mpirun and the build only ----
kit_env() {
  if command -v mpirun >/dev/null 2>&1 && [ -e /usr/include/cjson/cJSON.h ] && [ -e /usr/include/microhttpd.h ]; then
    say "Open MPI, cJSON and libmicrohttpd are installed: the kit is not needed"
    return 0
  fi
  [ -d "$kit/debs" ] || { say "error: no Open MPI/cJSON here and no kit at $kit/debs: run launch/gpu-kit.sh on a machine with Debian's registry and carry gpukit"; return 1; }
  local root=$kit/root
  if [ ! -e "$root/.unpacked" ]; then
    command -v dpkg-deb >/dev/null || { say "error: dpkg-deb not found: the kit's .deb files need a Debian or Ubuntu image"; return 1; }
    rm -rf "$root" && mkdir -p "$root"
    for d in "$kit"/debs/*.deb; do dpkg-deb -x "$d" "$root" || { say "error: cannot unpack $d"; return 1; }; done
    # the general libraries the kit brings for images without them stay the image's where it has them
    # (its Python loads libffi, gnutls...): the kit's copy of such a soname leaves the search path
    local so sys
    sys=$(ldconfig -p 2>/dev/null | awk '{print $1}')
    mkdir -p "$root/shadowed"
    for so in "$root"/usr/lib/x86_64-linux-gnu/lib{ffi,gnutls,nettle,hogweed,gmp,tasn1,p11-kit,idn2,unistring,atomic}.so.*; do
      [ -e "$so" ] || continue
      grep -qxF "$(basename "$so")" <<<"$sys" && mv "$so" "$root/shadowed/"
    done
    ln -sf mpirun.openmpi "$root/usr/bin/mpirun"
    ln -sf mpicc.openmpi "$root/usr/bin/mpicc"
    touch "$root/.unpacked"
  fi
  local lib=$root/usr/lib/x86_64-linux-gnu
  export OPAL_PREFIX=$root/usr PMIX_INSTALL_PREFIX=$lib/pmix2
  export PATH=$root/usr/bin:$PATH
  export LD_LIBRARY_PATH=$lib:$lib/openmpi/lib:$lib/pmix2/lib:$lib/libfabric${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
  export CMAKE_PREFIX_PATH=$root/usr${CMAKE_PREFIX_PATH:+:$CMAKE_PREFIX_PATH}
  export OMPI_MCA_pml=ob1 OMPI_MCA_btl=self,vader OMPI_MCA_osc=pt2pt
  say "kit: Open MPI, cJSON, libmicrohttpd from $root ($(mpirun --version 2>&1 | head -1))"
}

nccl_args=()
nccl_env() {
  if [ -e /usr/local/cuda/include/nccl.h ] && ls /usr/local/cuda/lib64/libnccl.so* >/dev/null 2>&1; then
    say "NCCL: /usr/local/cuda"; return 0
  fi
  local d
  d=$("$PY" -c 'import nvidia.nccl as n, os; print(list(n.__path__)[0])' 2>/dev/null) || d=""
  local so
  so=$(ls "$d"/lib/libnccl.so* 2>/dev/null | head -1)
  if [ -z "$so" ]; then say "warning: no NCCL (not in /usr/local/cuda, no nvidia-nccl wheel for $PY): pp8 builds without it and the nccl phase fails"; return 0; fi
  local inc=$d/include
  [ -e "$inc/nccl.h" ] || inc=$kit/nccl
  [ -e "$inc/nccl.h" ] || { say "warning: NCCL wheel at $d has no nccl.h and the kit none: building without NCCL"; return 0; }
  nccl_args=(-DNCCL_LIBRARY="$so" -DNCCL_INCLUDE_DIR="$inc")
  export LD_LIBRARY_PATH=$d/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
  say "NCCL: $so, header $inc/nccl.h"
}

# ---- one phase: its own cap, its JSON and summary line written when it ends ----
# run_phase NAME FUNC: FUNC writes its summary to $ph_summary and extra JSON fields to $ph_extra (a
# JSON object's inner text); its output goes to OUT/NAME.log
run_phase() {
  local name=$1 fn=$2 capvar=PP8_CAP_${1^^} cap
  case "$name" in build) cap=330 ;; kernels) cap=120 ;; bench) cap=150 ;; peer) cap=330 ;; nccl) cap=240 ;; esac
  cap=${!capvar:-$cap}
  local t=$SECONDS
  say "phase $name: start (cap ${cap}s)"
  ph_summary=""; ph_extra=""
  PH_DEADLINE=$(( SECONDS + cap ))
  "$fn" > "$out/$name.log" 2>&1
  local rc=$?
  (( SECONDS > PH_DEADLINE )) && [ $rc = 0 ] && rc=124
  [ -n "$ph_summary" ] || ph_summary="rc $rc (see $name.log)"
  "$PY" - "$out/$name.json" "$name" "$rc" "$(( SECONDS - t ))" "$cap" "$ph_summary" "{${ph_extra}}" <<'EOF'
import json, sys
path, name, rc, sec, cap, summary, extra = sys.argv[1:8]
try:
    extra = json.loads(extra)
except ValueError:
    extra = {"extra_unparsed": extra}
d = {"phase": name, "rc": int(rc), "seconds": int(sec), "cap_s": int(cap), "summary": summary}
d.update(extra)
open(path, "w").write(json.dumps(d, indent=1) + "\n")
EOF
  echo "$name: rc $rc, $(( SECONDS - t ))s of ${cap}s: $ph_summary" >> "$out/summary.txt"
  say "phase $name: rc $rc in $(( SECONDS - t ))s: $ph_summary"
  return $rc
}
# the time a phase has left, for the timeouts inside it
left() { local l=$(( PH_DEADLINE - SECONDS )); [ $l -gt 5 ] && echo $l || echo 5; }

pp8_run() { mpirun --allow-run-as-root --bind-to none -np 1 "$bdir/pp8" "$@"; }

arch() {
  local cc
  cc=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -1 | tr -d ' .')
  echo "${cc:-90}"
}

phase_build() {
  nvidia-smi --query-gpu=name,driver_version,memory.total,compute_cap --format=csv || { ph_summary="no GPU (nvidia-smi failed)"; return 1; }
  local a; a=$(arch)
  local gpu; gpu=$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1)
  timeout "$(left)" cmake -S . -B "$bdir" -DCMAKE_BUILD_TYPE=Release -DPP8_CUDA=ON -DPP8_CUDA_ARCHS="$a" \
      -DMPIEXEC_EXECUTABLE="$(command -v mpirun)" "${nccl_args[@]}" || { ph_summary="cmake failed"; return 1; }
  timeout "$(left)" cmake --build "$bdir" -j "$(nproc)" || { ph_summary="build failed"; return 1; }
  "$bdir/pp8" --version
  if ! "$bdir/pp8" --version | grep -q '^transport: .*nccl'; then
    ph_summary="pp8 --version lists no NCCL transport: NCCL was not found (see the log)"; return 1
  fi
  local tl=$(( $(left) - 40 )); [ $tl -gt 10 ] || tl=10   # 40 s kept for the bandwidth probe
  (cd "$bdir" && OMPI_MCA_rmaps_base_oversubscribe=1 timeout "$tl" ctest -L gpu -E 'pipeline|nccl' --output-on-failure)
  local trc=$?
  pp8_run bench --backend cuda --config configs/opt-125m.json --dtype bf16 --batch 1 --gen 2 --json "$out/bandwidth.json" || true
  local bw
  bw=$("$PY" -c 'import json,sys; print("%.0f" % json.load(open(sys.argv[1]))["read_bandwidth_gbs"])' "$out/bandwidth.json" 2>/dev/null || echo "?")
  local cuda; cuda=$(nvcc --version 2>/dev/null | sed -n 's/.*release \([0-9.]*\).*/\1/p')
  ph_summary="$gpu sm_$a, CUDA $cuda, git $(git rev-parse --short HEAD 2>/dev/null); ctest -L gpu (fast) rc $trc; read bandwidth $bw GB/s"
  ph_extra="\"gpu\": \"$gpu\", \"arch\": \"sm_$a\", \"cuda\": \"$cuda\", \"ctest_rc\": $trc, \"read_bandwidth_gbs\": \"$bw\""
  return $trc
}

bench_summary() { # FILE: "int8 b1 12.3 t/s (34%) ..." from pp8 bench's JSON
  "$PY" - "$1" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
rate = {}
parts = []
for r in d["runs"]:
    rate[(r["dtype"], r["batch"])] = r["decode_tokens_per_s"]
    parts.append("%s b%d %.1f t/s (%.0f%% of roofline)" % (r["dtype"], r["batch"], r["decode_tokens_per_s"],
                 100 * r["decode_tokens_per_s"] / r["roofline_tokens_per_s"]))
for b in sorted({b for _, b in rate}):
    if ("int8", b) in rate and ("bf16", b) in rate:
        parts.append("int8/bf16 b%d %.2fx" % (b, rate[("int8", b)] / rate[("bf16", b)]))
print("; ".join(parts))
EOF
}

phase_kernels() {
  local rc=0 k files=()
  for k in ${PP8_CUDA_KERNELS_LIST:-v1 v2}; do
    PP8_CUDA_KERNELS=$k timeout "$(left)" mpirun --allow-run-as-root --bind-to none -np 1 "$bdir/pp8" bench \
        --backend cuda --config configs/opt-13b.json --dtype int8,bf16 --batch 1,8 --gen 8 --profile \
        --json "$out/kernels-$k.json" || rc=1
    files+=("kernels-$k.json")
  done
  local f sum=""
  for f in "${files[@]}"; do
    sum+="$f: $("$PY" - "$out/$f" <<'PYEOF' 2>/dev/null
import json, sys
j = json.load(open(sys.argv[1]))
parts = []
for r in j["runs"]:
    by = {}
    for k in r.get("kernels", []):
        by[k["op"]] = by.get(k["op"], 0.0) + k["us"]
    top = sorted(by.items(), key=lambda kv: -kv[1])[:4]
    parts.append("%s b%d %.0f us/step (%s)" % (r["dtype"], r["batch"], 1e6 * r["decode_s"] / r["gen"],
                                               " ".join("%s %.0f" % kv for kv in top)))
print("; ".join(parts))
PYEOF
)  "
  done
  # the bf16 baseline a user would pick instead: torch's F.linear on the same shapes, GB/s of weights
  local tsum
  timeout "$(left)" "$PY" launch/torch_linear.py --config configs/opt-13b.json --rows 1,8,32 \
      --json "$out/torch_linear.json" || rc=1
  tsum=$("$PY" -c 'import json,sys; print(" ".join("%s %.0f" % (r["op"], r["gbs"]) for r in json.load(open(sys.argv[1]))["linears"] if r["rows"] == 1))' "$out/torch_linear.json" 2>/dev/null)
  ph_summary="per op and layer in ${files[*]}: ${sum:-no runs[].kernels}; torch F.linear bf16 1 row GB/s: ${tsum:-none}"
  return $rc
}

phase_bench() {
  local k rc=0
  ph_summary="OPT-13B:"
  for k in ${PP8_BENCH_KERNELS:-v2}; do
    PP8_CUDA_KERNELS=$k timeout "$(left)" mpirun --allow-run-as-root --bind-to none -np 1 "$bdir/pp8" bench \
        --backend cuda --config configs/opt-13b.json --dtype int8,bf16 --batch 1,8,32 --prompt-len 32 --gen 64 \
        --json "$out/bench-$k.json" || { rc=1; continue; }
    ph_summary+=" kernels $k: $(bench_summary "$out/bench-$k.json");"
  done
  return $rc
}

phase_peer() {
  [ -d "$kit/peer" ] || { ph_summary="no peer kit at $kit/peer (launch/gpu-kit.sh copies it)"; return 1; }
  mkdir -p "$out/peer"
  BUDGET=$(( $(left) - 10 )) bash "$kit/peer/run_on_gpu.sh" "$bdir" "${PEER_MODEL:-opt-6.7b}" "$out/peer"
  local rc=$?
  ph_summary="peer kit, ${PEER_MODEL:-opt-6.7b}: $(head -c 600 "$out/peer/summary.txt" 2>/dev/null | tr '\n' ' ')"
  return $rc
}

phase_nccl() {
  local v
  v=$("$PY" -c 'import torch; print(".".join(map(str, torch.cuda.nccl.version())))' 2>/dev/null || echo "?")
  (cd "$bdir" && NCCL_DEBUG=WARN OMPI_MCA_rmaps_base_oversubscribe=1 timeout "$(left)" ctest -L nccl --output-on-failure)
  local rc=$?
  local res
  res=$(cd "$bdir" && ctest -L nccl -N 2>/dev/null | grep -c 'Test #' || true)
  ph_summary="NCCL $v (torch's); ctest -L nccl rc $rc over $res tests (see nccl.log: skipped = refused by NCCL)"
  ph_extra="\"nccl_version\": \"$v\", \"ctest_rc\": $rc"
  return $rc
}

kit_env || { echo "setup: rc 1: kit missing (see run.log)" >> "$out/summary.txt"; exit 1; }
nccl_env
say "gpu-check: phases ${phases[*]}, results in $out"
# a phase that needs pp8 builds it first when build-gpu/ has none
if [ ! -x "$bdir/pp8" ] && [ "${phases[0]}" != build ]; then phases=(build "${phases[@]}"); fi
status=0
for p in "${phases[@]}"; do
  run_phase "$p" "phase_$p" || { status=1; [ "$p" = build ] && [ ! -x "$bdir/pp8" ] && { say "no pp8 binary: the other phases cannot run"; break; }; }
done
say "done in $(( SECONDS - T0 ))s"
exit $status
