#!/usr/bin/env python3
"""loadgen: closed-loop streaming load against an OpenAI-compatible completions server (pp8 serve).

A benchmark tool, not a test: it reports what it measured and exits 0 unless it could not run at all
(or, with --fail-on-error, when any request failed).

N client threads, each with its own HTTP/1.1 keep-alive connection, loop: send one POST /v1/completions
with "stream": true and "stream_options": {"include_usage": true}, read the server-sent events to
"data: [DONE]", and send the next request at once (closed loop: at most N requests in flight). Prompts
come from --prompts (one JSON string per line, or {"prompt": "..."}; blank lines skipped) or a built-in
list of short English and code prompts; each client walks them in its own random order (--seed).

What counts: only requests *started* after the --warmup seconds; the run stops starting new requests
after --duration seconds (or once --requests counted requests have been started) and lets the ones in
flight finish. The measured window runs from the end of the warm-up to the last counted request's end.
  requests/s            counted requests that finished without error / window
  generated tokens/s    sum of usage.completion_tokens (the include_usage chunk) of those / window
  server tokens/s       with --duration: the server's pp8_generation_tokens_total (GET /metrics) over
                        [warm-up end, duration end] / that time: every token generated meanwhile,
                        whichever request it belongs to (unbiased when long requests run in lockstep)
  TTFT                  request sent -> first event that carries a choice (text or finish_reason):
                        the first text a client could show. pp8 holds back text that ends inside a
                        UTF-8 character until a later token completes it (as Hugging Face's
                        DecodeStream does); with random weights that can be the whole completion, so
                        TTFT then reads as the request's full time
  ITL                   gaps between consecutive choice events of a stream (each normally one token;
                        vLLM's benchmark_serving definition), all requests pooled
  TPOT                  per request: (last event - first event) / (completion_tokens - 1)
  errors                counted requests that failed, by kind: http_NNN (a non-200 status, e.g. 429
                        with the queue full), connect, timeout, closed (the stream ended without
                        [DONE]), stream_error (an error event), no_usage (no usage chunk), bad_event;
                        a client waits 0.05 s after a 429/503 and 0.1 s after a failed connect
  client CPU            time.process_time() over wall time, for this whole process (all threads), in
                        cores; Python runs one thread at a time, so near 1.0 the client itself may be
                        the bottleneck: run fewer clients per process or several processes
p50/p99 are linear-interpolation percentiles (numpy's default) over the counted requests.
Standard library only (http.client, threading): runs with any python3 >= 3.8.

examples:
  launch/loadgen.py --url http://127.0.0.1:8000 --clients 16 --duration 30 --max-tokens 8:256
  launch/loadgen.py --url http://127.0.0.1:8000/v1 --clients 64 --requests 1000 --ignore-eos --json out.json
"""
import argparse
import http.client
import json
import random
import socket
import sys
import threading
import time
import urllib.parse

BUILTIN_PROMPTS = [
    "Hello, world!",
    "The quick brown fox jumps over the lazy dog.",
    "Once upon a time, in a small village by the sea, there lived",
    "def fib(n):\n    return n if n < 2 else fib(n - 1) + fib(n - 2)\n",
    "The history of the region is long and complicated, and many peoples have lived there over the "
    "centuries: farmers, traders, soldiers and priests, each leaving something behind.",
    "In 1869 the first transcontinental railroad was completed, linking",
    "Q: What is the capital of France?\nA:",
    "a",
    "Numbers: 3.14159, 2.71828 and 1.41421 are",
    "import numpy as np\n\ndef softmax(x):\n",
]


def percentile(xs, q):
    """linear interpolation between closest ranks (numpy's default); None for no data"""
    if not xs:
        return None
    s = sorted(xs)
    pos = (len(s) - 1) * q / 100.0
    lo = int(pos)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


def parse_max_tokens(text):
    if ":" in text:
        a, b = text.split(":", 1)
        lo, hi = int(a), int(b)
    else:
        lo = hi = int(text)
    if lo < 1 or hi < lo:
        raise argparse.ArgumentTypeError("--max-tokens: N or LO:HI with 1 <= LO <= HI, got %r" % text)
    return lo, hi


def load_prompts(path):
    prompts = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                v = json.loads(line)
            except ValueError as ex:
                raise SystemExit("loadgen: %s:%d: not JSON (%s); each line is a JSON string" % (path, n, ex))
            if isinstance(v, dict):
                v = v.get("prompt")
            ids = isinstance(v, list) and v and all(isinstance(x, int) and not isinstance(x, bool) for x in v)
            if not isinstance(v, str) and not ids:
                raise SystemExit("loadgen: %s:%d: want a JSON string, a list of token ids, or {\"prompt\": ...}"
                                 % (path, n))
            prompts.append(v)
    if not prompts:
        raise SystemExit("loadgen: %s: no prompts" % path)
    return prompts


