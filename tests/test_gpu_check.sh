#!/usr/bin/env bash
# launch/gpu-check.sh and launch/gpu-kit.sh without a GPU (issue 15's prepared check; the GPU run itself is
# the device's): both parse, --help tells the phases, an unknown phase is refused (exit 2) before anything
# runs, and on a machine with no GPU (nvidia-smi failing, here forced with a stand-in on PATH so the test
# means the same on a GPU machine) the build phase fails with its rc, JSON and summary line written, no
# build directory made, and a later phase asked alone is not attempted without a pp8 binary.
set -u
: "${PP8_SRC:?}"
fail=0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
bad() { echo "FAIL: $*"; fail=1; }
gc=$PP8_SRC/launch/gpu-check.sh

bash -n "$gc" || bad "gpu-check.sh does not parse"
bash -n "$PP8_SRC/launch/gpu-kit.sh" || bad "gpu-kit.sh does not parse"
h=$(bash "$gc" --help) || bad "--help exits non-zero"
for p in build kernels bench peer nccl; do grep -q "^  $p " <<<"$h" || bad "--help does not describe phase $p"; done
bash "$PP8_SRC/launch/gpu-kit.sh" --help | grep -q "apt-get download" || bad "gpu-kit.sh --help"

bash "$gc" "$tmp/o1" build nosuch 2>"$tmp/e1"; rc=$?
[ $rc = 2 ] || bad "unknown phase: exit $rc, want 2"
grep -q "unknown phase 'nosuch'" "$tmp/e1" || bad "unknown phase not named: $(cat "$tmp/e1")"
[ ! -e "$tmp/o1/summary.txt" ] || bad "a refused run wrote results"

mkdir -p "$tmp/bin"
printf '#!/bin/sh\necho "NVIDIA-SMI has failed (test stand-in)" >&2\nexit 9\n' > "$tmp/bin/nvidia-smi"
chmod +x "$tmp/bin/nvidia-smi"
before=$(ls -d "$PP8_SRC"/build-gpu 2>/dev/null)
PATH=$tmp/bin:$PATH PP8_GPU_KIT=$tmp/nokit bash "$gc" "$tmp/o2" bench 2>"$tmp/e2"; rc=$?
[ $rc != 0 ] || bad "no GPU: exit 0"
if command -v mpirun >/dev/null; then
  [ -f "$tmp/o2/build.json" ] || bad "no build.json: $(tail -3 "$tmp/e2")"
  python3 - "$tmp/o2/build.json" <<'PY' || bad "build.json: $(cat "$tmp/o2/build.json" 2>/dev/null)"
import json, sys
d = json.load(open(sys.argv[1]))
assert d["phase"] == "build" and d["rc"] != 0 and "no GPU" in d["summary"] and d["cap_s"] > 0, d
PY
  grep -q "^build: rc [1-9].*no GPU" "$tmp/o2/summary.txt" || bad "summary line: $(cat "$tmp/o2/summary.txt" 2>/dev/null)"
  ! ls "$tmp"/o2/bench*.json >/dev/null 2>&1 || bad "the bench phase ran without a pp8 binary"
  grep -q "the other phases cannot run" "$tmp/e2" || bad "no word on the skipped phases: $(tail -3 "$tmp/e2")"
else
  # no Open MPI here: the kit is needed and missing, and setup must say so
  grep -q "run launch/gpu-kit.sh" "$tmp/e2" || bad "missing kit not explained: $(tail -3 "$tmp/e2")"
fi
[ "$(ls -d "$PP8_SRC"/build-gpu 2>/dev/null)" = "$before" ] || bad "a failed build phase made build-gpu/"

[ $fail = 0 ] && echo "gpu-check.sh: all checks passed"
exit $fail
