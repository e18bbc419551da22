#!/usr/bin/env python3
"""Writes the committed seed corpora of the fuzz targets (tests/fuzz/corpus/<target>/): small valid inputs
in the formats Hugging Face publishes (the shapes of ../shared/golden's models and tokenizers, with
hand-made contents: the golden files themselves are not copied into the repository; launch/fuzz.sh adds
them to its working copy of the corpus at run time) and hand-made edge cases. Rerun after changing it:
    python3 tests/fuzz/make_seeds.py
It rewrites every corpus directory it knows; regressions/ (inputs that once failed) it never touches."""
import json
import os
import shutil
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
OUT = os.path.join(HERE, "corpus")


def put(target, name, data):
    d = os.path.join(OUT, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode("utf-8", "surrogatepass")
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


# ---- safetensors ----

DSIZE = {"F32": 4, "F16": 2, "BF16": 2, "I8": 1, "U8": 1, "I32": 4, "I64": 8}


def st_file(tensors, metadata=True, pad=True, header_override=None, extra=b""):
    """tensors: [(name, dtype, shape)], data laid out in order; returns the file's bytes"""
    hdr, data, off = {}, b"", 0
    if metadata:
        hdr["__metadata__"] = {"format": "pt"}
    for name, dt, shape in tensors:
        n = DSIZE.get(dt, 1)
        for s in shape:
            n *= s
        hdr[name] = {"dtype": dt, "shape": shape, "data_offsets": [off, off + n]}
        data += bytes((off + i) % 251 for i in range(n))
        off += n
    h = header_override if header_override is not None else json.dumps(hdr, separators=(",", ":")).encode()
    if pad:
        h += b" " * (-len(h) % 8)
    return struct.pack("<Q", len(h)) + h + data + extra


def st_raw(header, data=b""):
    h = header if isinstance(header, bytes) else header.encode()
    return struct.pack("<Q", len(h)) + h + data


def seeds_safetensors():
    t = "fuzz_safetensors"
    # bloom-tiny's layout, shrunk: hidden 4, 1 layer, vocab 8
    bloom = [("word_embeddings.weight", "F16", [8, 4]), ("word_embeddings_layernorm.weight", "F16", [4]),
             ("word_embeddings_layernorm.bias", "F16", [4]), ("h.0.input_layernorm.weight", "F16", [4]),
             ("h.0.self_attention.query_key_value.weight", "F16", [12, 4]),
             ("h.0.self_attention.query_key_value.bias", "F16", [12]), ("ln_f.weight", "F16", [4])]
    put(t, "bloom-shape.safetensors", st_file(bloom))
    put(t, "transformer-prefix.safetensors", st_file([("transformer." + n, d, s) for n, d, s in bloom[:3]]))
    put(t, "every-dtype.safetensors", st_file([("a", "F32", [2, 2]), ("b", "F16", [3]), ("c", "BF16", [1, 2]),
                                               ("d", "I8", [5]), ("e", "U8", [1]), ("f", "I32", [2]),
                                               ("g", "I64", [1])]))
    put(t, "int8-scb.safetensors", st_file([("h.0.mlp.dense_4h_to_h.SCB", "F32", [4]),
                                            ("h.0.mlp.dense_4h_to_h.weight", "I8", [4, 4]),
                                            ("h.0.mlp.dense_4h_to_h.weight_format", "U8", [])]))
    put(t, "empty-tensor.safetensors", st_file([("z", "F16", [0, 4]), ("s", "F32", [])]))
    put(t, "no-metadata-unpadded.safetensors", st_file([("x", "F16", [2])], metadata=False, pad=False))
    put(t, "eight-dims.safetensors", st_file([("x", "U8", [1, 1, 1, 1, 1, 1, 1, 2])]))
    put(t, "empty-header.safetensors", st_raw("{}"))
    put(t, "metadata-only.safetensors", st_raw('{"__metadata__":{"format":"pt","total_size":"0"}}'))
    # refused
    put(t, "nine-dims.safetensors", st_file([("x", "U8", [1] * 9)]))
    put(t, "unknown-dtype.safetensors", st_raw('{"x":{"dtype":"F8_E4M3","shape":[1],"data_offsets":[0,1]}}', b"\0"))
    put(t, "overlap.safetensors", st_raw('{"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]},'
                                         '"b":{"dtype":"U8","shape":[2],"data_offsets":[1,3]}}', b"abc"))
    put(t, "end-before-begin.safetensors", st_raw('{"a":{"dtype":"U8","shape":[0],"data_offsets":[2,1]}}', b"ab"))
    put(t, "past-the-end.safetensors", st_raw('{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}', b"\0" * 8))
    put(t, "shape-mismatch.safetensors", st_raw('{"a":{"dtype":"F16","shape":[3],"data_offsets":[0,4]}}', b"\0" * 4))
    put(t, "shape-overflow.safetensors",
        st_raw('{"a":{"dtype":"F32","shape":[4294967296,4294967296,2],"data_offsets":[0,0]}}'))
    put(t, "huge-numbers.safetensors",
        st_raw('{"a":{"dtype":"U8","shape":[1e300],"data_offsets":[-1,9007199254740993]}}'))
    put(t, "fractional.safetensors", st_raw('{"a":{"dtype":"U8","shape":[1.5],"data_offsets":[0,1.5]}}', b"ab"))
    put(t, "twice.safetensors", st_raw('{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},'
                                       '"a":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}}', b"ab"))
    put(t, "trailing-bytes.safetensors", st_raw('{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}xyz', b"a"))
    put(t, "not-an-object.safetensors", st_raw("[1,2,3]"))
    put(t, "not-json.safetensors", st_raw("{\"a\":"))
    put(t, "header-length-huge.safetensors", struct.pack("<Q", 2 ** 63) + b"{}")
    put(t, "header-length-one.safetensors", struct.pack("<Q", 1) + b"{")
    put(t, "header-past-end.safetensors", struct.pack("<Q", 64) + b"{}")
    put(t, "short.safetensors", b"\x02\0\0\0")
    put(t, "entry-not-object.safetensors", st_raw('{"a":[1,2]}'))
    put(t, "long-name.safetensors", st_file([("n" * 600, "U8", [1])]))


def seeds_index():
    t = "fuzz_safetensors_index"
    s1, s2 = "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"
    wm = {"word_embeddings.weight": s1, "h.0.self_attention.dense.weight": s1,
          "h.1.input_layernorm.weight": s2, "h.1.mlp.dense_4h_to_h.weight": s2}

    def idx(m, meta=True):
        d = {"metadata": {"total_size": 64}} if meta else {}
        d["weight_map"] = m
        return json.dumps(d, indent=2)

    put(t, "valid.json", idx(wm))
    put(t, "valid-no-metadata.json", idx(wm, meta=False))
    put(t, "one-shard.json", idx({"word_embeddings.weight": s1}))
    put(t, "wrong-shard.json", idx(dict(wm, **{"word_embeddings.weight": s2})))
    put(t, "not-stored.json", idx(dict(wm, **{"lm_head.weight": s2})))
    put(t, "missing-shard.json", idx(dict(wm, **{"x": "model-00003-of-00003.safetensors"})))
    put(t, "dotdot.json", idx(dict(wm, **{"x": "../" + s1})))
    put(t, "dot.json", idx({"x": "."}))
    put(t, "dotdot-only.json", idx({"x": ".."}))
    put(t, "absolute.json", idx({"x": "/etc/passwd"}))
    put(t, "itself.json", idx({"x": "model.safetensors.index.json"}))
    put(t, "empty-name.json", idx({"x": ""}))
    put(t, "not-string.json", idx({"x": 1}))
    put(t, "empty-map.json", idx({}))
    put(t, "no-map.json", '{"metadata": {}}')
    put(t, "map-list.json", '{"weight_map": ["a"]}')
    put(t, "not-json.json", '{"weight_map": {')


# ---- config.json ----

def seeds_config():
    t = "fuzz_config"
    cfgdir = os.path.join(REPO, "configs")
    for f in sorted(os.listdir(cfgdir)):
        if f.endswith(".json") and f.startswith(("bloom-560m", "bloom-7b1", "bloom-tiny", "opt-125m", "opt-tiny")):
            shutil.copy(os.path.join(cfgdir, f), os.path.join(OUT, t, f))
    bloom = {"model_type": "bloom", "hidden_size": 64, "n_head": 4, "n_layer": 2, "vocab_size": 256,
             "layer_norm_epsilon": 1e-5, "bos_token_id": 1, "eos_token_id": 2, "pad_token_id": 3,
             "tie_word_embeddings": True, "torch_dtype": "float16"}
    opt = {"model_type": "opt", "hidden_size": 64, "num_attention_heads": 4, "num_hidden_layers": 2,
           "ffn_dim": 256, "vocab_size": 256, "max_position_embeddings": 128, "do_layer_norm_before": True,
           "word_embed_proj_dim": 64, "enable_bias": True, "bos_token_id": 2, "eos_token_id": 2,
           "pad_token_id": 1, "torch_dtype": "bfloat16"}
    put(t, "bloom-min.json", json.dumps(bloom))
    put(t, "opt-min.json", json.dumps(opt))
    put(t, "bloom-legacy-names.json", json.dumps({"model_type": "bloom", "n_embed": 64, "num_attention_heads": 4,
                                                  "num_hidden_layers": 2, "vocab_size": 256}))
    put(t, "int8.json", json.dumps(dict(bloom, quantization_config={
        "quant_method": "bitsandbytes", "load_in_8bit": True, "llm_int8_threshold": 6.0})))
    put(t, "int4.json", json.dumps(dict(opt, quantization_config={"load_in_4bit": True})))
    put(t, "gptq.json", json.dumps(dict(opt, quantization_config={"quant_method": "gptq"})))
    put(t, "eos-list.json", json.dumps(dict(opt, eos_token_id=[2, 50118], bos_token_id=None)))
    put(t, "float32-untied.json", json.dumps(dict(bloom, torch_dtype="float32", tie_word_embeddings=False)))
    put(t, "post-ln.json", json.dumps(dict(bloom, apply_residual_connection_post_layernorm=True)))
    put(t, "opt-350m-proj.json", json.dumps(dict(opt, word_embed_proj_dim=32, do_layer_norm_before=False)))
    put(t, "heads-not-dividing.json", json.dumps(dict(bloom, n_head=3)))
    put(t, "huge-sizes.json", json.dumps(dict(opt, hidden_size=2147483647, num_attention_heads=1,
                                               ffn_dim=2147483647, vocab_size=2147483647)))
    put(t, "negative.json", json.dumps(dict(bloom, n_layer=-1)))
    put(t, "fractional.json", json.dumps(dict(bloom, hidden_size=64.5)))
    put(t, "string-size.json", json.dumps(dict(bloom, hidden_size="64")))
    put(t, "exponent.json", '{"model_type":"bloom","hidden_size":6.4e1,"n_head":4e0,"n_layer":2,"vocab_size":1e300}')
    put(t, "unknown-type.json", json.dumps(dict(bloom, model_type="llama")))
    put(t, "bad-dtype.json", json.dumps(dict(bloom, torch_dtype="int8")))
    put(t, "not-object.json", "[1]")
    put(t, "malformed.json", '{"model_type": "bloom",\n "hidden_size": 64,,\n}')


# ---- tokenizers ----

def bytes_to_unicode():
    """GPT-2's byte -> printable character map (openai/gpt-2 encoder.py bytes_to_unicode)"""
    bs = (list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) +
          list(range(ord("®"), ord("ÿ") + 1)))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, (chr(c) for c in cs)))


