#!/usr/bin/env bash
# Crash-safe `pp8 quantize` (issue 17): a non-empty --out is refused without --force, replaced with it
# (and loads), an empty one is used; SIGKILL at many moments leaves OUT absent or complete (with --force:
# the old OUT or the new one), never partial, and a later run removes the killed runs' OUT.tmp.<pid>;
# `ulimit -f` makes the write fail with one line naming the file (not death by SIGXFSZ), leaving nothing;
# a filesystem too small (a 2 MB tmpfs; needs root: fails, never skips, without it) is refused before
# anything is written, naming OUT and the bytes needed. The other crash-safe writers (--json, logits
# --out) are checked for leaving no temporary file.
set -u
: "${PP8:?}" "${PP8_GOLDEN:?}" "${PP8_SRC:?}" "${PP8_MPIRUN:?}"
[ -d "$PP8_GOLDEN/opt-tiny" ] || { echo "FAIL: golden data missing: $PP8_GOLDEN/opt-tiny (set PP8_GOLDEN_DIR)"; exit 1; }
tmp=$(mktemp -d /tmp/pp8_qsafe_XXXXXX)
mnt=$tmp/mnt
trap 'mountpoint -q "$mnt" && umount "$mnt"; rm -rf "$tmp"' EXIT
fail=0 n=0
. "$PP8_SRC/tests/expect_error.sh"
bad() { echo "FAIL: $*"; fail=1; }
G=$PP8_GOLDEN/opt-tiny
Q() { "$PP8" quantize "$@" 2>"$tmp/q.log"; }
logits() { "$PP8" logits --model "$1" --dtype int8 --tokens 5,17,3,9 --out "$2" 2>/dev/null; }
leftovers() { ls -d "$1".tmp.* "$1".old.* 2>/dev/null; }

# ---- 1. --out: absent, non-empty (refused / --force), empty, not a directory ----
Q --model "$G" --out "$tmp/ref" || bad "quantize opt-tiny: $(cat "$tmp/q.log")"
Q --model "$G" --out "$tmp/ref35" --threshold 3.5 || bad "quantize opt-tiny --threshold 3.5"
logits "$tmp/ref35" "$tmp/ref35.npy" || bad "pp8 logits on a fresh quantize"
Q --model "$G" --out "$tmp/o" || bad "quantize into a new directory"
echo keep >"$tmp/o/stray.txt"
expect "non-empty --out without --force" "--force" -- "$PP8" quantize --model "$G" --out "$tmp/o" --threshold 3.5
cmp -s "$tmp/o/config.json" "$tmp/ref/config.json" && [ -f "$tmp/o/stray.txt" ] || bad "a refused run changed OUT"
[ -z "$(leftovers "$tmp/o")" ] || bad "a refused run left $(leftovers "$tmp/o")"
if Q --model "$G" --out "$tmp/o" --threshold 3.5 --force; then
  [ ! -e "$tmp/o/stray.txt" ] || bad "--force kept a file of the old OUT (it replaces the directory)"
  [ "$(ls "$tmp/o")" = "$(ls "$tmp/ref35")" ] || bad "--force: files $(ls "$tmp/o" | tr '\n' ' ')"
  logits "$tmp/o" "$tmp/o.npy" && cmp -s "$tmp/o.npy" "$tmp/ref35.npy" ||
    bad "--force: the replaced OUT does not load to a fresh quantize's logits"
  [ -z "$(leftovers "$tmp/o")" ] || bad "--force left $(leftovers "$tmp/o")"
  echo "ok: --force replaced a non-empty OUT; it loads to the same logits as a fresh quantize"
else bad "--force: $(cat "$tmp/q.log")"; fi
mkdir "$tmp/empty"
if Q --model "$G" --out "$tmp/empty/" --threshold 3.5; then
  logits "$tmp/empty" "$tmp/e.npy" && cmp -s "$tmp/e.npy" "$tmp/ref35.npy" || bad "empty --out: does not load the same"
  echo "ok: an existing empty --out is used"
