#!/usr/bin/env bash
# SLURM test 2: preemption. A job is preempted in the middle of its steps with
# `scontrol requeue`: SLURM sends SIGTERM, the trainer writes a checkpoint and exits (75),
# SLURM requeues the job, and the rerun resumes from that checkpoint by itself
# (--resume auto) and completes. It must end with bitwise the same parameters, the same
# final validation loss and the same loss at every logged step as an uninterrupted run of
# the same job (the reference, run alongside). Both launchers, on one node with 2 ranks:
# slurm/train-single-node.sbatch (srun --mpi=pmix), slurm/train-multi-node.sbatch (mpirun).
# To be sure the requeue lands mid-run however fast the machine, the test SIGSTOPs the
# ranks before it requeues (SLURM sends SIGCONT before SIGTERM).
# Usage: bash tests/slurm/test_preempt.sh RNNTRAIN_BINARY [REPO_ROOT]
. "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"

# 4 CPUs (more than the machine may have): the reference runs alongside.
cluster_up --cpus 4
prepare_data
small_model 600 100

export OUT="$WORK/ref"
ref=$(submit "$JOB1" ref.out --time=5)
log "reference job $ref submitted"

# preempt SCRIPT NAME LABEL
preempt() {
  local script=$1 name=$2 label=$3 j at s
  export OUT="$WORK/$name"
  j=$(submit "$script" "$name.out" --time=5 --nodes=1 --ntasks-per-node=2)
  wait_until 120 "job $j at step 150" step_at_least "$OUT/metrics.jsonl" 150
  stop_job_ranks "$j" 2
  at=$(last_train_step "$OUT/metrics.jsonl")
  log "$label job $j at step $at: scontrol requeue"
  sl scontrol requeue "$j" || fail "scontrol requeue $j failed"
  cont_ranks
  release "$j"
  log "   job $j requeued and released"
  [ "$(wait_done "$j" 150)" = COMPLETED ] || fail "preempted job $j ended $(job_state "$j")"
  [ "$(job_field "$j" Restarts)" = 1 ] || fail "job $j restarted $(job_field "$j" Restarts) times, expected 1"
  grep -q 'TERM received' "$WORK/$name.out" || fail "the job script did not see the SIGTERM"
  # The checkpoint written on SIGTERM is at or after the step where the ranks were
  # stopped; the periodic ones (every 100 steps) are before it.
  s=$(sed -n 's/.*resumed from .*ckpt-0*\([0-9]*\)\.h5: step .*/\1/p' "$WORK/$name.out" | head -n 1)
  [ -n "$s" ] || fail "job $j did not resume from a checkpoint"
  [ "$s" -ge "$at" ] || fail "job $j resumed from step $s, not from a checkpoint written on SIGTERM (>= $at)"
  grep -q "step $STEPS/$STEPS" "$WORK/$name.out" || fail "the rerun did not reach step $STEPS"
  log "   job $j: checkpoint at step $s on SIGTERM, requeued, resumed from step $s, completed"
  [ "$(wait_done "$ref" 150)" = COMPLETED ] || fail "reference job $ref ended $(job_state "$ref")"
  same_model "$WORK/ref" "$OUT"
  same_losses "$WORK/ref" "$OUT" $(partial_after "$s")
}
preempt "$JOB1" pre-srun "a. srun"
preempt "$JOBN" pre-mpirun "b. mpirun"