B2U = bytes_to_unicode()
BLOOM_REGEX = " ?[^(\\s|[.,!?…。，、।۔،])]+"
MERGES = [("Ġ", "t"), ("h", "e"), ("Ġt", "he"), ("l", "l"), ("e", "ll"), ("Ġ", "w"), ("o", "r"), ("Ġw", "or"),
          ("l", "d"), ("Ġwor", "ld"), ("Ġ", "Ġ"), ("i", "n"), ("Ġ", "a"), ("Ã", "©"), ("ð", "Ł")]


def vocab(first_ids):
    v = {}
    for tok in first_ids:
        v[tok] = len(v)
    for b in range(256):
        v.setdefault(B2U[b], len(v))
    for a, b in MERGES:
        v.setdefault(a + b, len(v))
    return v


def added(tokens, normalized):
    return [{"id": i, "content": c, "single_word": False, "lstrip": False, "rstrip": False, "normalized": normalized,
             "special": True} for c, i in tokens]


def bloom_json(modern=False):
    v = vocab(["<unk>", "<s>", "</s>", "<pad>"])
    return {"version": "1.0", "truncation": None, "padding": None,
            "added_tokens": added([("<unk>", 0), ("<s>", 1), ("</s>", 2), ("<pad>", 3)], False),
            "normalizer": None,
            "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
                {"type": "Split", "pattern": {"Regex": BLOOM_REGEX}, "behavior": "Isolated", "invert": False},
                {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False}]},
            "post_processor": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": False},
            "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True},
            "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
                      "end_of_word_suffix": None, "fuse_unk": False, "vocab": v,
                      "merges": [[a, b] for a, b in MERGES] if modern else ["%s %s" % m for m in MERGES]}}