else bad "an existing empty --out was refused: $(cat "$tmp/q.log")"; fi
touch "$tmp/afile"
expect "--out is a file" "not a directory" -- "$PP8" quantize --model "$G" --out "$tmp/afile" --force
expect "--out under a missing directory" "does not exist" -- "$PP8" quantize --model "$G" --out "$tmp/nodir/x"
cp -r "$G" "$tmp/src" && chmod -R u+w "$tmp/src"
expect "--out holds the model" "holds the --model directory" -- "$PP8" quantize --model "$tmp/src" --out "$tmp" --force
cmp -s "$tmp/src/model.safetensors" "$G/model.safetensors" || bad "the source model was changed"

# ---- 2. SIGKILL at many moments, on a model that takes ~1-2 s (~220 MB fp16 in, ~120 MB int8 out) ----
python3 - "$G" "$tmp/big" <<'EOF' || bad "could not generate the test model"
# An OPT checkpoint (hidden 1024, ffn 4096, 8 layers, vocab 8192) of small pseudo-random fp16 values,
# with a generation_config.json to be copied.
import json, os, random, struct, sys
src, dst = sys.argv[1], sys.argv[2]
hidden, ffn, layers, vocab = 1024, 4096, 8, 8192
os.makedirs(dst)
cfg = json.load(open(os.path.join(src, "config.json")))
cfg.update(hidden_size=hidden, word_embed_proj_dim=hidden, ffn_dim=ffn, num_hidden_layers=layers, vocab_size=vocab)
json.dump(cfg, open(os.path.join(dst, "config.json"), "w"), indent=2)
P = "model.decoder."
T = [(P + "embed_tokens.weight", [vocab, hidden]), (P + "embed_positions.weight", [cfg["max_position_embeddings"] + 2, hidden])]
for l in range(layers):
    q = P + "layers.%d." % l
    for m in ("q_proj", "k_proj", "v_proj", "out_proj"):
        T += [(q + "self_attn.%s.weight" % m, [hidden, hidden]), (q + "self_attn.%s.bias" % m, [hidden])]
    T += [(q + "self_attn_layer_norm.weight", [hidden]), (q + "self_attn_layer_norm.bias", [hidden]),
          (q + "fc1.weight", [ffn, hidden]), (q + "fc1.bias", [ffn]), (q + "fc2.weight", [hidden, ffn]),
          (q + "fc2.bias", [hidden]), (q + "final_layer_norm.weight", [hidden]), (q + "final_layer_norm.bias", [hidden])]
T += [(P + "final_layer_norm.weight", [hidden]), (P + "final_layer_norm.bias", [hidden])]
hdr, off = {"__metadata__": {"format": "pt"}}, 0
for name, shape in T:
    nb = 2
    for d in shape: nb *= d
    hdr[name] = {"dtype": "F16", "shape": shape, "data_offsets": [off, off + nb]}
    off += nb
h = json.dumps(hdr).encode()
h += b" " * (-len(h) % 8)
rng = random.Random(1)
block = struct.pack("<%de" % 65536, *[rng.uniform(-0.08, 0.08) for _ in range(65536)])
with open(os.path.join(dst, "model.safetensors"), "wb") as f:
    f.write(struct.pack("<Q", len(h)) + h)
    left, k = off, 0
    while left:
        b = block[k % 4096 * 2:] + block[:k % 4096 * 2]  # rotated, so rows (and their scales) differ
        w = min(left, len(b)); f.write(b[:w]); left -= w; k += 7
open(os.path.join(dst, "generation_config.json"), "w").write('{"bos_token_id": 2, "eos_token_id": 2}\n')
EOF
t0=$(date +%s.%N)
Q --model "$tmp/big" --out "$tmp/bigref" || bad "quantize of the big model: $(cat "$tmp/q.log")"
Q --model "$tmp/big" --out "$tmp/bigold" --threshold 3.5 || bad "quantize --threshold 3.5 of the big model"
echo "ok: the big model quantizes in $(echo "$(date +%s.%N) $t0" | awk '{printf "%.1f", ($1 - $2) / 2}') s"
same_as() { # DIR REF: the same file names, every file byte-identical
  [ -d "$1" ] && [ "$(ls "$1")" = "$(ls "$2")" ] || return 1
  for f in "$2"/*; do cmp -s "$f" "$1/${f##*/}" || return 1; done
}
killed_run() { # DELAY ARGS...: quantize, SIGKILLed after DELAY seconds
  local d=$1; shift
  "$PP8" quantize "$@" 2>/dev/null & local pid=$!
  sleep "$d"; kill -KILL $pid 2>/dev/null; wait $pid 2>/dev/null
}
midway=0 absent=0 complete=0
kills=0
for d in 0.05 0.5 0.9 1.3 1.8 2.4; do
  kills=$((kills + 1))
  rm -rf "$tmp/k"
  killed_run $d --model "$tmp/big" --out "$tmp/k"
  if [ ! -e "$tmp/k" ]; then
    absent=$((absent + 1)); [ -n "$(leftovers "$tmp/k")" ] && midway=$((midway + 1))
  elif same_as "$tmp/k" "$tmp/bigref"; then complete=$((complete + 1))
  else bad "killed after $d s: OUT exists but is not the complete checkpoint: $(ls -l "$tmp/k" | tr '\n' ' ')"; fi
  rm -rf "$tmp"/k.tmp.*