class Target:
    def __init__(self, url, api_key, timeout):
        u = urllib.parse.urlsplit(url if "://" in url else "http://" + url)
        if u.scheme not in ("http", "https"):
            raise SystemExit("loadgen: --url: http:// or https://, got %r" % url)
        self.https = u.scheme == "https"
        self.host = u.hostname or "127.0.0.1"
        self.port = u.port or (443 if self.https else 80)
        base = u.path.rstrip("/")
        if base.endswith("/v1"):
            base = base[:-3]
        self.base = base
        self.api_key = api_key
        self.timeout = timeout

    def connect(self):
        cls = http.client.HTTPSConnection if self.https else http.client.HTTPConnection
        return cls(self.host, self.port, timeout=self.timeout)

    def headers(self):
        h = {"Content-Type": "application/json", "Accept": "text/event-stream"}
        if self.api_key:
            h["Authorization"] = "Bearer " + self.api_key
        return h

    def get_json(self, path):
        c = self.connect()
        try:
            c.request("GET", self.base + path, headers=self.headers())
            r = c.getresponse()
            body = r.read()
            if r.status != 200:
                raise RuntimeError("GET %s: HTTP %d %s" % (path, r.status, body[:200]))
            return json.loads(body)
        finally:
            c.close()


    def server_tokens(self):
        """pp8_generation_tokens_total from the server's /metrics (at the root, next to /v1), or None"""
        c = self.connect()
        try:
            c.request("GET", "/metrics")
            r = c.getresponse()
            body = r.read().decode("utf-8", "replace")
            if r.status != 200:
                return None
            for line in body.splitlines():
                if line.startswith("pp8_generation_tokens_total "):
                    return float(line.split()[1])
        except (OSError, http.client.HTTPException, ValueError):
            return None
        finally:
            c.close()
        return None


class Result:
    __slots__ = ("t_start", "t_end", "ok", "error", "ttft", "gaps", "tpot", "completion_tokens", "prompt_tokens")

    def __init__(self, t_start):
        self.t_start = t_start
        self.t_end = None
        self.ok = False
        self.error = None
        self.ttft = None
        self.gaps = []
        self.tpot = None
        self.completion_tokens = 0
        self.prompt_tokens = 0


def one_request(conn_holder, target, body):
    """sends one streaming request on conn_holder[0] (reconnecting when needed); returns a Result"""
    res = Result(time.perf_counter())
    conn = conn_holder[0]
    got_response = False
    try:
        if conn is None:
            conn = conn_holder[0] = target.connect()
        conn.request("POST", target.base + "/v1/completions", body=body, headers=target.headers())
        r = conn.getresponse()
        got_response = True
        if r.status != 200:
            r.read()
            res.error = "http_%d" % r.status
            if r.getheader("Connection", "").lower() == "close":
                conn.close()
                conn_holder[0] = None
            res.t_end = time.perf_counter()
            return res
        t_prev = None
        done = usage = False
        while True:
            line = r.readline()
            if not line:
                break
            line = line.rstrip(b"\r\n")
            if not line.startswith(b"data:"):
                continue
            data = line[5:].strip()
            if data == b"[DONE]":
                done = True
                break
            try:
                ev = json.loads(data)
            except ValueError:
                res.error = "bad_event"
                break
            if "error" in ev:
                res.error = "stream_error"
                break
            now = time.perf_counter()
            if ev.get("choices"):
                if t_prev is None:
                    res.ttft = now - res.t_start
                    t_first = now
                else:
                    res.gaps.append(now - t_prev)
                t_prev = now
            if ev.get("usage"):
                usage = True
                res.completion_tokens = int(ev["usage"].get("completion_tokens", 0))
                res.prompt_tokens = int(ev["usage"].get("prompt_tokens", 0))
        if res.error is None:
            if not done:
                res.error = "closed"
            elif not usage:
                res.error = "no_usage"
            else:
                res.ok = True
                if t_prev is not None and res.completion_tokens > 1:
                    res.tpot = (t_prev - t_first) / (res.completion_tokens - 1)
        if res.error is not None:
            conn.close()
            conn_holder[0] = None
        else:
            r.read()  # the chunked terminator, so the connection can be reused
    except socket.timeout:
        res.error = "timeout"
    except (ConnectionError, http.client.HTTPException, OSError):
        # before a status line came back: the connection failed; after: the stream was cut
        res.error = "closed" if got_response else "connect"
    if res.error is not None and conn_holder[0] is not None:
        try:
            conn_holder[0].close()
        except Exception:
            pass
        conn_holder[0] = None
    res.t_end = time.perf_counter()
    return res


