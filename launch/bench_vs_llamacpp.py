#!/usr/bin/env python3
"""The measuring half of launch/bench-vs-llamacpp.sh (which downloads, builds and converts first): pp8 and
llama.cpp on the same BLOOM checkpoint, engines alternated run by run, per pair a pp8/llama.cpp ratio;
prints medians, ranges and ratios, writes --json. Standard library only, except `convert`, which runs
llama.cpp's convert_hf_to_gguf.py in the benchmark's venv. It builds nothing and downloads nothing.
  bench_vs_llamacpp.py run --pp8 BIN --hf DIR --gguf DIR --llama-bin DIR [--fallback-bin DIR] ...
  bench_vs_llamacpp.py convert LLAMA_CPP_DIR CONVERTER_ARGS..."""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

# (pp8 dtype, llama.cpp file type) measured next to each other; int8-head is pp8 `--int8-head`
SLOTS = [("int8", "Q8_0-f16-head"), ("int8-head", "Q8_0"), ("bf16", "BF16"), ("fp16", "F16")]
# the comparisons reported: pp8's default int8 (fp16 LM head, as transformers does) against Q8_0 with the
# same fp16 head (like for like) and against llama.cpp's plain Q8_0 (head in Q8_0 too)
COMPARE = [("int8", "Q8_0-f16-head"), ("int8", "Q8_0"), ("int8-head", "Q8_0"), ("bf16", "BF16"), ("fp16", "F16")]
TESTS = ("decode", "prefill32", "prefill512")


def log(msg):
    print(f"[bench-vs-llamacpp] {msg}", file=sys.stderr, flush=True)


class Failed(Exception):
    pass


