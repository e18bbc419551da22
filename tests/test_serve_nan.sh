#!/usr/bin/env bash
# pp8 serve with a sequence whose logits turn NaN: that sequence ends with finish_reason "error", the
# others and the server go on (tests/test_serve_nan.py).
set -u
: "${PP8:?}" "${PP8_GOLDEN:?}" "${PP8_SRC:?}"
[ -d "$PP8_GOLDEN/textgen/gen-opt" ] || { echo "FAIL: golden data missing: $PP8_GOLDEN/textgen/gen-opt"; exit 1; }
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
python3 "$PP8_SRC/tests/test_serve_nan.py" "$PP8" "$PP8_GOLDEN" "$tmp" "${PP8_MPIRUN:-mpirun --allow-run-as-root --oversubscribe}"
