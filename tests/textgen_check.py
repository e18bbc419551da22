#!/usr/bin/env python3
"""Compares `pp8 generate --jsonl` output with transformers' generations (../shared/golden/textgen).

usage: textgen_check.py GOLDEN.generate.jsonl RUN(greedy|rep_penalty) PP8.jsonl MIN_STEPS
For each prompt, pp8's ids must equal transformers' new_ids up to the first step whose recorded fp32
top-1/top-2 margin is below 0.04 (pp8's fp16 logits can legitimately pick the other token there); when
no step is that close, the whole run must agree: the ids (with the final EOS), the finish reason and
the text byte for byte. Prints how many steps it compared; fails when that is fewer than MIN_STEPS, so
it cannot pass by comparing nothing.
"""
import json
import sys

MARGIN = 0.04


def main():
    golden, run, got, min_steps = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    ref = [json.loads(l) for l in open(golden, encoding="utf-8")]
    out = [json.loads(l) for l in open(got, encoding="utf-8")]
    fails, compared, total, whole = 0, 0, 0, 0
    if len(out) != len(ref):
        print(f"FAIL: {len(out)} pp8 sequences for {len(ref)} prompts")
        return 1
    for r, o in zip(ref, out):
        g = r[run]
        steps = g["steps"]
        k = next((i for i, s in enumerate(steps) if s["margin_top1_top2"] < MARGIN), len(steps))
        total += len(steps)
        want, have = g["new_ids"], o["ids"]
        if o["prompt"] != r["prompt"] or o["prompt_tokens"] != len(r["input_ids"]):
            print(f"FAIL: {r['id']}: prompt {o['prompt']!r} ({o['prompt_tokens']} tokens), want {r['prompt']!r} "
                  f"({len(r['input_ids'])} tokens)")
            fails += 1
            continue
        if have[:k] != want[:k]:
            i = next(i for i in range(k) if i >= len(have) or have[i] != want[i])
            print(f"FAIL: {r['id']} {run}: step {i} (margin {steps[i]['margin_top1_top2']:.4f}): pp8 "
                  f"{have[i] if i < len(have) else None}, transformers {want[i]}; pp8 {have}, transformers {want}")
            fails += 1
            continue
        compared += k
        if k == len(steps):
            whole += 1
            reason = "stop" if g["stop_reason"] == "eos" else "length"
            if have != want or o["finish_reason"] != reason or o["text"] != g["new_text"]:
                print(f"FAIL: {r['id']} {run}: whole run: ids {have} vs {want}, finish {o['finish_reason']} vs "
                      f"{reason}, text {o['text']!r} vs {g['new_text']!r}")
                fails += 1
    print(f"{'FAIL' if fails else 'ok'}: {golden.split('/')[-1]} {run}: compared {compared} of {total} steps, "
          f"{whole} runs whole (ids, finish reason, text), {fails} failures")
    if compared < min_steps:
        print(f"FAIL: only {compared} steps compared, expected at least {min_steps}")
        return 1
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())