def opt_json():
    v = vocab(["<s>", "<pad>", "</s>", "<unk>"])
    return {"version": "1.0", "truncation": None, "padding": None,
            "added_tokens": added([("<pad>", 1), ("</s>", 2)], True), "normalizer": None,
            "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True},
            "post_processor": {"type": "TemplateProcessing",
                               "single": [{"SpecialToken": {"id": "</s>", "type_id": 0}},
                                          {"Sequence": {"id": "A", "type_id": 0}}],
                               "pair": [{"SpecialToken": {"id": "</s>", "type_id": 0}},
                                        {"Sequence": {"id": "A", "type_id": 0}},
                                        {"Sequence": {"id": "B", "type_id": 1}}],
                               "special_tokens": {"</s>": {"id": "</s>", "ids": [2], "tokens": ["</s>"]}}},
            "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
            "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": "",
                      "end_of_word_suffix": "", "fuse_unk": False, "byte_fallback": False, "ignore_merges": False,
                      "vocab": v, "merges": [[a, b] for a, b in MERGES]}}


SEP = "\n--8<--\n"


def hub(vocab_json, merges_txt, config="", smap="", added_tokens=""):
    return SEP.join([vocab_json, merges_txt, config, smap, added_tokens])


def seeds_tokenizer():
    t = "fuzz_tokenizer"
    put(t, "bloom.json", json.dumps(bloom_json(), ensure_ascii=False))
    put(t, "bloom-modern.json", json.dumps(bloom_json(modern=True), ensure_ascii=False))
    put(t, "opt-fast.json", json.dumps(opt_json(), ensure_ascii=False))
    b = bloom_json()
    put(t, "normalizer.json", json.dumps(dict(b, normalizer={"type": "NFC"})))
    put(t, "unigram.json", json.dumps(dict(b, model={"type": "Unigram", "vocab": [["a", -1.0]]})))
    put(t, "dropout.json", json.dumps(dict(b, model=dict(b["model"], dropout=0.1))))
    put(t, "byte-fallback.json", json.dumps(dict(b, model=dict(b["model"], byte_fallback=True))))
    put(t, "merge-unknown-token.json", json.dumps(dict(b, model=dict(b["model"], merges=["Ġt zz"]))))
    put(t, "id-twice.json", json.dumps(dict(b, model=dict(b["model"], vocab={"a": 0, "b": 0}))))
    put(t, "id-huge.json", json.dumps(dict(b, model=dict(b["model"], vocab={"a": 16777215, "b": 1e300}))))
    put(t, "no-bytes.json", json.dumps(dict(b, model=dict(b["model"], vocab={"a": 0, "Ġ": 1}, merges=[]))))
    put(t, "added-lstrip.json", json.dumps(dict(b, added_tokens=[dict(b["added_tokens"][0], lstrip=True)])))
    put(t, "template-two.json", json.dumps(dict(opt_json(), post_processor={
        "type": "Sequence", "processors": [opt_json()["post_processor"]] * 2})))
    put(t, "not-object.json", "[]")
    v = vocab(["<s>", "<pad>", "</s>", "<unk>"])
    vj = json.dumps(v)  # ASCII-escaped, as the hub's vocab.json
    mt = "#version: 0.2\n" + "".join("%s %s\n" % m for m in MERGES)
    tc = json.dumps({"add_bos_token": True, "add_prefix_space": False, "errors": "replace",
                     "bos_token": {"__type": "AddedToken", "content": "</s>", "lstrip": False, "normalized": True,
                                   "rstrip": False, "single_word": False},
                     "eos_token": "</s>", "unk_token": "</s>", "pad_token": "<pad>",
                     "tokenizer_class": "GPT2Tokenizer"}, indent=2)
    sm = json.dumps({"bos_token": {"content": "</s>", "normalized": True}, "eos_token": "</s>",
                     "unk_token": "</s>", "pad_token": "<pad>", "additional_special_tokens": ["<extra>"]})
    put(t, "hub-opt.txt", hub(vj, mt, tc, sm))
    put(t, "hub-no-config.txt", hub(vj, mt))
    put(t, "hub-crlf-merges.txt", hub(vj, mt.replace("\n", "\r\n"), tc))
    put(t, "hub-added-tokens.txt", hub(vj, mt, tc, "", json.dumps({"<extra>": len(v), "<more>": len(v) + 1})))
    put(t, "hub-decoder.txt", hub(vj, mt, json.dumps({"added_tokens_decoder": {
        "1": {"content": "<pad>", "special": True}, "2": {"content": "</s>", "special": True}},
        "add_eos_token": True, "eos_token": "</s>"})))
    put(t, "hub-bad-class.txt", hub(vj, mt, json.dumps({"tokenizer_class": "BertTokenizer"})))
    put(t, "hub-prefix-space.txt", hub(vj, mt, json.dumps({"add_prefix_space": True})))
    put(t, "hub-bos-missing.txt", hub(vj, mt, json.dumps({"add_bos_token": True, "bos_token": None})))
    put(t, "hub-bad-merge.txt", hub(vj, "#version: 0.2\nonlyone\na b c\n"))
    put(t, "hub-no-merges.txt", hub(vj, ""))


