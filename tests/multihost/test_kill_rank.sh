#!/usr/bin/env bash
# SIGKILL of one rank ends the whole job quickly, with a failure, leaving nothing behind.
#
# Usage: test_kill_rank.sh RNNTRAIN_BIN REPO_ROOT     (ctest: multihost_kill_rank)
# Needs root and `ip netns` (exit 77 = skipped when not permitted). About 15 s.
#
# Three cases, each a long 2-rank training (a million steps) killed once it is under way:
#   local     mpirun -np 2 on this host (shared memory), SIGKILL rank 1
#   2 hosts   mpirun across 2 namespace hosts over TCP, SIGKILL rank 1 (on the remote host,
#             under its orted)
#   2 hosts   the same, SIGKILL rank 0 (on mpirun's host)
# Each must end within 10 s of the kill with a non-zero exit status, and afterwards no
# process of the job (rnntrain, orted, rsh agent) may be left, in any namespace.
set -euo pipefail
BIN=${1:?usage: test_kill_rank.sh RNNTRAIN_BIN REPO_ROOT}
REPO=${2:?usage: test_kill_rank.sh RNNTRAIN_BIN REPO_ROOT}
# shellcheck source=lib.sh
. "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"

LIMIT=10  # seconds from the kill to the end of the job

mh_hosts_up 2
mh_prepare_data
args=(train --data "$WORK/data.h5" --model lstm --layers 1 --hidden 32 --batch 8 --bptt 16
      --steps 1000000 --print-every 1)

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }'; }

# kill_case NAME VICTIM_RANK LAUNCHER...: run the training under LAUNCHER, SIGKILL one rank.
kill_case() {
  local name=$1 victim=$2; shift 2
  local out="$WORK/$name" log="$WORK/$name.log"
  mkdir -p "$out"
  timeout -k 10 120 "$@" "$BIN" "${args[@]}" --out "$out" >"$log" 2>&1 &
  local job=$!
  # wait until both ranks are training (2 steps logged: MPI is up, gradients are summed), at most 30 s
  local t0=$SECONDS
  local n=0
  while [ "$n" -lt 2 ]; do
    kill -0 "$job" 2>/dev/null || { cat "$log"; mh_fail "$name: the job ended before the kill"; }
    [ $((SECONDS - t0)) -lt 30 ] || { kill "$job" 2>/dev/null; cat "$log"; mh_fail "$name: no training progress within 30 s"; }
    sleep 0.1
    n=$(grep -c '"kind": "train"' "$out/metrics.jsonl" 2>/dev/null || true)
    n=${n:-0}
  done
  local pids p target=""
  pids=$(mh_rank_pids)
  [ "$(echo "$pids" | wc -w)" -eq 2 ] || mh_fail "$name: expected 2 rnntrain processes, found '$pids'"
  for p in $pids; do [ "$(mh_rank_of "$p")" = "$victim" ] && target=$p; done
  [ -n "$target" ] || mh_fail "$name: no process of rank $victim among $pids"
  local tk
  tk=$(now)
  kill -KILL "$target"
  # the job must end within LIMIT seconds
  while kill -0 "$job" 2>/dev/null; do
    if awk -v e="$(elapsed "$tk")" -v l="$LIMIT" 'BEGIN { exit !(e > l) }'; then
      kill "$job" 2>/dev/null || true
      wait "$job" 2>/dev/null || true
      cat "$log"
      mh_fail "$name: the job was still running $LIMIT s after SIGKILL of rank $victim"
    fi
    sleep 0.05
  done
  local rc=0
  wait "$job" || rc=$?
  local took
  took=$(elapsed "$tk")
  [ "$rc" -ne 0 ] || { cat "$log"; mh_fail "$name: the job exited 0 after a rank was killed"; }
  # nothing of the job may remain (zombies awaiting PID 1 are not running: ignored)
  local left=""
  while :; do
    left=$(mh_job_pids)
    [ -z "$left" ] && break
    if awk -v e="$(elapsed "$tk")" -v l="$LIMIT" 'BEGIN { exit !(e > l) }'; then
      ps -o pid,stat,args -p "$(echo $left | tr ' ' ',')" || true
      mh_fail "$name: processes of the job remain $LIMIT s after the kill: $left"
    fi
    sleep 0.05
  done
  local steps_done
  steps_done=$(grep -c '"kind": "train"' "$out/metrics.jsonl" || true)
  mh_log "$name: SIGKILL rank $victim (pid $target) after $steps_done steps -> job ended in $took s, exit $rc; no process left"
}

kill_case local 1 mpirun -np 2 --mca btl self,vader --bind-to none
kill_case hosts-remote 1 "$NETNS_STATE/mpirun.sh" -np 2
kill_case hosts-local 0 "$NETNS_STATE/mpirun.sh" -np 2
mh_log "PASS"
