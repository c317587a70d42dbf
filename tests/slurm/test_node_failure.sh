#!/usr/bin/env bash
# SLURM test 5: a real node failure. A cluster of 2 namespace nodes with a short
# SlurmdTimeout (10 s), KillWait 10 s.
#   a. reference: slurm/train-single-node.sbatch, 2 ranks on ONE node;
#   b. the same job over 2 nodes x 1 rank (srun --mpi=pmix), with --watchdog 5 passed through
#      the script's extra arguments. Mid-run node2 dies: its slurmd, its slurmstepd and its
#      rank are SIGKILLed at once (scripts/slurm-cluster.sh node-kill). Asserted: the
#      surviving rank on node1 exits within 30 s (its watchdog names the silent rank), the
#      job leaves RUNNING within 90 s, SLURM sets node2 DOWN within 90 s; the log says what
#      happened (states and times, exit codes, who requeued the job);
#   c. node2 comes back (slurm-cluster.sh node-start; `scontrol update state=resume` if it is
#      still DOWN); the job, requeued (by the script's exit-76 requeue, by SLURM's requeue
#      after a node failure, or here by `scontrol requeue` if neither did) and held until
#      slurmctld has delivered what it still had for node2 (see below), resumes from its
#      last checkpoint and completes with bitwise the reference's parameters and losses.
# Usage: bash tests/slurm/test_node_failure.sh RNNTRAIN_BINARY [REPO_ROOT]
. "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"
command -v ip >/dev/null 2>&1 && command -v nsenter >/dev/null 2>&1 && command -v unshare >/dev/null 2>&1 \
  || skip "needs ip (iproute2), nsenter and unshare"

RANK_BOUND=${NF_RANK_BOUND:-30} # s from the node's death until the surviving rank has exited
JOB_BOUND=90  # s until the job is no longer RUNNING, and until SLURM has set node2 DOWN
# For experiments: the trainer's --watchdog and SLURM's SlurmdTimeout (which of the two ends
# the job first decides who requeues it: the script after exit 76, or SLURM).
WATCHDOG_S=${NF_WATCHDOG:-5}
SLURMD_TIMEOUT=${NF_SLURMD_TIMEOUT:-10}

cluster_up --nodes 2 --cpus 2 --kill-wait 10 --slurmd-timeout "$SLURMD_TIMEOUT"
prepare_data
small_model 2400 100 # long enough that node2 dies mid-run, not after the end
export MPI_BIND=none CPU_BIND=none

export OUT="$WORK/one"
ref=$(submit "$JOB1" one.out --time=5 --nodes=1 --ntasks-per-node=2 -- --watchdog "$WATCHDOG_S")
[ "$(wait_done "$ref" 150)" = COMPLETED ] || fail "single-node job $ref ended $(job_state "$ref")"
log "a. single-node reference job $ref completed on $(job_field "$ref" NodeList)"

node_state() { sl sinfo -h -N -n "$1" -o %T 2>/dev/null | head -n 1; }
ms() { local t; t=$(date +%s%N); echo $((t / 1000000)); }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", (b - a) / 1000 }'; }
alive() { [ -r "/proc/$1/stat" ] && ! grep -qE '\) [ZX] ' "/proc/$1/stat" 2>/dev/null; }