def seeds_encode():
    t = "fuzz_encode"
    texts = {
        "english.txt": "The quick brown fox jumps over the lazy dog. It's 3:45pm, isn't it?",
        "code.txt": "int main(void) {\n\tprintf(\"%d\\n\", x[i] + 1);\n\treturn 0; // done\n}\n",
        "specials.txt": "</s><s>x<pad> <unk></s></s>\n<|endoftext|>",
        "whitespace.txt": "  a  \t\t b\r\n\r\n   \u00a0\u2007\u202f\u0085\u3000 end   ",
        "digits.txt": "3.14159 1,000,000 0x1F 2024-01-01 ١٢٣ ½",
        "contractions.txt": "don't I'll we're they've she'd it's O'Neil 'quoted'",
        "emoji.txt": "👍🏽 👨‍👩‍👧‍👦 🏳️‍🌈 😀😃 ❤️",
        "combining.txt": "e\u0301 é ñ n\u0303 Å A\u030a ǅ ﬁ",
        "cjk.txt": "日本語のテキスト。中文，标点！한국어 텍스트",
        "rtl.txt": "مرحبا بالعالم، كيف حالك؟ שלום עולם",
        "indic.txt": "नमस्ते दुनिया। தமிழ் ভাষা",
        "nul.txt": "a\0b\0\0c",
        "long-word.txt": "a" * 300 + " " + "ab" * 200,
        "bmp-edges.txt": "\u007f\u0080\u07ff\u0800\uffef\ufffd\U00010000\U0010ffff",
        "empty.txt": "",
    }
    for k, v in texts.items():
        put(t, k, v)
    bad = {"overlong.bin": b"a\xc0\xafb", "surrogate.bin": b"x\xed\xa0\x80y", "truncated.bin": b"abc\xe2\x82",
           "lone-continuation.bin": b"\x80\xbf", "beyond-10ffff.bin": b"\xf4\x90\x80\x80", "ff.bin": b"\xff\xfe",
           "mixed.bin": "héllo".encode() + b"\xe9" + "wörld".encode()}
    for k, v in bad.items():
        put(t, k, v)