done
[ $midway -ge 1 ] || bad "no kill landed while OUT.tmp.<pid> was being written (the test did not test)"
echo "ok: $kills SIGKILLs into a new OUT: $absent left no OUT ($midway of them mid-write), $complete a complete one, 0 partial"
# --force over an existing OUT: at every moment it is the old checkpoint or the new one, never absent
old_seen=0 new_seen=0 kills=0
for d in 0.6 1.2 1.8 2.6; do
  kills=$((kills + 1))
  rm -rf "$tmp/f" && cp -r "$tmp/bigold" "$tmp/f"
  killed_run $d --model "$tmp/big" --out "$tmp/f" --force
  if same_as "$tmp/f" "$tmp/bigold"; then old_seen=$((old_seen + 1))
  elif same_as "$tmp/f" "$tmp/bigref"; then new_seen=$((new_seen + 1))
  else bad "--force killed after $d s: OUT is neither the old nor the new checkpoint: $(ls -l "$tmp/f" 2>&1 | tr '\n' ' ')"; fi
done
echo "ok: $kills SIGKILLs of --force over an old OUT: $old_seen left the old one, $new_seen the new one, 0 else"
# what killed runs leave (OUT.tmp.<dead pid>) is removed by the next run; a live pid's is not touched
killed_run 0.9 --model "$tmp/big" --out "$tmp/f" --force
[ -n "$(ls -d "$tmp"/f.tmp.* 2>/dev/null)" ] || echo "note: the last kill left no tmp dir"
mkdir -p "$tmp/f.tmp.$$" "$tmp/f.tmp.999999999" && echo x >"$tmp/f.tmp.999999999/model.safetensors.tmp.1"
if Q --model "$tmp/big" --out "$tmp/f" --force; then
  same_as "$tmp/f" "$tmp/bigref" || bad "after the kills, --force did not give the complete checkpoint"
  [ "$(ls -d "$tmp"/f.tmp.* 2>/dev/null)" = "$tmp/f.tmp.$$" ] ||
    bad "stale tmp dirs: want only the live $tmp/f.tmp.$$, have: $(ls -d "$tmp"/f.tmp.* 2>/dev/null | tr '\n' ' ')"
  grep -q "removed .*f.tmp.999999999, left by a killed run" "$tmp/q.log" || bad "no log line for a removed tmp dir"
  echo "ok: the next run removed the killed runs' OUT.tmp.<pid> and left a live process's alone"
else bad "quantize --force after kills: $(cat "$tmp/q.log")"; fi
rm -rf "$tmp"/f.tmp.* "$tmp/k" "$tmp/f"

# ---- 3. ulimit -f: the write fails with one line naming the file, not death by SIGXFSZ (rc 153) ----
# Under mpirun -np 1: the limit is set for the rank alone. (A singleton pp8 under `ulimit -f` fails in
# Open MPI's own start-up, whose helper writes its shared-memory files before pp8 runs a line.)
# $LIMITED KIB CMD...: CMD as one rank with `ulimit -f KIB`; the rank's own exit status goes to $tmp/rank.rc
LIMITED="$PP8_MPIRUN -np 1 bash -c"
LIMIT_SH='ulimit -f "$0" && "$1" "${@:2}"; r=$?; echo $r >"'"$tmp"'/rank.rc"; exit $r'
rank_rc() { # NAME: pp8 itself exited 1, not 153 (SIGXFSZ) or another signal
  local rc; rc=$(cat "$tmp/rank.rc" 2>/dev/null)
  [ "$rc" = 1 ] || bad "$1: pp8 exited with status '$rc' (153 = killed by SIGXFSZ), want 1"
  rm -f "$tmp/rank.rc"
}
expect "ulimit -f 64 (KiB)" "model.safetensors: write failed after 65536 of [0-9]* bytes: File too large" -- \
  $LIMITED "$LIMIT_SH" 64 "$PP8" quantize --model "$tmp/big" --out "$tmp/u"