export OUT="$WORK/lost"
j=$(submit "$JOB1" lost.out --time=5 --nodes=2 --ntasks-per-node=1 -- --watchdog "$WATCHDOG_S")
wait_until 120 "job $j at step 150" step_at_least "$OUT/metrics.jsonl" 150
[ "$(job_field "$j" NodeList)" = "node[1-2]" ] || fail "job $j runs on $(job_field "$j" NodeList)"
# Stop both ranks so that the node surely dies in the middle of the run.
stop_job_ranks "$j" 2
mapfile -t r1 < <(job_pids "$j" "rnnslurm-$CLUSTER_ID-node1")
mapfile -t r2 < <(job_pids "$j" "rnnslurm-$CLUSTER_ID-node2")
[ ${#r1[@]} -eq 1 ] && [ ${#r2[@]} -eq 1 ] || fail "expected one rank of job $j on each node: node1 ${r1[*]:-none}, node2 ${r2[*]:-none}"
step=$(last_train_step "$OUT/metrics.jsonl")
log "b. job $j at step $step: node2 dies (SIGKILL to its slurmd, its slurmstepd and its rank ${r2[0]}, at once)"
t0=$(ms)
timeout -k 5 30 "$CLUSTER" node-kill --dir "$CDIR" node2 2>&1 | sed "s/^/   /" \
  || fail "slurm-cluster.sh node-kill node2 failed"
! alive "${r2[0]}" || fail "node2's rank ${r2[0]} survived node-kill"
cont_ranks # node1's rank runs on, into the next all-reduce with the dead rank

# Watch the surviving rank, the job and node2 until all three have settled.
rank_t='' job_t='' node_t='' pjs='' pns=''
while :; do
  now=$(ms); el=$((now - t0))
  if [ -z "$rank_t" ] && ! alive "${r1[0]}"; then
    rank_t=$el; log "   node1's rank ${r1[0]} has exited: +$(secs 0 "$el") s"
  fi
  js=$(job_state "$j" || true); ns=$(node_state node2 || true)
  if [ "$js" != "$pjs" ]; then
    log "   job $j: ${js:-?} (reason $(job_field "$j" Reason || true), restarts $(job_field "$j" Restarts || true)): +$(secs 0 "$el") s"
    pjs=$js
  fi
  if [ "$ns" != "$pns" ]; then log "   node2: ${ns:-?}: +$(secs 0 "$el") s"; pns=$ns; fi
  [ -n "$job_t" ] || [ -z "$js" ] || [ "$js" = RUNNING ] || job_t=$el
  [ -n "$node_t" ] || [[ "$ns" != down* ]] || node_t=$el
  if [ -n "$rank_t" ] && [ -n "$node_t" ] && [ -n "$job_t" ] && [[ ! "$js" =~ ^(RUNNING|COMPLETING|CONFIGURING|REQUEUED|REQUEUE_HOLD|REQUEUE_FED|RESIZING|SIGNALING|STAGE_OUT)$ ]]; then
    break
  fi
  [ -n "$rank_t" ] || [ $el -le $((RANK_BOUND * 1000)) ] || fail "node1's rank ${r1[0]} still running $RANK_BOUND s after node2 died"
  [ -n "$job_t" ] || [ $el -le $((JOB_BOUND * 1000)) ] || fail "job $j still RUNNING $JOB_BOUND s after node2 died"
  [ -n "$node_t" ] || [ $el -le $((JOB_BOUND * 1000)) ] || fail "SLURM has not set node2 DOWN $JOB_BOUND s after it died (state $ns)"
  [ $el -le $(((JOB_BOUND + 60) * 1000)) ] || fail "job $j still $js $((JOB_BOUND + 60)) s after node2 died"
  sleep 0.3
done
js=$(job_state "$j")
log "   settled after $(secs 0 "$el") s: node1's rank gone at +$(secs 0 "$rank_t") s (bound $RANK_BOUND)," \
    "job left RUNNING at +$(secs 0 "$job_t") s (bound $JOB_BOUND), node2 DOWN at +$(secs 0 "$node_t") s; job now $js"
what=$(grep -E "^rnntrain\[rank 0 on node1\]: error: " "$WORK/lost.out" | tail -n 1 || true)
[ -z "$what" ] || log "   node1's rank said: ${what#*error: }"
grep -hE "^srun: error: (node1: task 0: |Node failure)|CANCELLED AT|^\[rnntrain-job .*\] (TERM received|trainer exited|requeueing|training failed|stopped after)" "$WORK/lost.out" \
  | sed "s/^/   job log: /" || true
grep -hE "not responding|JobId=$j( |$)" "$CDIR/ctld/slurmctld.log" | grep -v "sched:" \
  | sed "s/^/   slurmctld: /" || true

# Who requeued it?
ck=$(ls "$OUT/checkpoints" | sed -n 's/^ckpt-0*\([0-9][0-9]*\)\.h5$/\1/p' | sort -n | tail -n 1)
[ -n "$ck" ] || fail "no checkpoint left by job $j"
if grep -q "requeue job JobId=$j due to failure of node" "$CDIR/ctld/slurmctld.log"; then
  by="SLURM (node failure, --requeue)"
  ! grep -q "requeueing job $j " "$WORK/lost.out" \
    || by+="; the script's own requeue after exit 76 came as SLURM's did and was refused"
elif grep -q "requeueing job $j " "$WORK/lost.out"; then
  by="the job script (the trainer's exit status 76)"
elif [ "$js" = PENDING ] && restarts_at_least "$j" 1; then
  by="SLURM"
else
  [[ "$js" =~ ^(FAILED|NODE_FAIL|CANCELLED|TIMEOUT)$ ]] || fail "job $j ended $js after losing node2"
  sl scontrol requeue "$j" || fail "scontrol requeue of job $j ($js) failed"
  by="the test (scontrol requeue of the $js job)"
fi
log "   job $j requeued by $by; its newest checkpoint is at step $ck"

# c. node2 comes back. slurmctld still holds what it could not deliver to the dead node:
# the SIGTERM for the job's steps there (sdiag: REQUEST_SIGNAL_TASKS), retried about once a
# minute. Delivered after the node is back, it kills the job's next run if that already
# runs there (seen: task 1 Terminated 0.3 s after the launch, status 143, the job FAILED).
# So the job is held until those are delivered, then released.
pending_rpcs() { sl sdiag 2>/dev/null | sed -n '/^Pending RPCs/,/^$/p' | grep -w "$1" | awk '{ print $2 }' | sort | uniq -c | tr -s ' \n' ' '; }
no_pending_rpcs() { [ -z "$(pending_rpcs "$1")" ]; }
if [ "$(job_state "$j")" = PENDING ]; then
  sl scontrol hold "$j" >/dev/null || fail "scontrol hold $j failed"
  held=1
else
  held=0
fi
rpcs=$(pending_rpcs node2 || true)
log "   slurmctld's undelivered RPCs to node2:${rpcs:- none}; job $j $([ "$held" = 1 ] && echo held || echo "not held ($(job_state "$j"))")"
timeout -k 5 60 "$CLUSTER" node-start --dir "$CDIR" node2 2>&1 | sed "s/^/   /" \
  || fail "slurm-cluster.sh node-start node2 failed"
ns=$(node_state node2)
if [[ "$ns" == down* ]] || [[ "$ns" == drain* ]]; then
  sl scontrol update nodename=node2 state=resume || fail "scontrol update nodename=node2 state=resume failed"
  log "   node2 was $ns after its slurmd started: scontrol update state=resume"
fi
node_up() { local s; s=$(node_state "$1"); [ -n "$s" ] && [[ ! "$s" =~ ^(down|drain|fail|unk) ]] && [[ "$s" != *'*' ]]; }
wait_until 30 "node2 in service" node_up node2
log "c. node2 back in service ($(node_state node2)) $(secs "$t0" "$(ms)") s after it died; job $j $(job_state "$j") ($(job_field "$j" Reason))"
if [ "$held" = 1 ]; then
  td=$(ms)
  wait_until 150 "slurmctld to deliver its RPCs to node2 ($(pending_rpcs node2 || true))" no_pending_rpcs node2
  log "   slurmctld delivered its RPCs to node2 $(secs "$td" "$(ms)") s after node2 came back: releasing job $j"
  sl scontrol release "$j" >/dev/null || fail "scontrol release $j failed"
fi
# The requeued job may be held (BeginTime) or waiting for node2: let it start now.
[ "$(job_state "$j")" != PENDING ] || release_now "$j"
[ "$(wait_done "$j" 150)" = COMPLETED ] || fail "requeued job $j ended $(job_state "$j")"
grep -q "resumed from .*ckpt-0*$ck.h5: step $ck," "$WORK/lost.out" \
  || fail "job $j did not resume from its checkpoint at step $ck"
[ "$(job_field "$j" NodeList)" = "node[1-2]" ] || fail "requeued job $j ran on $(job_field "$j" NodeList)"
log "   requeued job $j (restart $(job_field "$j" Restarts)) resumed from step $ck on node[1-2] and completed"
same_model "$WORK/one" "$OUT"
same_losses "$WORK/one" "$OUT" $(partial_after "$ck")
