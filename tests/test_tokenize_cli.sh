#!/usr/bin/env bash
# `pp8 tokenize` and `pp8 detokenize` from the command line, against Hugging Face's references in
# ../shared/golden/tokenizers/A: golden texts tokenized from --file and --text (with and without the
# post-processor's BOS), detokenized back byte for byte with --raw, skip-special, a run under mpirun
# with two ranks printing once, and bad input refused with exactly one "pp8 CMD: error:" line and a
# non-zero exit. Env (tests/CMakeLists.txt): PP8 (binary), PP8_GOLDEN, PP8_MPIRUN.
set -u
: "${PP8:?}" "${PP8_GOLDEN:?}"
G="$PP8_GOLDEN/tokenizers"
[ -d "$G/models" ] && [ -f "$G/A/bloom-5k.refs.tsv" ] || { echo "FAIL: golden tokenizer data missing: $G"; exit 1; }
read -r -a MPI <<<"${PP8_MPIRUN:-mpirun --allow-run-as-root --oversubscribe}"
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
fail=0; n=0

ok() { n=$((n + 1)); echo "ok: $1"; }
bad() { n=$((n + 1)); echo "FAIL: $1"; fail=1; }
unhex() { python3 -c 'import sys; sys.stdout.buffer.write(bytes.fromhex(sys.argv[1]))' "$1"; }

# ref TOK ID FIELD: a field of a golden reference line (3 text_hex, 4 ids, 5 ids_special)
ref() { awk -F'\t' -v id="$2" -v f="$3" '$1 == id { print $f }' "$G/A/$1.refs.tsv"; }

# golden texts through --file (NUL, CRLF, emoji, special-token literals, a long document) and back
for tok in bloom-5k opt-3k; do
  dir="$G/models/$tok"
  for id in A0002 A0005 A0029 $(awk -F'\t' '$2 == "control" || $2 == "emoji" || $2 == "long_ml" { print $1 }' \
                                "$G/A/$tok.refs.tsv" | head -4); do
    unhex "$(ref "$tok" "$id" 3)" >"$tmp/text"
    want=$(ref "$tok" "$id" 5 | tr ' ' ',')
    got=$("$PP8" tokenize --tokenizer "$dir" --file "$tmp/text" 2>"$tmp/err")
    [ "$got" = "$want" ] && ok "$tok $id tokenize --file" || { bad "$tok $id tokenize --file: got '${got:0:80}', want '${want:0:80}'"; cat "$tmp/err"; }
    want=$(ref "$tok" "$id" 4 | tr ' ' ',')
    got=$("$PP8" tokenize --tokenizer "$dir" --file "$tmp/text" --no-special)
    [ "$got" = "$want" ] && ok "$tok $id tokenize --no-special" || bad "$tok $id tokenize --no-special: got '${got:0:80}'"
    "$PP8" detokenize --tokenizer "$dir" --ids "$want" --raw >"$tmp/back"
    cmp -s "$tmp/text" "$tmp/back" && ok "$tok $id detokenize --raw is byte-exact" || bad "$tok $id detokenize --raw differs"
  done
done

# --text; the newline detokenize adds without --raw; skip-special (OPT's BOS </s> = 2 goes)
got=$("$PP8" tokenize --tokenizer "$G/models/bloom-5k" --text "Hello world")
[ "$got" = "43,336,403,322,276,1561" ] && ok "tokenize --text" || bad "tokenize --text: '$got'"
opt=$("$PP8" tokenize --tokenizer "$G/models/opt-3k" --text "Hello world")
[ "${opt%%,*}" = 2 ] && ok "OPT adds </s> in front by default" || bad "OPT BOS: '$opt'"
"$PP8" detokenize --tokenizer "$G/models/opt-3k" --ids "$opt" >"$tmp/out"
printf '</s>Hello world\n' | cmp -s - "$tmp/out" && ok "detokenize prints the text and a newline" || bad "detokenize: '$(cat "$tmp/out")'"
"$PP8" detokenize --tokenizer "$G/models/opt-3k" --ids "$opt" --skip-special --raw >"$tmp/out"
printf 'Hello world' | cmp -s - "$tmp/out" && ok "detokenize --skip-special" || bad "detokenize --skip-special: '$(cat "$tmp/out")'"
got=$("$PP8" detokenize --tokenizer "$G/models/bloom-5k" --ids "43,99999999,336" --raw)
[ "$got" = "Hel" ] && ok "ids without a token are dropped, as HF does" || bad "unknown ids: '$got'"
got=$("$PP8" tokenize --tokenizer "$G/models/bloom-5k" --text "")
[ -z "$got" ] && ok "an empty text is no ids" || bad "empty text: '$got'"
"$PP8" tokenize --help | grep -q -- "--no-special" && ok "tokenize --help" || bad "tokenize --help"
"$PP8" detokenize --help | grep -q -- "--raw" && ok "detokenize --help" || bad "detokenize --help"