class Runner:
    def __init__(self, a):
        self.a = a
        self.logdir = a.logdir
        os.makedirs(self.logdir, exist_ok=True)
        self.n = 0
        self.missing = {}          # pp8 dtype -> reason (a binary that rejects --int8-head)
        self.crashed = set()       # (gguf type, tool) whose primary llama.cpp build crashed once
        self.builds_used = {}      # (gguf type, tool) -> build label
        self.host = None
        self.pp8_version = "?"
        self.bw = {}               # threads -> pp8's read-bandwidth probe, per run
        self.paths = {}            # pp8 dtype -> kernel paths seen

    def run(self, what, cmd, env=None):
        """runs cmd, stdout/stderr to a log file; returns (rc, stdout, log path)"""
        self.n += 1
        path = os.path.join(self.logdir, f"{self.n:04d}-{what}.log")
        with open(path, "w") as f:
            f.write(" ".join(cmd) + "\n")
            f.flush()
            p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=f, text=True, env=env)
            f.write("\n--- stdout ---\n" + p.stdout)
        return p.returncode, p.stdout, path

    @staticmethod
    def last_line(path):
        lines = [l.strip() for l in open(path, errors="replace") if l.strip() and not l.startswith("---")]
        return lines[-1] if lines else "(no output)"

    # --- pp8 -----------------------------------------------------------------------------------------
    def pp8(self, slot_dtype, threads, tests):
        """{(test, batch): tokens/s} from `pp8 bench`, or None when this binary lacks the flag"""
        if slot_dtype in self.missing:
            return None
        a, out = self.a, {}
        dtype = "int8" if slot_dtype == "int8-head" else slot_dtype
        extra = ["--int8-head"] if slot_dtype == "int8-head" else []
        jobs = []
        if "decode" in tests or "prefill32" in tests:
            batches = a.batches if "decode" in tests else [1]
            jobs.append((batches, 32, a.gen))
        if "prefill512" in tests:
            jobs.append(([1], 512, 1))
        for batches, plen, gen in jobs:
            fd, js = tempfile.mkstemp(suffix=".json", dir=self.logdir)
            os.close(fd)
            cmd = [a.pp8, "bench", "--backend", "cpu", "--model", a.hf, "--dtype", dtype, "--threads", str(threads),
                   "--batch", ",".join(map(str, batches)), "--prompt-len", str(plen), "--gen", str(gen),
                   "--json", js] + extra
            rc, _, path = self.run(f"pp8-{slot_dtype}-t{threads}-p{plen}", cmd)
            if rc != 0:
                msg = self.last_line(path)
                if extra and "--int8-head" in open(path, errors="replace").read().split("\n", 1)[1]:
                    self.missing[slot_dtype] = f"this pp8 binary rejects --int8-head ({msg})"
                    log(f"pp8 {slot_dtype}: missing: {self.missing[slot_dtype]}")
                    return None
                raise Failed(f"pp8 bench ({slot_dtype}, {threads} thread(s), prompt {plen}) failed (rc {rc}): "
                             f"{msg}; log: {path}")
            d = json.load(open(js))
            os.unlink(js)
            self.host = d["host"]
            self.pp8_version = f"{d['pp8']['version']} (git {d['pp8']['git']})"
            self.bw.setdefault(threads, []).append(d["read_bandwidth_gbs"]["prefetch"])
            for r in d["runs"]:
                self.paths.setdefault(slot_dtype, {}).update(r.get("kernel_paths", {}))
                if plen == 512:
                    out[("prefill512", 1)] = r["prefill_tokens_per_s"]
                    continue
                if r["batch"] == 1 and "prefill32" in tests:
                    out[("prefill32", 1)] = r["prefill_tokens_per_s"]
                if "decode" in tests:
                    out[("decode", r["batch"])] = r["decode_tokens_per_s"]
        return out

    # --- llama.cpp -----------------------------------------------------------------------------------
    def llama(self, gtype, threads, tests):
        a, out = self.a, {}
        model = os.path.join(a.gguf, f"{a.stem}-{gtype}.gguf")
        t = str(threads)
        pre = [p for p in (32, 512) if f"prefill{p}" in tests]
        if pre:
            rows = self.llama_tool(gtype, "llama-bench", ["-m", model, "-t", t, "-p", ",".join(map(str, pre)),
                                                          "-n", "0", "-r", "1", "-o", "json"])
            for r in json.loads(rows):
                out[(f"prefill{r['n_prompt']}", 1)] = r["avg_ts"]
        if "decode" in tests and 1 in a.batches:
            # from an empty context; pp8's batch-1 decode follows a 32-token prompt (its KV reads are < 1%
            # of the weights' here). -d 32 would prefill first, which hits the AMX kernel's crash below
            rows = self.llama_tool(gtype, "llama-bench", ["-m", model, "-t", t, "-p", "0", "-n", str(a.gen),
                                                          "-r", "1", "-o", "json"], kind="llama-bench-decode")
            for r in json.loads(rows):
                out[("decode", 1)] = r["avg_ts"]
        par = [b for b in a.batches if b > 1]
        if "decode" in tests and par:
            ctx = max(par) * (32 + a.gen)
            lines = self.llama_tool(gtype, "llama-batched-bench",
                                    ["-m", model, "-t", t, "-c", str(ctx), "-b", "2048", "-ub", "512", "-npp", "32",
                                     "-ntg", str(a.gen), "-npl", ",".join(map(str, par)), "--output-format", "jsonl"])
            for l in lines.splitlines():
                if l.startswith("{"):
                    r = json.loads(l)
                    out[("decode", r["pl"])] = r["speed_tg"]
        return out

    def llama_tool(self, gtype, tool, args, kind=None):
        """runs a llama.cpp tool from the primary build; when that build dies of a signal (this machine's
        AMX kernels: see the notes) and a fallback build exists, from the fallback, and remembers that"""
        kind = kind or tool
        key = (gtype, kind)
        builds = [(self.a.llama_label, self.a.llama_bin)]
        if self.a.fallback_bin:
            builds.append((self.a.fallback_label, self.a.fallback_bin))
        if key in self.crashed:
            builds = builds[1:]
        for label, bindir in builds:
            rc, out, path = self.run(f"{tool}-{gtype}-{label}", [os.path.join(bindir, tool)] + args)
            if rc == 0:
                self.builds_used[key] = label
                return out
            if rc < 0 and label == self.a.llama_label and len(builds) > 1:
                self.crashed.add(key)
                log(f"{tool} ({gtype}, {label} build) died of signal {-rc}; using the {self.a.fallback_label} build "
                    f"for it from now on (log: {path})")
                continue
            raise Failed(f"{tool} ({gtype}, {label} build) failed (rc {rc}): {self.last_line(path)}; log: {path}")
        raise Failed(f"{tool} ({gtype}): no llama.cpp build left to try")


