#!/usr/bin/env bash
# The NCCL transport's set-up against a rank that does not join (GPU-PLAN.md section 5, risk 4), on 2 ranks
# of test_gpu_nccl (one GPU shared by the hostid route, or a GPU each):
#   stall: rank 1 joins 30 s late (PP8_NCCL_TEST_STALL=1:30) and PP8_NCCL_TIMEOUT=3: rank 0's
#          non-blocking set-up gives up at its deadline, says so in one line, and the job ends (< 10 s);
#   kill:  rank 1 is SIGKILLed while rank 0 is inside its set-up (default deadline): every rank gone and
#          mpirun exited within 10 s of the kill, non-zero.
# Exits 77 (skipped) when test_gpu_nccl skips (no GPU, or NCCL refuses the route), never passes then.
set -u
: "${PP8_BUILD:?}"
BIN="$PP8_BUILD/tests/test_gpu_nccl"
[ -x "$BIN" ] || BIN="$PP8_BUILD/test_gpu_nccl"
[ -x "$BIN" ] || { echo "FAIL: no test_gpu_nccl under $PP8_BUILD"; exit 1; }
command -v setsid >/dev/null || { echo "FAIL: setsid not found (util-linux)"; exit 1; }
read -r -a MPI <<<"${PP8_MPIRUN:-mpirun --allow-run-as-root --oversubscribe --bind-to none}"
export PP8_NCCL_SHARED_GPU=${PP8_NCCL_SHARED_GPU:-hostid}
tmp=$(mktemp -d)
job=""
cleanup() {
  [ -n "$job" ] && for p in $(ps -e -o pid=,sid= | awk -v s="$job" '$2 == s { print $1 }'); do kill -9 "$p" 2>/dev/null; done
  rm -rf "$tmp"
}
trap cleanup EXIT
fail=0
now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }
bad() { echo "FAIL: $*"; fail=1; }
exited() { [ ! -e "/proc/$1" ] || [ "$(awk '{ print $3 }' "/proc/$1/stat" 2>/dev/null)" = Z ]; }
ranks_alive() { ps -e -o pid=,sid=,stat=,comm= | awk -v s="$1" '$2 == s && $3 !~ /^Z/ && $4 == "test_gpu_nccl"' | wc -l; }
# the pid of world rank $2 in session $1
rank_pid() {
  local p
  for p in $(ps -e -o pid=,sid=,comm= | awk -v s="$1" '$2 == s && $3 == "test_gpu_nccl" { print $1 }'); do
    tr '\0' '\n' <"/proc/$p/environ" 2>/dev/null | grep -qx "OMPI_COMM_WORLD_RANK=$2" && { echo "$p"; return; }
  done
}
# start NAME ENV...: the 2-rank job in a session of its own
start() {
  local name=$1; shift
  env "$@" setsid "${MPI[@]}" -np 2 "$BIN" >"$tmp/$name.out" 2>"$tmp/$name.err" </dev/null &
  job=$!
}
# wait (60 s at most) for rank 0's line before its set-up; 1 when the job ended first
wait_joining() {
  local i
  for i in $(seq 1 1200); do
    grep -q "rank 0: joining the NCCL communicator" "$tmp/$1.err" && return 0
    exited "$job" && return 1
    sleep 0.05
  done
  return 1
}
# after t0: the job gone within 10 s; sets rc and took
await_end() {
  local t0=$1 i
  took=""
  for i in $(seq 1 200); do
    exited "$job" && [ "$(ranks_alive "$job")" = 0 ] && { took=$(secs "$t0" "$(now)"); break; }
    sleep 0.05
  done
  [ -z "$took" ] && for p in $(ps -e -o pid=,sid= | awk -v s="$job" '$2 == s { print $1 }'); do kill -9 "$p" 2>/dev/null; done
  { wait "$job"; rc=$?; } 2>/dev/null
}
skipped() { grep -q "skipped\|^SKIP" "$tmp/$1.out" "$tmp/$1.err"; }

# ---- stall: the deadline
start stall PP8_NCCL_TIMEOUT=3 PP8_NCCL_TEST_STALL=1:30
if ! wait_joining stall; then
  await_end "$(now)"
  if [ "$rc" = 77 ] || skipped stall; then echo "SKIP: test_gpu_nccl skipped: $(cat "$tmp/stall.out" "$tmp/stall.err" | grep -m1 -i skip)"; exit 77; fi
  bad "stall: the job ended (rc $rc) before rank 0 joined"; sed 's/^/    /' "$tmp/stall.err" | tail -8; exit 1
fi
t0=$(now)
await_end "$t0"
if [ -z "$took" ]; then bad "stall: the job still ran 10 s after rank 0 began its set-up"
elif [ "$rc" = 0 ] || [ "$rc" = 77 ]; then bad "stall: exit $rc (want a failure)"
elif ! grep -q "ncclCommInitRankConfig timed out after 3 s" "$tmp/stall.err"; then bad "stall: no line about the deadline"; sed 's/^/    /' "$tmp/stall.err" | tail -8
else echo "ok: stall: rank 1 30 s late, PP8_NCCL_TIMEOUT=3: exit $rc in $took s: $(grep -m1 -o 'rank 0: ncclCommInitRankConfig timed out[^(]*' "$tmp/stall.err")"
fi

# ---- kill: rank 1 dies while rank 0 is inside its set-up
start kill PP8_NCCL_TEST_STALL=1:30
if ! wait_joining kill; then
  await_end "$(now)"; bad "kill: the job ended (rc $rc) before rank 0 joined"; exit 1
fi
sleep 1
victim=$(rank_pid "$job" 1)
[ -n "$victim" ] || { bad "kill: rank 1's pid not found"; exit 1; }
t0=$(now)
kill -9 "$victim"
await_end "$t0"
if [ -z "$took" ]; then bad "kill: ranks or mpirun still running 10 s after rank 1 was killed"
elif [ "$rc" = 0 ] || [ "$rc" = 77 ]; then bad "kill: exit $rc (want a failure)"
else echo "ok: kill: rank 1 SIGKILLed during rank 0's set-up: every rank gone, mpirun exit $rc in $took s"
fi
exit $fail
