#!/usr/bin/env python3
"""pp8 serve when a sequence's logits turn NaN (issue 16): a copy of gen-opt whose embedding row of one
token is NaN, with the original embedding kept as lm_head.weight (so only sequences that read that token
go wrong). On 2 ranks, a request whose prompt holds the token ends with finish_reason "error" (HTTP 200,
the server logs the rank and step), a concurrent request without it completes with the text of
`pp8 generate` on the unmodified model, and the server keeps serving. Standard library only.
usage: test_serve_nan.py PP8 GOLDEN_DIR TMP MPIRUN..."""
import http.client
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import threading
import time

PP8, GOLDEN, TMP = sys.argv[1:4]
MPIRUN = sys.argv[4].split()
BAD = 7  # the token whose embedding row becomes NaN
fails = checks = 0


def check(ok, what):
    global fails, checks
    print(("ok: " if ok else "FAIL: ") + what, flush=True)
    fails += 0 if ok else 1
    checks += 1


# the poisoned checkpoint
src = os.path.join(GOLDEN, "textgen", "gen-opt")
dst = os.path.join(TMP, "gen-opt-nan")
shutil.copytree(src, dst)
raw = open(os.path.join(src, "model.safetensors"), "rb").read()
n = struct.unpack("<Q", raw[:8])[0]
hdr = json.loads(raw[8:8 + n])
meta = hdr.pop("__metadata__", None)
name = next(k for k in hdr if k.endswith("embed_tokens.weight"))
t = hdr[name]
rows, cols = t["shape"]
data = bytearray(raw[8 + n:])
a, b = t["data_offsets"]
emb = bytes(data[a:b])
for j in range(cols):  # fp16 NaN
    struct.pack_into("<H", data, a + (BAD * cols + j) * 2, 0x7E00)
hdr["lm_head.weight"] = {"dtype": "F16", "shape": [rows, cols], "data_offsets": [len(data), len(data) + len(emb)]}
data += emb
if meta is not None:
    hdr["__metadata__"] = meta
h = json.dumps(hdr).encode()
h += b" " * (-len(h) % 8)
with open(os.path.join(dst, "model.safetensors"), "wb") as f:
    f.write(struct.pack("<Q", len(h)) + h + bytes(data))

# the reference text of the clean prompt, from the unmodified model
clean = "The history of the region is long"
ref = json.loads(subprocess.run([PP8, "generate", "--model", src, "--dtype", "fp16", "--prompt", clean, "--max-new",
                                 "24", "--jsonl"], capture_output=True, text=True, check=True).stdout)["text"]

err = open(os.path.join(TMP, "serve.err"), "w+")
srv = subprocess.Popen(MPIRUN + ["-np", "2", PP8, "serve", "--model", dst, "--dtype", "fp16", "--port", "0",
                                 "--max-seq-len", "256"], stdout=subprocess.DEVNULL, stderr=err, start_new_session=True)
port = None
for _ in range(600):
    err.seek(0)
    m = re.search(r"on http://[^:]+:(\d+)/v1", err.read())
    if m:
        port = int(m.group(1))
        break
    if srv.poll() is not None:
        break
    time.sleep(0.1)
check(port is not None, "the server started on 2 ranks")


def post(body):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    c.request("POST", "/v1/completions", json.dumps(body), {"Content-Type": "application/json"})
    r = c.getresponse()
    out = (r.status, json.loads(r.read()))
    c.close()
    return out


try:
    if port:
        res = {}
        th = [threading.Thread(target=lambda k, b: res.__setitem__(k, post(b)), args=(k, b)) for k, b in [
            ("bad", {"prompt": [2, 100, BAD, 200], "max_tokens": 24, "temperature": 0}),
            ("good", {"prompt": clean, "max_tokens": 24, "temperature": 0})]]
        for x in th:
            x.start()
        for x in th:
            x.join()
        st, body = res["bad"]
        check(st == 200 and body["choices"][0]["finish_reason"] == "error",
              f"a prompt with the NaN token ends with finish_reason error: {st} {body['choices'][0]['finish_reason'] if st == 200 else body}")
        st, body = res["good"]
        check(st == 200 and body["choices"][0]["text"] == ref,
              f"the concurrent clean request gives generate's text: {body['choices'][0]['text']!r} vs {ref!r}")
        # rank 1's stderr reaches this file through mpirun's forwarding, which can lag rank 0's HTTP
        # reply: wait up to 10 s for the line
        logged = False
        for _ in range(100):
            err.seek(0)
            if re.search(r"r1/2.*non-finite logits for KV slot \d+ at position \d+", err.read()):
                logged = True
                break
            time.sleep(0.1)
        check(logged, "the last rank logged the non-finite logits with its rank, slot and position")
        st, body = post({"prompt": clean, "max_tokens": 24, "temperature": 0})
        check(st == 200 and body["choices"][0]["text"] == ref, "the server keeps serving afterwards")
finally:
    try:
        os.killpg(srv.pid, 9)
    except ProcessLookupError:
        pass
    srv.wait()
print(f"{checks - fails} of {checks} passed")
sys.exit(1 if fails or checks < 5 else 0)