def spread(xs):
    return {"median": statistics.median(xs), "min": min(xs), "max": max(xs)} if xs else None


def cmd_run(a):
    a.threads = [int(x) for x in a.threads.split(",")]
    a.batches = [int(x) for x in a.batches.split(",")]
    tests = [t for t in a.tests.split(",") if t]
    for t in tests:
        if t not in TESTS:
            raise SystemExit(f"bench-vs-llamacpp: --tests: {t!r} is not one of {','.join(TESTS)}")
    R = Runner(a)
    # samples[(side, name, threads, test, batch)] = [per pair]; a pair i that has both sides makes a ratio
    samples = {}
    t0 = time.time()
    try:
        for threads in a.threads:
            for i in range(a.pairs):
                for k, (pdt, gty) in enumerate(SLOTS):
                    order = ("llama", "pp8") if (i + k) % 2 == 0 else ("pp8", "llama")
                    for side in order:
                        log(f"threads {threads}, pair {i + 1}/{a.pairs}: {side} "
                            f"{pdt if side == 'pp8' else gty} ({time.time() - t0:.0f} s)")
                        res = R.pp8(pdt, threads, tests) if side == "pp8" else R.llama(gty, threads, tests)
                        for (test, batch), v in (res or {}).items():
                            samples.setdefault((side, pdt if side == "pp8" else gty, threads, test, batch), {})[i] = v
    except Failed as e:
        print(f"bench-vs-llamacpp: {e}", file=sys.stderr)
        return 1
    elapsed = time.time() - t0

    rows = []
    keys = [(test, b) for test in tests for b in (a.batches if test == "decode" else [1])]
    for threads in a.threads:
        for pdt, gty in COMPARE:
            for test, batch in keys:
                ps = samples.get(("pp8", pdt, threads, test, batch), {})
                ls = samples.get(("llama", gty, threads, test, batch), {})
                both = sorted(set(ps) & set(ls))
                ratios = [ps[i] / ls[i] for i in both]
                kind = {"prefill32": "llama-bench", "prefill512": "llama-bench"}.get(
                    test, "llama-bench-decode" if batch == 1 else "llama-batched-bench")
                row = {"pp8": pdt, "llama_cpp": gty, "threads": threads, "test": test, "batch": batch,
                       "median": None, "min": None, "max": None, "pairs": len(ratios),
                       "pp8_tokens_per_s": spread(list(ps.values())),
                       "llama_cpp_tokens_per_s": spread(list(ls.values())),
                       "llama_cpp_build": R.builds_used.get((gty, kind))}
                if ratios:
                    row.update(spread(ratios))
                if pdt in R.missing:
                    row["missing"] = R.missing[pdt]
                rows.append(row)

    host = R.host or {"cpu": "?", "flags": "?"}
    isa = host["flags"] + (f" (pp8 capped by PP8_ISA={os.environ['PP8_ISA']})" if os.environ.get("PP8_ISA") else "")
    bw = {t: statistics.median(v) for t, v in sorted(R.bw.items())}
    print(f"pp8 vs llama.cpp on {a.stem} (random weights, {a.outliers} outlier dims), CPU: {host['cpu']}")
    print(f"pp8 {R.pp8_version}: {a.pp8}")
    print(f"ISA: {isa}")
    print("read bandwidth (pp8's prefetching-stream probe before each run, median): "
          + (", ".join(f"{bw[t]:.1f} GB/s at {t} thread(s)" for t in bw) or "n/a"))
    print(f"llama.cpp {a.llama_version}, build '{a.llama_label}'"
          + (f" (fallback '{a.fallback_label}' where it crashed)" if a.fallback_bin else "")
          + f"; decode {a.gen} tokens after a 32-token prompt; {a.pairs} pair(s), engines alternated run by run")
    for d, p in sorted(R.paths.items()):
        print(f"pp8 kernel paths {d}: " + ", ".join(f"{k}={v}" for k, v in sorted(p.items())))
    print()
    hdr = f"{'thr':>3} {'test':<10} {'batch':>5}  {'pp8':<9} {'llama.cpp':<14} {'pp8 t/s':>24} " \
          f"{'llama.cpp t/s':>24} {'pp8/llama.cpp':>18} {'pairs':>5}  llama.cpp build"
    print(hdr)
    print("-" * len(hdr))

    def fmt(s, w):
        return f"{s['median']:.2f} [{s['min']:.2f}-{s['max']:.2f}]".rjust(w) if s else "-".rjust(w)
    for r in rows:
        ratio = fmt(r if r["median"] is not None else None, 18)
        tail = f"  MISSING: {r['missing']}" if "missing" in r else f"  {r['llama_cpp_build'] or '-'}"
        print(f"{r['threads']:>3} {r['test']:<10} {r['batch']:>5}  {r['pp8']:<9} {r['llama_cpp']:<14} "
              f"{fmt(r['pp8_tokens_per_s'], 24)} {fmt(r['llama_cpp_tokens_per_s'], 24)} {ratio} {r['pairs']:>5}{tail}")
    print(f"\n(tokens/s: median [min-max] over pairs; ratio: median [min-max] of the per-pair ratios; "
          f"{elapsed / 60:.1f} min)")
    if a.json:
        # read_gbs: at the most threads measured (what bounds decode there); per thread count beside it
        doc = {"machine": {"cpu": host["cpu"], "isa": isa, "read_gbs": bw[max(bw)] if bw else None,
                           "read_gbs_by_threads": {str(t): v for t, v in bw.items()}, "cores": host.get("cores")},
               "pp8": {"version": R.pp8_version, "binary": a.pp8},
               "llama_cpp": {"version": a.llama_version, "build": a.llama_label, "fallback_build": a.fallback_label
                             if a.fallback_bin else None},
               "settings": {"pairs": a.pairs, "gen": a.gen, "prompt_len": 32, "threads": a.threads,
                            "tests": tests, "batches": a.batches, "model": a.stem, "outlier_dims": a.outliers},
               "pp8_kernel_paths": R.paths,
               "ratios": rows}
        with open(a.json, "w") as f:
            json.dump(doc, f, indent=1)
        log(f"wrote {a.json}")
    return 0