rank_rc "ulimit -f 64"
[ ! -e "$tmp/u" ] && [ -z "$(leftovers "$tmp/u")" ] || bad "ulimit -f: left $(ls -d "$tmp"/u* | tr '\n' ' ')"
# the same for --force over an old OUT: the old one is left as it was
cp -r "$tmp/bigold" "$tmp/u2"
expect "ulimit -f 1024, --force" "File too large.*--out $tmp/u2 left as it was" -- \
  $LIMITED "$LIMIT_SH" 1024 "$PP8" quantize --model "$tmp/big" --out "$tmp/u2" --force
rank_rc "ulimit -f 1024 --force"
same_as "$tmp/u2" "$tmp/bigold" && [ -z "$(leftovers "$tmp/u2")" ] || bad "ulimit -f --force: the old OUT changed"
# the other writers users keep: logits --out and --json go through the same crash-safe writer
echo old >"$tmp/x.npy"
expect "logits --out, ulimit -f 1" "x.npy: write failed after 1024 of 2176 bytes: File too large" -- \
  $LIMITED "$LIMIT_SH" 1 "$PP8" logits --model "$tmp/ref" --dtype int8 --tokens 5,17 --out "$tmp/x.npy"
rank_rc "logits --out"
[ "$(cat "$tmp/x.npy")" = old ] && [ -z "$(ls "$tmp"/x.npy.* 2>/dev/null)" ] || bad "logits --out: x.npy changed or a temp left"
expect "plan --json, ulimit -f 1" "--json .*p.json: write failed after 1024 of" -- \
  $LIMITED "$LIMIT_SH" 1 "$PP8" plan --config "$PP8_SRC/configs/opt-125m.json" --json "$tmp/p.json"
rank_rc "plan --json"
[ -z "$(ls "$tmp"/p.json* 2>/dev/null)" ] || bad "plan --json left $(ls "$tmp"/p.json*)"
"$PP8" plan --config "$PP8_SRC/configs/opt-125m.json" --json "$tmp/p.json" >/dev/null 2>&1 &&
  python3 -c "import json,sys; json.load(open(sys.argv[1]))" "$tmp/p.json" && [ -z "$(ls "$tmp"/p.json.* 2>/dev/null)" ] ||
  bad "plan --json did not write a clean file"

# ---- 4. out of space: a 2 MB tmpfs; refused before anything is written, naming OUT and the bytes ----
mkdir "$mnt"
if ! mount -t tmpfs -o size=2M pp8test "$mnt" 2>"$tmp/mount.err"; then
  bad "mount -t tmpfs failed (this test needs root with CAP_SYS_ADMIN): $(cat "$tmp/mount.err")"
else
  ref_bytes=$(cat "$tmp/bigref"/* | wc -c)
  expect "out of space" "$mnt/q: needs .* MB ([0-9]* bytes) free" -- "$PP8" quantize --model "$tmp/big" --out "$mnt/q"
  need=$(sed -n 's/.*needs [0-9.]* [MG]B (\([0-9]*\) bytes).*/\1/p' "$tmp/err")
  # the exact bytes of every file, each rounded up to whole 4 KiB blocks, plus the directory's block
  [ -n "$need" ] && [ "$need" -ge "$ref_bytes" ] && [ "$need" -le $((ref_bytes + 4 * 4096)) ] ||
    bad "out of space: needs '$need' bytes, the files are $ref_bytes"
  [ -z "$(ls -A "$mnt")" ] || bad "out of space: wrote $(ls -A "$mnt" | tr '\n' ' ')"
  # a checkpoint that fits the same filesystem passes the check and is written there
  Q --model "$G" --out "$mnt/q" && same_as "$mnt/q" "$tmp/ref" || bad "opt-tiny into the 2 MB tmpfs: $(cat "$tmp/q.log")"
  umount "$mnt"
fi

[ $fail = 0 ] && echo "test_quantize_safe: all passed"
exit $fail
