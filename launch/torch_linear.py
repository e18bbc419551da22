#!/usr/bin/env python3
"""torch_linear.py: the library a user would pick instead of pp8's bf16 GEMV (issue 15): torch's
F.linear, bf16, on a model's decode shapes at a few rows, in GB/s of weights read.

  python3 launch/torch_linear.py --config configs/opt-13b.json --rows 1,8,32 --json OUT.json

Each shape is timed over enough copies of its weight that they do not fit the GPU's L2 (a decode step
reads each weight once from HBM), with CUDA events around 50 launches after 5 warm-ups, best of 3.
GB/s counts the weight bytes only (what pp8 bench's kernels[].gbs counts for a linear)."""
import argparse
import json
import sys


def shapes(cfg):
    h = cfg["hidden_size"]
    f = cfg.get("ffn_dim") or cfg.get("intermediate_size") or 4 * h
    return [("qkv", 3 * h, h), ("out", h, h), ("fc1", f, h), ("fc2", h, f), ("head", cfg["vocab_size"], h)]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--config", required=True)
    ap.add_argument("--rows", default="1,8,32")
    ap.add_argument("--json")
    a = ap.parse_args()
    import torch
    import torch.nn.functional as F
    if not torch.cuda.is_available():
        sys.exit("torch_linear: no CUDA device visible to torch")
    cfg = json.load(open(a.config))
    dev = torch.device("cuda")
    l2 = torch.cuda.get_device_properties(0).L2_cache_size
    res = []
    for name, n, k in shapes(cfg):
        wbytes = n * k * 2
        copies = max(2, -(-4 * l2 // wbytes))
        ws = [torch.randn(n, k, device=dev, dtype=torch.bfloat16) * 0.02 for _ in range(copies)]
        for rows in [int(r) for r in a.rows.split(",")]:
            x = torch.randn(rows, k, device=dev, dtype=torch.bfloat16)
            for i in range(5):
                F.linear(x, ws[i % copies])
            best = None
            for _ in range(3):
                s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                s.record()
                for i in range(50):
                    F.linear(x, ws[i % copies])
                e.record()
                e.synchronize()
                us = s.elapsed_time(e) * 1e3 / 50
                best = us if best is None else min(best, us)
            r = {"op": name, "n": n, "k": k, "rows": rows, "us": round(best, 2), "gbs": round(wbytes / best / 1e3, 1)}
            res.append(r)
            print("torch F.linear bf16 %-4s %5d x %5d rows %2d: %8.1f us %7.0f GB/s" % (name, n, k, rows, best, r["gbs"]))
        del ws
        torch.cuda.empty_cache()
    out = {"library": "torch %s F.linear" % torch.__version__, "gpu": torch.cuda.get_device_name(0),
           "dtype": "bf16", "linears": res}
    if a.json:
        with open(a.json, "w") as fh:
            json.dump(out, fh, indent=1)


if __name__ == "__main__":
    main()