# two ranks: the same ids, printed once
if [ -n "${MPI[0]:-}" ] && command -v "${MPI[0]}" >/dev/null; then
  got=$(timeout 60 "${MPI[@]}" -np 2 "$PP8" tokenize --tokenizer "$G/models/bloom-5k" --text "Hello world")
  [ "$got" = "43,336,403,322,276,1561" ] && ok "under mpirun -np 2: printed once" || bad "mpirun -np 2: '$got'"
fi

# bad input: exit non-zero, exactly one error line naming the thing (and, run alone, nothing else on
# stderr; mpirun adds its own report of the failed job)
strict=1
expect() {
  local name=$1 want=$2; shift 3
  n=$((n + 1))
  timeout 60 "$@" >"$tmp/out" 2>"$tmp/err"; local rc=$?
  local lines; lines=$(grep -c "^pp8 [a-z-]*: error: " "$tmp/err")
  if [ $rc -eq 0 ] || [ $rc -ge 124 ] || [ "$lines" -ne 1 ] || { [ $strict = 1 ] && [ "$(wc -l <"$tmp/err")" -ne 1 ]; } || ! grep -q -- "$want" "$tmp/err"; then
    echo "FAIL: $name: rc=$rc, $lines error line(s), want one containing '$want':"; sed 's/^/    /' "$tmp/err" | head -5
    fail=1
  else
    echo "ok: $name: $(grep "error: " "$tmp/err")"
  fi
}
mkdir "$tmp/empty"
printf 'ab\xffcd' >"$tmp/badutf8"
printf '{"model": {"type": "BPE", "vocab": {' >"$tmp/empty2.json"
mkdir "$tmp/trunc"; cp "$tmp/empty2.json" "$tmp/trunc/tokenizer.json"
expect "no --tokenizer" "--tokenizer DIR" -- "$PP8" tokenize --text hi
expect "no tokenizer files" "looked for tokenizer.json" -- "$PP8" tokenize --tokenizer "$tmp/empty" --text hi
expect "missing directory" "/nonexistent/dir" -- "$PP8" detokenize --tokenizer /nonexistent/dir --ids 1
expect "truncated tokenizer.json" "tokenizer.json: malformed JSON" -- "$PP8" tokenize --tokenizer "$tmp/trunc" --text hi
expect "invalid UTF-8 in --file" "byte offset 2" -- "$PP8" tokenize --tokenizer "$G/models/bloom-5k" --file "$tmp/badutf8"
expect "invalid UTF-8 in --text" "--text: the text is not valid UTF-8" -- "$PP8" tokenize --tokenizer "$G/models/opt-3k" \
  --text "$(printf 'x\xc3')"
expect "missing --file" "/nonexistent/f.txt" -- "$PP8" tokenize --tokenizer "$G/models/bloom-5k" --file /nonexistent/f.txt
expect "both --text and --file" "exactly one" -- "$PP8" tokenize --tokenizer "$G/models/bloom-5k" --text a --file "$tmp/badutf8"
expect "unknown option" "--bogus" -- "$PP8" tokenize --tokenizer "$G/models/bloom-5k" --text a --bogus
expect "--ids not numbers" "--ids" -- "$PP8" detokenize --tokenizer "$G/models/bloom-5k" --ids 1,x,3
expect "--ids negative" "--ids" -- "$PP8" detokenize --tokenizer "$G/models/bloom-5k" --ids 1,-2
expect "no --ids" "--ids is required" -- "$PP8" detokenize --tokenizer "$G/models/bloom-5k"
if [ -n "${MPI[0]:-}" ] && command -v "${MPI[0]}" >/dev/null; then
  strict=0
  expect "two ranks, no tokenizer files" "looked for" -- "${MPI[@]}" -np 2 "$PP8" tokenize --tokenizer "$tmp/empty" --text hi
fi

echo "$((n - fail)) checks, $([ $fail = 0 ] && echo "all passed" || echo "some FAILED")"
exit $fail