def seeds_tokens():
    t = "fuzz_tokens"
    for i, s in enumerate(["1,2,3", "1,2,3;7,8", "0", "49999", "50000", "-1", "", ";", "1;;2", "1,", ",1", "1,,2",
                           " 1, 2", "+1", "0x10", "1 2", "99999999999999999999", "-9223372036854775808",
                           ";".join(",".join(str(j) for j in range(k, k + 20)) for k in range(0, 200, 20)), "1;2;3;"]):
        put(t, "seed%02d.txt" % i, s)


# ---- serve ----

def req(flags, method, url, auth="", ctype="application/json", body=b""):
    if isinstance(body, str):
        body = body.encode()
    return ("%s%s\0%s\0%s\0%s\0" % (flags, method, url, auth, ctype)).encode() + body


def seeds_serve():
    t = "fuzz_serve"
    c = "/v1/completions"
    bodies = {
        "plain": {"prompt": "Hello world", "max_tokens": 4},
        "model": {"model": "pp8-fuzz", "prompt": "Hi", "max_tokens": 1, "temperature": 0},
        "wrong-model": {"model": "gpt-4", "prompt": "Hi"},
        "list": {"prompt": ["a", "b", "c"], "max_tokens": 2, "seed": 18446744073709551615},
        "ids": {"prompt": [1, 2, 3], "max_tokens": 2},
        "ids-list": {"prompt": [[1, 2], [3]], "echo": True, "logprobs": 5, "max_tokens": 0},
        "stream": {"prompt": "x", "stream": True, "stream_options": {"include_usage": True}},
        "sampling": {"prompt": "x", "temperature": 1.5, "top_p": 0.9, "top_k": 40, "min_p": 0.05,
                     "repetition_penalty": 1.1, "ignore_eos": True, "user": "u"},
        "stop": {"prompt": "x", "stop": ["\n", "</s>", "a", "bb"]},
        "stop-string": {"prompt": "x", "stop": "."},
        "n2": {"prompt": "x", "n": 2},
        "best-of": {"prompt": "x", "best_of": 3},
        "suffix": {"prompt": "x", "suffix": "y"},
        "logit-bias": {"prompt": "x", "logit_bias": {"1": 10}},
        "penalties": {"prompt": "x", "presence_penalty": 0.5, "frequency_penalty": 0},
        "unknown": {"prompt": "x", "foo": 1, "bar": [1, {"baz": None}]},
        "context": {"prompt": "x " * 300, "max_tokens": 16},
        "max-tokens-big": {"prompt": "x", "max_tokens": 100000},
        "empty-prompt": {"prompt": ""},
        "id-range": {"prompt": [0, 99999999]},
        "logprobs-6": {"prompt": "x", "logprobs": 6},
        "nested-nulls": {"prompt": None, "max_tokens": None, "stop": None},
    }
    for name, b in bodies.items():
        put(t, "post-%s.bin" % name, req("0", "POST", c, body=json.dumps(b)))
    put(t, "post-opt-empty.bin", req("2", "POST", c, body='{"prompt": ""}'))
    put(t, "post-escapes.bin",
        req("0", "POST", c, body='{"prompt": "\\u00e9\\ud83d\\ude00\\u0000\\n\\"", "stop": ["\\u0000"]}'))
    put(t, "post-bad-surrogate.bin", req("0", "POST", c, body='{"prompt": "\\ud800"}'))
    put(t, "post-invalid-utf8.bin", req("0", "POST", c, body=b'{"prompt": "\xc3\x28"}'))
    put(t, "post-not-json.bin", req("0", "POST", c, body="{prompt: 1}"))
    put(t, "post-trailing.bin", req("0", "POST", c, body='{"prompt": "x"} {}'))
    put(t, "post-deep.bin", req("0", "POST", c, body="[" * 100 + "]" * 100))
    put(t, "post-numbers.bin", req("0", "POST", c, body='{"prompt": "x", "max_tokens": 1e2, "temperature": -0.0, '
                                                          '"top_p": 1E-400, "seed": -1, "top_k": 01}'))
    put(t, "post-charset.bin", req("0", "POST", c, ctype="application/json; charset=utf-8", body='{"prompt": "x"}'))
    put(t, "post-text-plain.bin", req("0", "POST", c, ctype="text/plain", body='{"prompt": "x"}'))
    put(t, "post-no-ctype.bin", req("8", "POST", c, body='{"prompt": "x"}'))
    put(t, "post-too-big.bin", req("0", "POST", c, body='{"prompt": "' + "x" * 16400 + '"}'))
    put(t, "keyed-ok.bin", req("1", "POST", c, auth="Bearer sk-fuzz", body='{"prompt": "x"}'))
    put(t, "keyed-wrong.bin", req("1", "POST", c, auth="Bearer sk-fuzx", body='{"prompt": "x"}'))
    put(t, "keyed-no-auth.bin", req("5", "GET", "/v1/models"))
    put(t, "keyed-health.bin", req("5", "GET", "/health"))
    for name, (m, u) in {"models": ("GET", "/v1/models"), "health": ("GET", "/health"), "metrics": ("GET", "/metrics"),
                         "chat": ("POST", "/v1/chat/completions"), "nowhere": ("GET", "/nowhere"),
                         "v1-nowhere": ("GET", "/v1/nowhere"), "put-health": ("PUT", "/health"),
                         "get-completions": ("GET", c), "post-metrics": ("POST", "/metrics"),
                         "delete-models": ("DELETE", "/v1/models")}.items():
        put(t, "%s.bin" % name, req("0", m, u))


