#!/usr/bin/env bash
# pp8 serve end to end (tests/test_serve.py says what it checks): a real client (the official `openai`
# Python package) and curl against `pp8 serve` over 2 ranks; served alone = pp8 generate / pp8 logits;
# 64 concurrent streams against their solo runs; clients that hang up; 1,000 hostile requests; SIGKILL
# of a rank; SIGTERM drains; --api-key; --max-queue.
# Needs PyPI once: the venv ($PP8_BUILD/serve-venv) is made and `openai` installed on the first run and
# reused after. If that fails the test FAILS (it never skips: without the real client it tests nothing).
set -u
: "${PP8:?}" "${PP8_GOLDEN:?}" "${PP8_SRC:?}" "${PP8_BUILD:?}"
[ -x "$PP8" ] || { echo "FAIL: no pp8 binary at $PP8"; exit 1; }
[ -d "$PP8_GOLDEN/textgen/gen-bloom" ] && [ -d "$PP8_GOLDEN/textgen/gen-opt" ] ||
  { echo "FAIL: golden data missing: $PP8_GOLDEN/textgen/gen-{bloom,opt}"; exit 1; }
command -v curl >/dev/null || { echo "FAIL: curl not found (apt-get install curl)"; exit 1; }
export PP8_MPIRUN="${PP8_MPIRUN:-mpirun --allow-run-as-root --oversubscribe --bind-to none}"

venv="$PP8_BUILD/serve-venv"
if ! "$venv/bin/python" -c "import openai" 2>/dev/null; then
  rm -rf "$venv"
  python3 -m venv "$venv" || { echo "FAIL: python3 -m venv $venv failed (Debian: apt-get install python3-venv)"; exit 1; }
  "$venv/bin/python" -m pip install -q openai ||
    { echo "FAIL: pip install openai failed (PyPI unreachable?): this test needs the official client"; rm -rf "$venv"; exit 1; }
fi
echo "openai $("$venv/bin/python" -c 'import openai; print(openai.__version__)') in $venv"

tmp=$(mktemp -d)
export PP8_SERVE_SIDS="$tmp/sids" # each server's session id, written by test_serve.py as it starts them
py=""
cleanup() {
  [ -n "$py" ] && kill "$py" 2>/dev/null
  # every process of the sessions the test started (mpirun, pp8run and the ranks), and nothing else
  if [ -s "$tmp/sids" ]; then
    while read -r sid; do
      ps -e -o pid=,sid= | awk -v s="$sid" '$2 == s { print $1 }' | while read -r pid; do kill -9 "$pid" 2>/dev/null; done
    done <"$tmp/sids"
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'echo "FAIL: test_serve.sh interrupted"; exit 1' INT TERM
"$venv/bin/python" -u "$PP8_SRC/tests/test_serve.py" --tmp "$tmp" &
py=$!
wait "$py"
rc=$?
py=""
exit $rc
