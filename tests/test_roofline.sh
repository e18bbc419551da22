#!/usr/bin/env bash
# pp8 bench's decode bound follows the kernel paths the dispatch picks (issue 18), one process, OPT-125M
# shape with random weights:
# - PP8_ISA=scalar: int8 layers and the fp16 head both run "scalar", so the peaks are reported per dtype
#   ("scalar/int8" imul+add, "scalar/fp16" mulss+addss), the compute bound is the step's ops over them,
#   and decode must not beat the bound (the scalar kernels issue at least one multiply and one add per
#   MAC, so a faster run means a wrong peak or op count);
# - PP8_ISA=avx512 (where the CPU has it): the capped paths' peaks, no AMX probe, on a machine with AMX.
# The bench-wide checks (bound <= both parts, the label, peaks for the listed paths) are test_bench.sh's.
set -u
: "${PP8:?}" "${PP8_SRC:?}"
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
fail=0
cfg="$PP8_SRC/configs/opt-125m.json"
ok() { echo "ok   $1"; }
bad() { echo "FAIL $1"; fail=1; }
run() { # run NAME ENV... -- ARGS...: bench into $tmp/NAME.json
  local name=$1; shift
  local envs=(); while [ "$1" != "--" ]; do envs+=("$1"); shift; done; shift
  if env "${envs[@]}" timeout 240 "$PP8" bench --config "$cfg" --prompt-len 4 --gen 3 "$@" --json "$tmp/$name.json" \
    >"$tmp/$name.out" 2>"$tmp/$name.err"; then
    return 0
  fi
  bad "$name: bench exited non-zero"; sed 's/^/    /' "$tmp/$name.err" | tail -5; return 1
}

if run scalar PP8_ISA=scalar -- --dtype int8 --batch 1; then
  python3 - "$tmp/scalar.json" <<'PY' && ok "scalar: per-dtype peaks, ops over peaks, decode within the bound" || bad "scalar"
import json, sys
r = json.load(open(sys.argv[1]))["runs"][0]
assert r["kernel_paths"]["linear_decode"] == "scalar" and r["kernel_paths"]["lm_head_decode"] == "scalar", r["kernel_paths"]
assert sorted(r["peaks_gops"]) == ["scalar/fp16", "scalar/int8"], r["peaks_gops"]
assert r["peak_probes"]["scalar/int8"] == "imul + add", r["peak_probes"]
assert r["decode_tokens_per_s"] <= 1.1 * r["bound_tokens_per_s"], (r["decode_tokens_per_s"], r["bound_tokens_per_s"])
# the compute bound is the op count over the peaks: 2 ops per weight for the one row, the head (50272 x
# 768) at the fp16 scalar peak and the layers at the int8 one
head = 2.0 * 50272 * 768
layers = r["bound_step_ops"][0] - head
assert 2 * 80e6 < layers < 2 * 90e6, r["bound_step_ops"]
want = 1 / (layers / (r["peaks_gops"]["scalar/int8"] * 1e9) + head / (r["peaks_gops"]["scalar/fp16"] * 1e9))
assert abs(r["compute_bound_tokens_per_s"] / want - 1) < 1e-6, (r["compute_bound_tokens_per_s"], want)
PY
fi

if grep -q avx512_vnni <("$PP8" --version 2>&1); then
  if run avx512 PP8_ISA=avx512 -- --dtype int8 --batch 1,16; then
    python3 - "$tmp/avx512.json" <<'PY' && ok "avx512 cap: the capped paths' peaks" || bad "avx512 cap"
import json, sys
for r in json.load(open(sys.argv[1]))["runs"]:
    assert r["kernel_paths"]["linear_decode"] == "avx512-vnni", r["kernel_paths"]
    assert "avx512-vnni" in r["peaks_gops"] and not any(k.startswith("amx") for k in r["peaks_gops"]), r["peaks_gops"]
    assert all(v > 0 for v in r["peaks_gops"].values()), r["peaks_gops"]
PY
  fi
else
  echo "skip avx512 cap: no AVX-512 VNNI here"
fi
exit $fail