def seeds_sse():
    t = "fuzz_sse"
    S = b"\0|"

    def ev(flags, id_, model, text, msg, param, *tokens):
        nums = bytes([flags, 0x10, 0x20, 0x30, 0x40, 0x01, 0x05, 0x07, 0x00])
        parts = [p if isinstance(p, bytes) else p.encode() for p in (id_, model, text, msg, param) + tokens]
        return nums + S.join(parts)

    put(t, "plain.bin", ev(0x01, "cmpl-1", "pp8", "Hello", "bad request", "prompt"))
    put(t, "logprobs.bin", ev(0x0d, "cmpl-2", "pp8", "Hello world", "m", "p", "Hel", "lo", " wor", "ld"))
    put(t, "logprobs-first-null.bin", ev(0x1e, "id", "m", "ab", "x", "", "a", "b", "a"))
    put(t, "dup-tops.bin", ev(0x08, "i", "m", "t", "e", "", "same", "same", "same", "\xff", "\xfe"))
    put(t, "escapes.bin", ev(0x43, "id\"\\", "model\n\t", "\"\\/\b\f\n\r\t\x01\x1f\x7f", "msg\"", "par\\am"))
    put(t, "nul-text.bin", ev(0x02, "id", "m", b"a\0b\0", b"x\0y", b"p"))
    put(t, "invalid-utf8.bin", ev(0x2b, b"\xc0\xaf", b"\xed\xa0\x80", b"ok\xe2\x82", b"\xff" * 600, b"\x80" * 80,
                                  b"\xf0\x9f", b"\xf0\x9f\x98\x80"))
    put(t, "emoji.bin", ev(0x05, "id", "m", "👨‍👩‍👧 é ñ 日本", "ü", "ß", "😀", "日",
                           "\u2028\u2029"))
    put(t, "raw-error.bin", ev(0x60, "id", "m", "long message text " * 40, "t", "param " * 20))
    put(t, "no-model.bin", ev(0x80, "", "", "", "", ""))
    put(t, "nan-logprob.bin", ev(0x08, "i", "m", "t", "", "", b"\x00\x00\xc0\x7f", b"\x00\x00\x80\x7f",
                                 b"\x00\x00\x80\xff"))


def main():
    for target in ("fuzz_safetensors", "fuzz_safetensors_index", "fuzz_config", "fuzz_tokenizer", "fuzz_encode",
                   "fuzz_tokens", "fuzz_serve", "fuzz_sse"):
        shutil.rmtree(os.path.join(OUT, target), ignore_errors=True)
        os.makedirs(os.path.join(OUT, target))
    seeds_safetensors()
    seeds_index()
    seeds_config()
    seeds_tokenizer()
    seeds_encode()
    seeds_tokens()
    seeds_serve()
    seeds_sse()


if __name__ == "__main__":
    main()