def cmd_convert(argv):
    """convert_hf_to_gguf.py, unchanged but for one hook: its BPE pre-tokenizer check hashes the ids a
    tokenizer gives a fixed text and only knows published tokenizers. Ours is BLOOM's layout with merges
    trained here, so the hash cannot match; when the check fails we name BLOOM's pre-tokenizer (the same
    Split regex + ByteLevel), which is what the file has. Tokens never enter the measured runs."""
    lldir, rest = argv[0], argv[1:]
    sys.path.insert(0, lldir)
    sys.argv = [os.path.join(lldir, "convert_hf_to_gguf.py")] + rest
    import convert_hf_to_gguf as cv
    from conversion.base import TextModel
    orig = TextModel.get_vocab_base_pre

    def pre(self, tok):
        try:
            return orig(self, tok)
        except NotImplementedError:
            log("converter: pre-tokenizer hash unknown (tokenizer trained here); writing tokenizer.ggml.pre=bloom")
            return "bloom"
    TextModel.get_vocab_base_pre = pre
    cv.main()
    return 0


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "convert":
        return cmd_convert(sys.argv[2:])
    ap = argparse.ArgumentParser(prog="bench_vs_llamacpp.py run")
    ap.add_argument("cmd", choices=["run"])
    ap.add_argument("--pp8", required=True)
    ap.add_argument("--hf", required=True, help="Hugging Face checkpoint dir (pp8)")
    ap.add_argument("--gguf", required=True, help="dir with STEM-{F16,BF16,Q8_0,Q8_0-f16-head}.gguf")
    ap.add_argument("--stem", default="bloom-560m")
    ap.add_argument("--outliers", type=int, default=6)
    ap.add_argument("--llama-bin", required=True)
    ap.add_argument("--llama-label", default="native")
    ap.add_argument("--llama-version", default="?")
    ap.add_argument("--fallback-bin", default="")
    ap.add_argument("--fallback-label", default="")
    ap.add_argument("--pairs", type=int, default=3)
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--batches", default="1,8,32")
    ap.add_argument("--tests", default=",".join(TESTS))
    ap.add_argument("--gen", type=int, default=16)
    ap.add_argument("--json", default="")
    ap.add_argument("--logdir", required=True)
    return cmd_run(ap.parse_args())


if __name__ == "__main__":
    sys.exit(main())
