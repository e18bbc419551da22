#!/usr/bin/env python3
"""Writes a random-weight Hugging Face checkpoint (config.json + model.safetensors, names and shapes as
transformers saves BLOOM and OPT) for one of pp8's configs, for tests that need real files of a real
size: the load path (mmap, quantize at load, page release) and files killed or truncated while read.
Standard library only; weights are random fp16/bf16 of magnitude 2^-7..2^-5 (no inf/NaN).
usage: make_checkpoint.py CONFIG OUTDIR [--dtype F16|BF16] [--seed N] [--layers L]"""
import argparse
import json
import os
import random
import shutil
import struct


def tensors(c):
    """(name, shape) in transformers' order for the config's architecture"""
    arch = c.get("model_type", "")
    L = c.get("num_hidden_layers", c.get("n_layer"))
    V = c["vocab_size"]
    if arch == "bloom":
        D = c.get("hidden_size", c.get("n_embed"))
        out = [("transformer.word_embeddings.weight", [V, D]),
               ("transformer.word_embeddings_layernorm.weight", [D]),
               ("transformer.word_embeddings_layernorm.bias", [D])]
        for l in range(L):
            p = f"transformer.h.{l}."
            out += [(p + "input_layernorm.weight", [D]), (p + "input_layernorm.bias", [D]),
                    (p + "self_attention.query_key_value.weight", [3 * D, D]),
                    (p + "self_attention.query_key_value.bias", [3 * D]),
                    (p + "self_attention.dense.weight", [D, D]), (p + "self_attention.dense.bias", [D]),
                    (p + "post_attention_layernorm.weight", [D]), (p + "post_attention_layernorm.bias", [D]),
                    (p + "mlp.dense_h_to_4h.weight", [4 * D, D]), (p + "mlp.dense_h_to_4h.bias", [4 * D]),
                    (p + "mlp.dense_4h_to_h.weight", [D, 4 * D]), (p + "mlp.dense_4h_to_h.bias", [D])]
        return out + [("transformer.ln_f.weight", [D]), ("transformer.ln_f.bias", [D])]
    if arch == "opt":
        D, F = c["hidden_size"], c["ffn_dim"]
        P = c["max_position_embeddings"] + 2
        out = [("model.decoder.embed_tokens.weight", [V, D]), ("model.decoder.embed_positions.weight", [P, D])]
        for l in range(L):
            p = f"model.decoder.layers.{l}."
            for m in ("k_proj", "v_proj", "q_proj", "out_proj"):
                out += [(p + f"self_attn.{m}.weight", [D, D]), (p + f"self_attn.{m}.bias", [D])]
            out += [(p + "self_attn_layer_norm.weight", [D]), (p + "self_attn_layer_norm.bias", [D]),
                    (p + "fc1.weight", [F, D]), (p + "fc1.bias", [F]), (p + "fc2.weight", [D, F]),
                    (p + "fc2.bias", [D]), (p + "final_layer_norm.weight", [D]), (p + "final_layer_norm.bias", [D])]
        return out + [("model.decoder.final_layer_norm.weight", [D]), ("model.decoder.final_layer_norm.bias", [D])]
    raise SystemExit(f"make_checkpoint: model_type {arch!r}: only bloom and opt")


def random_16bit(n, dtype, rng):
    """n random 16-bit values: random low bytes, high bytes mapped to sign + a small exponent"""
    data = bytearray()
    while len(data) < 2 * n:
        data += rng.randbytes(min(2 * n - len(data), 1 << 22))
    if dtype == "F16":  # s eeeee mm: exponent 8..10 (2^-7..2^-5)
        hi = bytes(((b & 0x80) | ((8 + (b >> 2) % 3) << 2) | (b & 3)) for b in range(256))
    else:  # BF16 s eeeeeeee mmmmmmm: exponent 120..122
        hi = bytes(((b & 0x80) | (60 + (b >> 2) % 2)) for b in range(256))
    data[1::2] = bytes(data[1::2]).translate(hi)
    return data


def numel(shape):
    n = 1
    for d in shape:
        n *= d
    return n


def write_safetensors(path, ts, dtype, data):
    """path <- the (name, shape) tensors ts of a 16-bit dtype, tensor by tensor in order, each's bytes from
    data(name, n); written to path.tmp then renamed. Returns the data bytes written."""
    hdr, off = {}, 0
    for name, shape in ts:
        n = numel(shape)
        hdr[name] = {"dtype": dtype, "shape": shape, "data_offsets": [off, off + 2 * n]}
        off += 2 * n
    hdr["__metadata__"] = {"format": "pt"}
    h = json.dumps(hdr).encode()
    h += b" " * (-len(h) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h)
        for name, shape in ts:
            f.write(data(name, numel(shape)))
    os.replace(tmp, path)
    return off


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("config")
    ap.add_argument("out")
    ap.add_argument("--dtype", default="F16", choices=["F16", "BF16"])
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--layers", type=int, default=0, help="override num_hidden_layers")
    a = ap.parse_args()
    c = json.load(open(a.config))
    if a.layers:
        c["num_hidden_layers" if "num_hidden_layers" in c or c.get("model_type") == "opt" else "n_layer"] = a.layers
    rng = random.Random(a.seed)
    ts = tensors(c)

    def data(name, n):
        if name.endswith("layernorm.weight") or name.endswith("layer_norm.weight") or name.endswith("ln_f.weight"):
            return (b"\x00\x3c" if a.dtype == "F16" else b"\x80\x3f") * n  # 1.0
        return random_16bit(n, a.dtype, rng)

    os.makedirs(a.out, exist_ok=True)
    off = write_safetensors(os.path.join(a.out, "model.safetensors"), ts, a.dtype, data)
    c["torch_dtype"] = "float16" if a.dtype == "F16" else "bfloat16"
    with open(os.path.join(a.out, "config.json"), "w") as f:
        json.dump(c, f, indent=2)
    print(f"make_checkpoint: {a.out}: {len(ts)} tensors, {off / 1e6:.1f} MB of {a.dtype}")


if __name__ == "__main__":
    main()
