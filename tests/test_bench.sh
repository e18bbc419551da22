#!/usr/bin/env bash
# pp8 bench under mpirun (issue 4): 2 ranks, a tiny random-weight OPT, both dtypes and both schedules.
# Checks what the table and --json promise, not speed: each rank's layers, memory and bytes read per
# step, one row per (dtype, batch, schedule), the default micro-batch counts, tokens/s consistent with
# the timings, busy fractions in (0, 1], a roofline and (with --stream-bound) a stream bound for every
# run, contiguous layer slices covering the model, provenance, --profile's per-rank lines and its
# per-layer JSON (runs[].kernels), the
# side-by-side ratio lines, the decode bound (bandwidth and compute, issue 18) with its peaks; and
# --stream-bound refused off the CPU.
set -u
: "${PP8:?}" "${PP8_SRC:?}"
read -r -a MPI <<<"${PP8_MPIRUN:-mpirun --allow-run-as-root --oversubscribe}"
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
fail=0
cfg="$PP8_SRC/configs/opt-tiny-test.json"
ok() { echo "ok   $1"; }
bad() { echo "FAIL $1"; fail=1; }

"$PP8" bench --help >"$tmp/help" 2>&1 && grep -q -- "--stream-bound" "$tmp/help" && ok help || bad "help: no --stream-bound"
# bench takes --dtype and --schedule as lists with their own defaults: listed once, not also as the
# single-value session flags with another default
[ "$(grep -c -- "--dtype\|--schedule" "$tmp/help")" = 2 ] && ok "help: --dtype, --schedule once" ||
  bad "help: --dtype/--schedule listed $(grep -c -- "--dtype\|--schedule" "$tmp/help") times, want 2"

args=(bench --config "$cfg" --dtype int8,bf16 --batch 1,8 --prompt-len 4 --gen 3 --schedule pipelined,naive)
if timeout 120 "${MPI[@]}" -np 2 "$PP8" "${args[@]}" --stream-bound --profile --json "$tmp/b.json" >"$tmp/out" 2>"$tmp/err"; then
  ok "bench ran"
else
  bad "bench exited non-zero:"; sed 's/^/    /' "$tmp/err" | tail -5
