# Sourced by the bad-input tests (test_cli_errors.sh, test_text_errors.sh). Needs $tmp; counts in $n,
# sets fail=1 on a failed case.
# expect NAME WANT_SUBSTRING -- command...: the command must exit non-zero (not by a signal, not by
# timing out after 60 s) with exactly one "pp8 CMD: error: ..." line on stderr, containing WANT.
expect() {
  local name=$1 want=$2; shift 3
  n=$((n + 1))
  timeout 60 "$@" >"$tmp/out" 2>"$tmp/err"; local rc=$?
  local lines; lines=$(grep -c "^pp8 [a-z-]*: error: " "$tmp/err")
  if [ $rc -eq 0 ] || [ $rc -eq 124 ] || [ $rc -ge 128 ] || [ "$lines" -ne 1 ] || ! grep -q -- "$want" "$tmp/err"; then
    echo "FAIL: $name: rc=$rc, $lines error line(s), want one containing '$want':"; sed 's/^/    /' "$tmp/err" | head -8
    fail=1
  else
    echo "ok: $name: $(grep "error: " "$tmp/err")"
  fi
}
