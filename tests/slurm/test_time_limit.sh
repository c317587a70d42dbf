#!/usr/bin/env bash
# SLURM test 3: the time-limit signal. slurm/train-single-node.sbatch is submitted with a
# one-minute time limit and --signal=B:USR1@50: SLURM sends USR1 to the batch script 10 to
# 40 s into the job; the script forwards it to the ranks, which write a checkpoint and exit
# 75; the script requeues the job (scontrol requeue); the rerun resumes from the checkpoint
# and completes (COMPLETED, exit 0; a finished run is not requeued again). The result must
# equal that of an uninterrupted run of the same job (run alongside, on the same cluster):
# bitwise parameters, validation loss, logged losses.
# The ranks are SIGSTOPped until the USR1 has arrived, so that it surely finds the run in
# the middle of its steps however fast the machine (and the wait costs no CPU).
# Usage: bash tests/slurm/test_time_limit.sh RNNTRAIN_BINARY [REPO_ROOT]
. "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"

# 4 CPUs (more than the machine may have) so that the reference runs while the
# time-limited job waits for its signal.
cluster_up --cpus 4
prepare_data
small_model 600 100

export OUT="$WORK/tl"
j=$(submit "$JOB1" tl.out --time=1 --signal=B:USR1@50)
log "job $j submitted with --time=1 --signal=B:USR1@50"
wait_until 120 "job $j at step 100" step_at_least "$OUT/metrics.jsonl" 100
stop_job_ranks "$j" 2

export OUT="$WORK/ref"
ref=$(submit "$JOB1" ref.out --time=5)
log "reference job $ref submitted; waiting for SLURM's USR1 to job $j (10 to 40 s)"
wait_until 75 "USR1 from SLURM to job $j" file_has "$WORK/tl.out" 'USR1 received'
log "job $j got USR1 from SLURM"
cont_ranks
# The requeue first: between the script's exit and the requeue taking hold, the job can
# read COMPLETED for a moment (seen once: wait_done returned then, with Restarts still 0).
wait_until 90 "job $j requeued by its script" restarts_at_least "$j" 1

[ "$(wait_done "$j" 150)" = COMPLETED ] || fail "job $j ended $(job_state "$j")"
[ "$(job_field "$j" ExitCode)" = 0:0 ] || fail "job $j exit code $(job_field "$j" ExitCode)"
r=$(job_field "$j" Restarts)
[ "$r" -ge 1 ] || fail "job $j was never requeued"
s=$(sed -n 's/.*stop requested by a signal: checkpoint .* written at step \([0-9]*\);.*/\1/p' "$WORK/tl.out" | head -n 1)
[ -n "$s" ] || fail "the trainer wrote no checkpoint on USR1"
grep -q "requeueing job $j" "$WORK/tl.out" || fail "the job script did not requeue the job"
grep -q "resumed from .*ckpt-0*$s.h5: step $s," "$WORK/tl.out" || fail "the rerun did not resume from step $s"
grep -q "step $STEPS/$STEPS" "$WORK/tl.out" || fail "the job did not reach step $STEPS"
grep -q 'training complete' "$WORK/tl.out" || fail "the job did not complete"
log "job $j: USR1 -> checkpoint at step $s -> exit 75 -> requeued ($r restart(s)) -> resumed -> COMPLETED"

[ "$(wait_done "$ref" 150)" = COMPLETED ] || fail "reference job $ref ended $(job_state "$ref")"
skipped=()
for rs in $(sed -n 's/.*resumed from .*: step \([0-9]*\),.*/\1/p' "$WORK/tl.out"); do
  skipped+=($(partial_after "$rs"))
done
same_model "$WORK/ref" "$WORK/tl"
same_losses "$WORK/ref" "$WORK/tl" "${skipped[@]}"