fi
rows=$(grep -cE "^(int8|bf16) +(pipelined|naive) +[0-9]+ +[0-9]+ " "$tmp/out")
[ "$rows" = 8 ] && ok "8 table rows" || bad "table rows: $rows, want 8"
grep -q "stream_t/s  of_stream" "$tmp/out" && ok "stream columns" || bad "no stream columns in the table header"
grep -q "bound_t/s by   of_bound" "$tmp/out" && ok "bound columns" || bad "no bound columns in the table header"
[ "$(grep -c "^compute peaks per rank (1 thread(s)" "$tmp/out")" = 2 ] && ok "peaks lines" || bad "want one compute-peaks line per dtype"
stages=$(grep -cE "^  rank [01]: layers \[[0-9]+,[0-9]+\) +memory [0-9.]+ GB = [0-9.]+ \+ [0-9.]+ \+ [0-9.]+ +reads [0-9.]+ GB/step$" "$tmp/out")
[ "$stages" = 4 ] && ok "memory per rank lines" || bad "memory per rank: $stages lines, want 4"
[ "$(grep -c "rank [01] ms/step:" "$tmp/out")" = 16 ] && ok "profile lines" || bad "profile: want 16 per-rank lines"
grep -q "ratio int8/bf16 pipelined batch    8: decode" "$tmp/out" && ok "int8/bf16 ratio" || bad "no int8/bf16 ratio line"
grep -q "ratio pipelined/naive int8 batch    8 (M 2 vs 1)" "$tmp/out" && ok "pipelined/naive ratio" ||
  bad "no pipelined/naive ratio line with M 2 vs 1"

cat >"$tmp/check.py" <<'EOF'
import json, math, sys
j = json.load(open(sys.argv[1]))
want_stream = sys.argv[2] == "1"
assert j["ranks"] == 2 and j["backend"] == "cpu", (j["ranks"], j["backend"])
assert j["pp8"]["git"] and j["host"]["cpu"] and j["host"]["flags"]
nxt = 0
for st in j["plan"]:
    assert st["layer_begin"] == nxt and st["layer_end"] > nxt, st
    b = st["bytes"]
    assert b["weights"] > 0 and b["kv_cache"] > 0 and b["workspace"] > 0, b
    assert b["total"] == b["weights"] + b["kv_cache"] + b["workspace"] + b["reserve"], b
    assert 0 < st["weight_bytes_read_per_step"] <= b["weights"], st
    nxt = st["layer_end"]
assert nxt == j["model"]["layers"] == 5, nxt
runs = j["runs"]
assert sorted((r["dtype"], r["batch"], r["schedule"]) for r in runs) == sorted(
    (d, b, s) for d in ("int8", "bf16") for b in (1, 8) for s in ("pipelined", "naive")), runs
for r in runs:
    want_m = 1 if r["schedule"] == "naive" or r["batch"] == 1 else 2
    assert r["micro_batches"] == want_m, (r["schedule"], r["batch"], r["micro_batches"])
    tps = r["batch"] * r["gen"] / r["decode_s"]
    assert math.isclose(r["decode_tokens_per_s"], tps, rel_tol=1e-9), r
    assert math.isclose(r["decode_ms_per_token"], 1e3 / tps, rel_tol=1e-9), r
    assert r["roofline_tokens_per_s"] > 0 and len(r["read_bandwidth_gbs"]) == 2
    assert all(x > 0 for x in r["read_bandwidth_gbs"])
    assert len(r["stage_busy"]) == 2 and all(0 < b <= 1.0 for b in r["stage_busy"]), r["stage_busy"]
    assert r["kernel_paths"]["linear_decode"] and r["kernel_paths"]["linear_prefill"]
    assert r["threshold"] == (6.0 if r["dtype"] == "int8" else 0), r["threshold"]
    # the honest bound (issue 18): never above either of its parts, named after the smaller one, never
    # above the weight-read roofline (it reads at least the weights, once per micro-batch); peaks for the
    # decode paths the run lists; bytes and ops per rank
    bound, bw, comp = r["bound_tokens_per_s"], r["bandwidth_bound_tokens_per_s"], r["compute_bound_tokens_per_s"]
    assert comp is not None and 0 < bound <= min(bw, comp) * (1 + 1e-9), (bound, bw, comp)
    assert r["bound"] == ("compute" if comp < bw else "bandwidth"), (r["bound"], bw, comp)
    assert bw <= r["roofline_tokens_per_s"] * (1 + 1e-9), (bw, r["roofline_tokens_per_s"])
    peaks = r["peaks_gops"]
    for op in ("linear_decode", "lm_head_decode"):
        path = r["kernel_paths"][op]
        got = [v for k, v in peaks.items() if k == path or k.startswith(path + "/")]
        assert got and all(v > 0 for v in got), (op, path, peaks)
        assert all(r["peak_probes"][k] for k in peaks), r["peak_probes"]
    assert len(r["bound_step_bytes"]) == 2 and all(b > 0 for b in r["bound_step_bytes"]), r["bound_step_bytes"]
    if r["dtype"] == runs[-1]["dtype"]:  # "plan" holds the last dtype's bytes: the step reads them and the KV cache
        assert all(b > st["weight_bytes_read_per_step"] for b, st in zip(r["bound_step_bytes"], j["plan"])), r
    assert len(r["bound_step_ops"]) == 2 and all(o > 0 for o in r["bound_step_ops"]), r["bound_step_ops"]
    # both ranks share this node's memory: the step reads both ranks' bytes at their bandwidth together,
    # which bounds the bandwidth bound
    tog = r["read_bandwidth_together_gbs"]
    assert len(tog) == 2 and all(x > 0 for x in tog), tog
    node = r["batch"] / (sum(r["bound_step_bytes"]) / (sum(tog) * 1e9))
    assert math.isclose(r["node_bandwidth_bound_tokens_per_s"], node, rel_tol=1e-9), (r["node_bandwidth_bound_tokens_per_s"], node)
    assert bw <= node * (1 + 1e-9), (bw, node)
    if want_stream:
        assert r["stream_bound_tokens_per_s"] > 0, r
    else:
        assert "stream_bound_tokens_per_s" not in r
    # --profile (given with --stream-bound): per rank, op and layer, us per decode step and GB/s read
    if want_stream:
        ks = r["kernels"]
        assert {k["rank"] for k in ks} == {0, 1}, ks
        seen = {(k["op"], k["layer"]) for k in ks}
        for l in range(5):
            for op in ("layernorm", "qkv", "attention", "out", "add", "fc1", "act", "fc2"):
                assert (op, l) in seen, (op, l, sorted(seen, key=str))
        step_us = 1e6 * r["decode_s"] / r["gen"]
        for k in ks:
            assert k["us"] > 0, k
            if k["layer"] is not None:
                st = j["plan"][k["rank"]]
                assert st["layer_begin"] <= k["layer"] < st["layer_end"], (k, st)
            if k["op"] in ("qkv", "out", "fc1", "fc2", "attention", "head"):
                assert k["gbs"] is not None and k["gbs"] > 0, k
            else:
                assert k["gbs"] is None, k
        assert {k["rank"] for k in ks if k["op"] == "embed"} == {0} and {k["rank"] for k in ks if k["op"] == "head"} == {1}, ks
        for q in (0, 1):
            tot = sum(k["us"] for k in ks if k["rank"] == q)
            assert tot <= step_us * 1.05, (q, tot, step_us)
    else:
        assert "kernels" not in r
print("runs", len(runs))
EOF
if python3 "$tmp/check.py" "$tmp/b.json" 1; then ok "json"; else bad "json"; fi

# provenance names the commit the binary was built from (taken at build time, not at configure time)
if head=$(git -C "$PP8_SRC" rev-parse --short HEAD 2>/dev/null); then
  got=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["pp8"]["git"])' "$tmp/b.json" 2>/dev/null)
  [ "${got%-dirty}" = "$head" ] && ok "json git $got" || bad "json git '$got', checkout at $head (rebuild?)"
fi

# without --stream-bound the field is absent (it is never reported unmeasured)
if timeout 120 "${MPI[@]}" -np 2 "$PP8" bench --config "$cfg" --dtype int8,bf16 --batch 1,8 --prompt-len 4 --gen 3 \
  --schedule pipelined,naive --json "$tmp/c.json" >"$tmp/out" 2>"$tmp/err" && python3 "$tmp/check.py" "$tmp/c.json" 0; then
  ok "json without --stream-bound"
else
  bad "json without --stream-bound"; sed 's/^/    /' "$tmp/err" | tail -5
fi

# --stream-bound off the CPU: one error line, every rank non-zero, no hang
timeout 60 "${MPI[@]}" -np 2 "$PP8" bench --config "$cfg" --backend cuda --stream-bound >"$tmp/out" 2>"$tmp/err"
rc=$?
if [ $rc -ne 0 ] && [ $rc -ne 124 ] && grep -q "stream-bound.*CPU backend only" "$tmp/err"; then
  ok "--stream-bound --backend cuda refused"
else
  bad "--stream-bound --backend cuda: rc=$rc"; sed 's/^/    /' "$tmp/err" | tail -5
fi
exit $fail
