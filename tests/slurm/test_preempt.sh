#!/usr/bin/env bash
# SLURM test 2: preemption. slurm/train-single-node.sbatch (2 ranks, srun --mpi=pmix) is
# submitted twice on a small corpus: once left alone (the reference), once preempted in the
# middle of its steps with `scontrol requeue`. The preempted job's trainer gets SIGTERM,
# writes a checkpoint and exits 75; SLURM requeues the job; the rerun resumes from that
# checkpoint by itself (--resume auto) and completes. It must end with bitwise the same
# parameters, the same final validation loss and the same loss at every logged step as the
# reference.
# To be sure the requeue lands mid-run however fast the machine, the test SIGSTOPs the
# ranks before it requeues (SLURM sends SIGCONT before SIGTERM).
# Usage: bash tests/slurm/test_preempt.sh RNNTRAIN_BINARY [REPO_ROOT]
. "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"

cluster_up
prepare_data
small_model 800 100

export OUT="$WORK/ref"
ref=$(submit "$JOB1" ref.out --time=5)
log "reference job $ref submitted"
[ "$(wait_done "$ref" 150)" = COMPLETED ] || fail "reference job $ref ended $(job_state "$ref")"
log "reference job $ref completed"

export OUT="$WORK/pre"
j=$(submit "$JOB1" pre.out --time=5)
log "job $j submitted; waiting until it has trained 150 steps"
wait_until 120 "job $j at step 150" step_at_least "$OUT/metrics.jsonl" 150
stop_job_ranks "$j" 2
at=$(last_train_step "$OUT/metrics.jsonl")
log "preempting job $j at step ~$at: scontrol requeue"
sl scontrol requeue "$j" || fail "scontrol requeue $j failed"
cont_ranks
release "$j"
log "job $j requeued and released"
[ "$(wait_done "$j" 150)" = COMPLETED ] || fail "preempted job $j ended $(job_state "$j")"

[ "$(job_field "$j" Restarts)" = 1 ] || fail "job $j restarted $(job_field "$j" Restarts) times, expected 1"
grep -q 'TERM received' "$WORK/pre.out" || fail "the job script did not see the TERM"
s=$(sed -n 's/.*stop requested by a signal: checkpoint .* written at step \([0-9]*\);.*/\1/p' "$WORK/pre.out" | head -n 1)
[ -n "$s" ] || fail "the trainer wrote no checkpoint on the signal"
grep -q "resumed from .*ckpt-0*$s.h5: step $s," "$WORK/pre.out" \
  || fail "the rerun did not resume from the signal's checkpoint (step $s)"
grep -q 'step 800/800' "$WORK/pre.out" || fail "the rerun did not reach step 800"
log "job $j: checkpoint at step $s on SIGTERM, requeued, resumed from step $s, completed"
same_model "$WORK/ref" "$WORK/pre"
same_losses "$WORK/ref" "$WORK/pre"
