#!/usr/bin/env python3
"""Writes the random-weight BLOOM checkpoint that launch/bench-vs-llamacpp.sh gives both pp8 and llama.cpp:
config.json + model.safetensors (F16, names and shapes as transformers saves BLOOM; tensors from
tests/make_checkpoint.py) + a BLOOM-layout byte-level BPE tokenizer.json trained here on generated text.
Outlier feature dimensions: a few hidden dimensions of every input_layernorm / post_attention_layernorm get
weight 4 and bias +-12, so those columns of every QKV and h_to_4h input exceed LLM.int8()'s threshold 6 on
every row and the decomposition runs as on real BLOOM/OPT checkpoints (Dettmers et al. 2022, section 4).
It does not make a model that says anything: weights are random, the tokenizer only has to load.
Needs the `tokenizers` package (the benchmark's venv has it).
usage: make_bloom_bench_ckpt.py CONFIG OUTDIR [--seed N] [--outliers K] [--layers L] [--tokenizer-vocab N]"""
import argparse
import json
import os
import random
import struct
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
from make_checkpoint import random_16bit, tensors, write_safetensors  # noqa: E402


def write_tokenizer(out, vocab, seed):
    """BLOOM's tokenizer.json layout (Split regex + ByteLevel, specials <unk> <s> </s> <pad> = 0..3),
    merges learnt from seeded pseudo-words, so anyone can build it without downloading BLOOM's"""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    rng = random.Random(seed)
    syll = [a + b for a in "bcdfghjklmnprstvwz" for b in "aeiou"] + list("aeiou")
    words = ["".join(rng.choice(syll) for _ in range(rng.randint(1, 4))) for _ in range(3000)]
    lines = [" ".join(rng.choice(words) for _ in range(rng.randint(4, 16))) + rng.choice(".,!?") for _ in range(20000)]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(" ?[^(\\s|[.,!?\u2026\u3002\uff0c\u3001\u0964\u06d4\u060c])]+"), "isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab, special_tokens=["<unk>", "<s>", "</s>", "<pad>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(lines, trainer)
    tok.save(os.path.join(out, "tokenizer.json"))
    specials = {"unk_token": "<unk>", "bos_token": "<s>", "eos_token": "</s>", "pad_token": "<pad>"}
    with open(os.path.join(out, "special_tokens_map.json"), "w") as f:
        json.dump(specials, f, indent=2)
    with open(os.path.join(out, "tokenizer_config.json"), "w") as f:
        json.dump(dict(specials, tokenizer_class="BloomTokenizerFast", add_prefix_space=False,
                       model_max_length=2048, padding_side="left"), f, indent=2)
    return tok.get_vocab_size()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("config")
    ap.add_argument("out")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--outliers", type=int, default=6, help="outlier hidden dimensions")
    ap.add_argument("--layers", type=int, default=0, help="override n_layer (smaller files for checks)")
    ap.add_argument("--tokenizer-vocab", type=int, default=4096)
    a = ap.parse_args()
    c = json.load(open(a.config))
    if c.get("model_type") != "bloom":
        raise SystemExit(f"make_bloom_bench_ckpt: {a.config}: model_type {c.get('model_type')!r}, want bloom")
    if a.layers:
        c["n_layer"] = a.layers
    D = c.get("hidden_size", c.get("n_embed"))
    rng = random.Random(a.seed)
    dims = sorted(rng.sample(range(D), a.outliers))
    ts = tensors(c)

    def data(name, n):
        outlier_ln = "input_layernorm" in name or "post_attention_layernorm" in name
        if name.endswith("layernorm.weight") or name.endswith("ln_f.weight"):
            w = [1.0] * n
            if outlier_ln:
                for j in dims:
                    w[j] = 4.0
            return struct.pack(f"<{n}e", *w)
        if outlier_ln and name.endswith(".bias"):
            b = bytearray(random_16bit(n, "F16", rng))
            for k, j in enumerate(dims):
                b[2 * j:2 * j + 2] = struct.pack("<e", 12.0 if k % 2 == 0 else -12.0)
            return b
        return random_16bit(n, "F16", rng)

    os.makedirs(a.out, exist_ok=True)
    off = write_safetensors(os.path.join(a.out, "model.safetensors"), ts, "F16", data)
    c["torch_dtype"] = "float16"
    with open(os.path.join(a.out, "config.json"), "w") as f:
        json.dump(c, f, indent=2)
    tv = write_tokenizer(a.out, a.tokenizer_vocab, a.seed)
    print(f"make_bloom_bench_ckpt: {a.out}: {len(ts)} tensors, {off / 1e6:.1f} MB of F16, outlier dims {dims}, "
          f"tokenizer {tv} tokens (model vocab {c['vocab_size']})")


if __name__ == "__main__":
    main()