def main(argv=None):
    ap = argparse.ArgumentParser(
        prog="loadgen.py", description=__doc__.split("\n\n")[0],
        epilog="\n\n".join(__doc__.split("\n\n")[1:]), formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", default="http://127.0.0.1:8000",
                    help="the server's base URL, with or without /v1 (default http://127.0.0.1:8000)")
    ap.add_argument("--clients", type=int, default=8, help="concurrent closed-loop clients (default 8)")
    g = ap.add_mutually_exclusive_group()
    g.add_argument("--duration", type=float, help="seconds of counted load after the warm-up (default 30)")
    g.add_argument("--requests", type=int, help="counted requests to start after the warm-up, instead of --duration")
    ap.add_argument("--warmup", type=float, default=2.0,
                    help="seconds at the start whose requests are not counted (default 2; 0: none)")
    ap.add_argument("--prompts", help="file of prompts: one JSON string or token-id list (or {\"prompt\": ...}) per line "
                    "(default: %d built-in prompts)" % len(BUILTIN_PROMPTS))
    ap.add_argument("--max-tokens", type=parse_max_tokens, default=(64, 64),
                    help="max_tokens per request: N, or LO:HI drawn uniformly (inclusive) per request (default 64)")
    ap.add_argument("--ignore-eos", action="store_true",
                    help="send pp8's (and vLLM's) ignore_eos, so every request generates max_tokens tokens")
    ap.add_argument("--temperature", type=float, default=0.0, help="sampling temperature (default 0: greedy)")
    ap.add_argument("--model", help="the model to ask for (default: the first of GET /v1/models)")
    ap.add_argument("--api-key", help="sent as Authorization: Bearer KEY")
    ap.add_argument("--timeout", type=float, default=120.0,
                    help="socket timeout per read, seconds (default 120); a request that times out is an error")
    ap.add_argument("--seed", type=int, default=0, help="seed of the clients' prompt and max_tokens draws (default 0)")
    ap.add_argument("--json", metavar="FILE", help="also write the report as JSON to FILE")
    ap.add_argument("--fail-on-error", action="store_true", help="exit 1 when any counted request failed")
    a = ap.parse_args(argv)
    if a.clients < 1:
        ap.error("--clients must be >= 1")
    if a.requests is not None and a.requests < 1:
        ap.error("--requests must be >= 1")
    if a.duration is None and a.requests is None:
        a.duration = 30.0
    prompts = load_prompts(a.prompts) if a.prompts else list(BUILTIN_PROMPTS)
    target = Target(a.url, a.api_key, a.timeout)
    model = a.model
    if not model:
        try:
            model = target.get_json("/v1/models")["data"][0]["id"]
        except Exception as ex:
            raise SystemExit("loadgen: cannot ask %s for its model (%s); give --model" % (a.url, ex))

    lock = threading.Lock()
    state = {"started": 0}
    results = []
    t0 = time.perf_counter()
    t_warm = t0 + a.warmup
    t_stop = t_warm + a.duration if a.duration is not None else None

    def may_start():
        """(start?, counted?) for a client about to send a request"""
        now = time.perf_counter()
        if now < t_warm:
            return True, False
        with lock:
            if t_stop is not None:
                return (now < t_stop), True
            if state["started"] >= a.requests:
                return False, True
            state["started"] += 1
            return True, True

    def client(i):
        rng = random.Random(a.seed * 1000003 + i)
        order = list(range(len(prompts)))
        rng.shuffle(order)
        k = 0
        conn = [None]
        while True:
            go, counted = may_start()
            if not go:
                break
            lo, hi = a.max_tokens
            body = {"model": model, "prompt": prompts[order[k % len(order)]], "max_tokens": rng.randint(lo, hi),
                    "temperature": a.temperature, "stream": True, "stream_options": {"include_usage": True}}
            if a.ignore_eos:
                body["ignore_eos"] = True
            k += 1
            res = one_request(conn, target, json.dumps(body).encode())
            if counted:
                with lock:
                    results.append(res)
            if res.error and (res.error.startswith("http_429") or res.error.startswith("http_503")):
                time.sleep(0.05)  # the server asked to back off: do not spin
            elif res.error == "connect":
                time.sleep(0.1)  # nothing listens (yet, or any more): do not spin
        if conn[0] is not None:
            conn[0].close()

    cpu0 = None
    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(a.clients)]
    for t in threads:
        t.start()
    # the CPU share is measured over the counted window
    while time.perf_counter() < t_warm:
        time.sleep(min(0.05, max(0.0, t_warm - time.perf_counter())))
    cpu0, wall0 = time.process_time(), time.perf_counter()
    # the server's own token count over [warm-up end, --duration end], whatever request the tokens belong
    # to: a closed loop of long requests in lockstep leaves the counted requests' window mostly someone
    # else's tokens, and this figure is not biased by that
    srv0 = target.server_tokens()
    srv_t0 = time.perf_counter()
    srv1 = srv_t1 = None
    if t_stop is not None and srv0 is not None:
        while time.perf_counter() < t_stop:
            time.sleep(min(0.05, max(0.0, t_stop - time.perf_counter())))
        srv1, srv_t1 = target.server_tokens(), time.perf_counter()
    for t in threads:
        t.join()
    cpu1, wall1 = time.process_time(), time.perf_counter()

    ok = [r for r in results if r.ok]
    errors = {}
    for r in results:
        if not r.ok:
            errors[r.error] = errors.get(r.error, 0) + 1
    t_last = max((r.t_end for r in results), default=t_warm)
    window = max(t_last - t_warm, 1e-9)
    gen = sum(r.completion_tokens for r in ok)
    ttft = [r.ttft for r in ok if r.ttft is not None]
    gaps = [g for r in ok for g in r.gaps]
    tpot = [r.tpot for r in ok if r.tpot is not None]

    def ms(v):
        return None if v is None else round(v * 1000.0, 3)

    report = {
        "url": a.url, "model": model, "clients": a.clients, "warmup_s": a.warmup,
        "duration_s": a.duration, "requests_asked": a.requests,
        "max_tokens": list(a.max_tokens), "ignore_eos": a.ignore_eos, "temperature": a.temperature,
        "prompts": len(prompts), "window_s": round(window, 4),
        "requests": len(results), "completed": len(ok), "errors": sum(errors.values()), "errors_by_kind": errors,
        "requests_per_s": round(len(ok) / window, 4),
        "generated_tokens": gen, "generated_tokens_per_s": round(gen / window, 3),
        "server_generated_tokens_per_s": (round((srv1 - srv0) / (srv_t1 - srv_t0), 3)
                                          if srv1 is not None and srv0 is not None else None),
        "prompt_tokens": sum(r.prompt_tokens for r in ok),
        "ttft_ms": {"p50": ms(percentile(ttft, 50)), "p99": ms(percentile(ttft, 99))},
        "itl_ms": {"p50": ms(percentile(gaps, 50)), "p99": ms(percentile(gaps, 99))},
        "tpot_ms": {"p50": ms(percentile(tpot, 50)), "p99": ms(percentile(tpot, 99))},
        "client_cpu_cores": round((cpu1 - cpu0) / max(wall1 - wall0, 1e-9), 4),
    }
    f = lambda v: "-" if v is None else "%.2f" % v
    print("loadgen: %d clients on %s (%s), max_tokens %s, %s, window %.2f s" % (
        a.clients, a.url, model, "%d:%d" % a.max_tokens if a.max_tokens[0] != a.max_tokens[1] else a.max_tokens[0],
        "ignore_eos" if a.ignore_eos else "EOS stops", window))
    print("  requests        %d counted, %d completed, %d errors %s" % (
        len(results), len(ok), report["errors"], json.dumps(errors) if errors else ""))
    print("  requests/s      %.3f" % report["requests_per_s"])
    print("  gen tokens/s    %.1f  (%d tokens)" % (report["generated_tokens_per_s"], gen))
    if report["server_generated_tokens_per_s"] is not None:
        print("  server tokens/s %.1f  (pp8_generation_tokens_total over the --duration window)"
              % report["server_generated_tokens_per_s"])
    print("  TTFT ms         p50 %s  p99 %s" % (f(report["ttft_ms"]["p50"]), f(report["ttft_ms"]["p99"])))
    print("  ITL ms          p50 %s  p99 %s" % (f(report["itl_ms"]["p50"]), f(report["itl_ms"]["p99"])))
    print("  TPOT ms         p50 %s  p99 %s" % (f(report["tpot_ms"]["p50"]), f(report["tpot_ms"]["p99"])))
    print("  client CPU      %.2f cores (process_time / wall)" % report["client_cpu_cores"])
    if a.json:
        with open(a.json, "w", encoding="utf-8") as out:
            json.dump(report, out, indent=1)
            out.write("\n")
    if a.fail_on_error and report["errors"]:
        return 1
    if not results:
        print("loadgen: no request was counted (a warm-up longer than the run?)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
