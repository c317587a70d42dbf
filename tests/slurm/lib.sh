# shellcheck shell=bash
# Shared helpers of the SLURM tests (tests/slurm/test_*.sh); sourced, not run.
#
# Each test: bash tests/slurm/test_X.sh RNNTRAIN_BINARY [REPO_ROOT]
#   brings up its own throwaway cluster (scripts/slurm-cluster.sh) in a work directory
#   under /var/tmp (outside /tmp: namespace nodes have a /tmp of their own), runs the job
#   scripts of slurm/ on a small corpus, and tears everything down on every exit path,
#   then checks that none of the daemons it started is left. Every client call and every
#   wait is bounded. Exit 0 pass, 1 fail, 77 skip (no SLURM/munge installed, not root).
# Environment: KEEP_WORK=1 keeps the work directory (default: removed; on failure the job
# logs and daemon log tails are printed first).

set -euo pipefail

T0=$SECONDS
TEST_NAME=$(basename -- "$0" .sh)
log() { echo "[$TEST_NAME $(date +%T) +$((SECONDS - T0))s] $*"; }
fail() { log "FAIL: $*"; exit 1; }
skip() { log "SKIP: $*"; exit 77; }

[ $# -ge 1 ] || { echo "usage: $0 RNNTRAIN_BINARY [REPO_ROOT]" >&2; exit 2; }
BIN_SRC=$1
REPO=${2:-$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/../.." && pwd -P)}
CLUSTER="$REPO/scripts/slurm-cluster.sh"
JOB1="$REPO/slurm/train-single-node.sbatch"
JOBN="$REPO/slurm/train-multi-node.sbatch"

[ "$(id -u)" -eq 0 ] || skip "needs root (munged runs as user munge, slurmd as root)"
for c in munged slurmctld slurmd sbatch squeue scontrol srun; do
  command -v "$c" >/dev/null 2>&1 || skip "$c not installed (apt-get install slurmctld slurmd slurm-client munge)"
done
id munge >/dev/null 2>&1 || skip "no user munge"
[ -x "$BIN_SRC" ] || fail "no trainer binary at $BIN_SRC"
for f in "$CLUSTER" "$JOB1" "$JOBN"; do [ -f "$f" ] || fail "missing $f"; done

WORK=$(mktemp -d /var/tmp/rnntrain-slurm-test.XXXXXX)
chmod 0755 "$WORK"
CDIR="$WORK/cluster"
# A private copy of the trainer: the build directory may be rebuilt while we run, and
# namespace nodes must be able to see it.
BIN="$WORK/rnntrain"
cp -- "$BIN_SRC" "$BIN"
STOPPED_PIDS=()

on_exit() {
  local rc=$?
  trap - EXIT INT TERM
  set +e
  [ -z "${WATCHDOG:-}" ] || kill "$WATCHDOG" 2>/dev/null
  # Never leave a process stopped behind.
  [ ${#STOPPED_PIDS[@]} -eq 0 ] || kill -CONT "${STOPPED_PIDS[@]}" 2>/dev/null
  if [ $rc -ne 0 ] && [ $rc -ne 77 ]; then
    local f
    for f in "$WORK"/*.out; do
      [ -f "$f" ] || continue
      echo "----- $f (last 40 lines)"; tail -n 40 "$f"
    done
    for f in "$CDIR/ctld/slurmctld.log" "$CDIR"/nodes/*/slurmd.log; do
      [ -f "$f" ] || continue
      echo "----- $f (last 15 lines)"; tail -n 15 "$f"
    done
  fi
  local pids=""
  if [ -f "$CDIR/cluster.env" ]; then
    pids=$(cat "$CDIR/munge/munged.pid" "$CDIR/ctld/slurmctld.pid" "$CDIR"/nodes/*/slurmd.pid 2>/dev/null | tr -dc '0-9\n' | tr '\n' ' ')
    log "tearing the cluster down"
    local td=$SECONDS
    timeout -k 5 120 "$CLUSTER" down --dir "$CDIR" || { log "FAIL: cluster teardown reported an error"; rc=1; }
    log "cluster down in $((SECONDS - td)) s"
  fi
  # Nothing we started may be left: the recorded daemons, slurmstepd of this cluster,
  # processes in its namespaces.
  local p left="" try comm
  for ((try = 0; try < 25; try++)); do
    left=""
    for p in $pids; do
      if [ -r "/proc/$p/stat" ] && ! grep -qE '\) [ZX] ' "/proc/$p/stat" 2>/dev/null; then left+=" $p"; fi
    done
    for p in /proc/[0-9]*; do
      comm=
      { read -r comm <"$p/comm"; } 2>/dev/null || continue
      [ "$comm" = slurmstepd ] || continue
      case "$(readlink "$p/cwd" 2>/dev/null)/" in "$CDIR"/*) left+=" ${p#/proc/}(slurmstepd)" ;; esac
    done
    [ -n "$left" ] || break
    sleep 0.2
  done
  if [ -n "$left" ]; then log "FAIL: still running after teardown:$left"; rc=1; fi
  if [ -n "$(ip netns list 2>/dev/null | grep -F "rnnslurm-${CLUSTER_ID:-none}-" || true)" ]; then
    log "FAIL: namespaces left: $(ip netns list | grep -F "rnnslurm-$CLUSTER_ID-" | tr '\n' ' ')"; rc=1
  fi
  if [ "${KEEP_WORK:-0}" = 1 ]; then log "work directory kept: $WORK"; else rm -rf -- "$WORK"; fi
  [ $rc -eq 0 ] && log "PASS in $((SECONDS - T0)) s"
  exit $rc
}
trap on_exit EXIT
trap 'log "interrupted"; exit 130' INT
trap 'log "terminated (time limit of the test: ${TEST_LIMIT}s)"; exit 124' TERM
# A watchdog below ctest's TIMEOUT: ctest kills a test that overruns without letting it
# clean up, and daemons (which leave our process group) would outlive it.
TEST_LIMIT=${TEST_LIMIT:-240}
(
  trap 'kill "$s" 2>/dev/null; exit 0' TERM
  sleep "$TEST_LIMIT" & s=$!
  wait "$s" && kill -TERM $$ 2>/dev/null
) >/dev/null 2>&1 &
WATCHDOG=$!

# Loopback-only settings of the ctest environment would stop Open MPI from talking across
# namespace nodes; the job scripts choose their own binding.
unset OMPI_MCA_btl_tcp_if_include OMPI_MCA_oob_tcp_if_include OMPI_MCA_hwloc_base_binding_policy

cluster_up() {
  timeout -k 5 90 "$CLUSTER" up --dir "$CDIR" "$@" || fail "cluster did not come up"
  CLUSTER_ID=$(sed -n 's/^C_ID=//p' "$CDIR/cluster.env")
}
# sl CMD...: a SLURM client against the test cluster, bounded.
sl() { timeout -k 5 30 "$CLUSTER" exec --dir "$CDIR" -- "$@"; }

# job_field JOB FIELD: one field of `scontrol show job` (JobState, Restarts, ExitCode, ...).
job_field() {
  sl scontrol -o show job "$1" 2>/dev/null | tr ' ' '\n' | sed -n "s/^$2=//p" | head -n 1
}
job_state() { job_field "$1" JobState; }
# restarts_at_least JOB N: SLURM has restarted (requeued) JOB at least N times.
restarts_at_least() { local r; r=$(job_field "$1" Restarts); [[ "$r" =~ ^[0-9]+$ ]] && [ "$r" -ge "$2" ]; }

# wait_until SECONDS DESCRIPTION CMD...: poll CMD every 0.2 s until it succeeds.
wait_until() {
  local limit=$1 what=$2; shift 2
  local end=$((SECONDS + limit))
  until "$@"; do
    [ $SECONDS -lt $end ] || fail "timed out after ${limit} s waiting for: $what"
    sleep 0.2
  done
}
state_is() { local s; s=$(job_state "$1"); [[ "$s" =~ ^($2)$ ]]; }
file_has() { [ -f "$1" ] && grep -qE -- "$2" "$1"; }

# stepd_gone JOB: no slurmstepd of JOB's previous run is left on this machine. A requeued
# job released while one still tears down collides with it (its PMIx socket, its revoked
# credential): SLURM's own ~2 min hold of a requeued job avoids that; the tests, which
# release at once, wait for this instead (and one more second).
stepd_gone() {
  local p comm args
  for p in /proc/[0-9]*; do
    { read -r comm <"$p/comm"; } 2>/dev/null || continue
    [ "$comm" = slurmstepd ] || continue
    args=
    { mapfile -d '' -t args <"$p/cmdline"; } 2>/dev/null || continue
    case "${args[*]}" in *"[$1."*) return 1 ;; esac
  done
  return 0
}
# release_now JOB: let the held (requeued) JOB start now, once its old steps are gone.
release_now() {
  wait_until 60 "the old steps of job $1 to end" stepd_gone "$1"
  sleep 1
  sl scontrol update JobId="$1" StartTime=now >/dev/null 2>&1 || true
}

# wait_done JOB SECONDS: wait until JOB has ended, releasing it whenever it sits requeued
# and held (a requeued job waits ~2 min for its BeginTime otherwise). Echoes the final state.
wait_done() {
  local j=$1 end=$((SECONDS + $2)) s reason
  while :; do
    s=$(job_state "$j")
    case "$s" in
      COMPLETED|FAILED|CANCELLED|TIMEOUT|NODE_FAIL|OUT_OF_MEMORY|BOOT_FAIL|DEADLINE|PREEMPTED)
        echo "$s"; return 0 ;;
      PENDING)
        reason=$(job_field "$j" Reason)
        [ "$reason" != BeginTime ] || release_now "$j" ;;
    esac
    [ $SECONDS -lt $end ] || fail "job $j not done after $2 s (state $s)"
    sleep 0.3
  done
}

# release JOB: once the requeued JOB is PENDING, let it start now.
release() {
  wait_until 60 "job $1 pending again" state_is "$1" PENDING
  release_now "$1"
}

# submit SCRIPT OUTFILE [sbatch options...] -- [script arguments]: echo the job id.
# Settings for the job script come from the environment (sbatch exports it).
submit() {
  local script=$1 out=$2; shift 2
  local opts=() id
  while [ $# -gt 0 ] && [ "$1" != -- ]; do opts+=("$1"); shift; done
  [ $# -gt 0 ] && shift
  id=$(cd "$WORK" && sl sbatch --parsable -o "$out" "${opts[@]}" "$script" "$@") \
    || fail "sbatch $script failed"
  echo "${id%%;*}"
}

# The small corpus: the first 300 KB of Moby-Dick.
prepare_data() {
  head -c 300000 "$REPO/datasets/moby-dick.txt" >"$WORK/small.txt"
  timeout -k 5 60 "$BIN" prepare --input "$WORK/small.txt" --output "$WORK/small.h5" >/dev/null \
    || fail "rnntrain prepare failed"
}

# Small model settings the job scripts read (exported, so sbatch passes them on).
small_model() {
  export RNNTRAIN="$BIN" DATA="$WORK/small.h5" MODEL=lstm LAYERS=1 HIDDEN=32 BATCH=4 BPTT=16
  export STEPS=${1:-600} CKPT_EVERY=${2:-100} CKPT_MINUTES=0 EVAL_EVERY=300 PRINT_EVERY=10 KEEP=3
  export THREADS=1 OPENBLAS_NUM_THREADS=1
}

# job_pids JOB [NETNS]: PIDs of the job's rnntrain ranks on this machine (optionally only
# those in network namespace NETNS). Reads /proc with builtins: no fork per process.
job_pids() {
  local j=$1 ns_ino="" p pid comm e envs
  [ $# -ge 2 ] && ns_ino=$(stat -L -c 'net:[%i]' "/run/netns/$2")
  for p in /proc/[0-9]*; do
    pid=${p#/proc/}
    comm=
    { read -r comm <"$p/comm"; } 2>/dev/null || continue
    [ "$comm" = rnntrain ] || continue
    envs=()
    { mapfile -d '' -t envs <"$p/environ"; } 2>/dev/null || continue
    for e in "${envs[@]}"; do
      if [ "$e" = "SLURM_JOB_ID=$j" ] || [ "$e" = "SLURM_JOBID=$j" ]; then
        if [ -z "$ns_ino" ] || [ "$(readlink "$p/ns/net" 2>/dev/null)" = "$ns_ino" ]; then echo "$pid"; fi
        break
      fi
    done
  done
}

# stop_job_ranks JOB N: SIGSTOP the job's N ranks (so that a signal surely finds the run in
# the middle of its steps, however fast the machine). Remembered for the final SIGCONT.
stop_job_ranks() {
  local pids=() t
  for ((t = 0; t < 100; t++)); do
    mapfile -t pids < <(job_pids "$1")
    [ ${#pids[@]} -ge "$2" ] && break
    sleep 0.1
  done
  [ ${#pids[@]} -ge "$2" ] || fail "found ${#pids[@]} ranks of job $1, expected $2"
  kill -STOP "${pids[@]}"
  STOPPED_PIDS+=("${pids[@]}")
  log "stopped ranks of job $1: ${pids[*]}"
}
cont_ranks() {
  [ ${#STOPPED_PIDS[@]} -eq 0 ] || kill -CONT "${STOPPED_PIDS[@]}" 2>/dev/null || true
  STOPPED_PIDS=()
}

# last_train_step METRICS: the highest step of a train line so far (0 if none).
last_train_step() {
  [ -f "$1" ] || { echo 0; return; }
  sed -n 's/^{"kind": "train", "step": \([0-9]*\),.*/\1/p' "$1" | tail -n 1 | grep . || echo 0
}
step_at_least() { [ "$(last_train_step "$1")" -ge "$2" ]; }
# final_valid OUT: nats of the last validation line.
final_valid() { sed -n 's/^{"kind": "valid".*"nats": \([^,]*\),.*/\1/p' "$1/metrics.jsonl" | tail -n 1; }

# same_model OUT_A OUT_B: bitwise equal parameters and final validation loss within 1e-6.
same_model() {
  local a b
  [ -f "$1/model.h5" ] || fail "no model in $1"
  [ -f "$2/model.h5" ] || fail "no model in $2"
  a=$(final_valid "$1"); b=$(final_valid "$2")
  [ -n "$a" ] && [ -n "$b" ] || fail "no validation loss in $1 or $2"
  awk -v a="$a" -v b="$b" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(d <= 1e-6) }' \
    || fail "final validation loss differs: $a ($1) vs $b ($2)"
  h5diff -q "$1/model.h5" "$2/model.h5" /params /params >/dev/null \
    || fail "parameters differ between $1/model.h5 and $2/model.h5 (h5diff)"
  log "same final parameters (bitwise) and validation loss ($a) in $(basename "$1") and $(basename "$2")"
}

# same_losses OUT_A OUT_B [STEP...]: the loss at every logged train step and the loss of
# every validation, by step, within 1e-6. The last value logged for a step counts (a resumed
# run logs the steps after its checkpoint again). A train line's loss is the mean since the
# previous line, so the first line after a resume that did not start on a line boundary
# averages fewer steps: pass those STEPs to leave them out.
losses() {
  sed -n -e 's/^{"kind": "train", "step": \([0-9]*\),.*"loss": \([^,]*\),.*/train \1 \2/p' \
         -e 's/^{"kind": "valid", "step": \([0-9]*\),.*"nats": \([^,]*\),.*/valid \1 \2/p' "$1/metrics.jsonl" \
    | awk '{ s[$1 " " $2] = $3 } END { for (k in s) print k, s[k] }' | sort -k1,1 -k2n
}
same_losses() {
  local a=$1 b=$2; shift 2
  local la lb n
  la=$(losses "$a"); lb=$(losses "$b")
  [ -n "$la" ] || fail "no losses logged in $a"
  awk -v skip=" $* " '
       NR == FNR { if (index(skip, " " $2 " ") && $1 == "train") next; v[$1 " " $2] = $3; n++; next }
       { if (index(skip, " " $2 " ") && $1 == "train") next
         m++; k = $1 " " $2
         if (!(k in v)) { print k " missing"; bad = 1; next }
         d = v[k] - $3; if (d < 0) d = -d; if (d > 1e-6) { print k ": " v[k] " vs " $3; bad = 1 } }
       END { if (n != m) { print n " vs " m " logged losses"; bad = 1 }; exit bad }' \
       <(echo "$la") <(echo "$lb") || fail "losses differ between $a and $b"
  n=$(echo "$la" | wc -l)
  log "same losses at all $n logged train/valid steps${*:+ (except the train line at $*)} in $(basename "$a") and $(basename "$b")"
}
# partial_after STEP: the train line that a stop at STEP and the resume from it affect: the
# first line after STEP, which averages fewer steps; or, when STEP is on a line boundary,
# STEP's own line, which the stopping run does not write (it stops before logging).
partial_after() {
  if [ $(($1 % PRINT_EVERY)) -eq 0 ]; then echo "$1"; else echo $(( ($1 / PRINT_EVERY + 1) * PRINT_EVERY )); fi
}
