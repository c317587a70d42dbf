#!/usr/bin/env bash
# SLURM test 1: the throwaway cluster and a plain submission.
#   scripts/slurm-cluster.sh brings up munged, slurmctld and slurmd; a plain batch job and
#   a 2-task `srun --mpi=pmix` step run; slurm/train-single-node.sbatch, submitted with
#   sbatch on a small corpus that is not prepared yet, prepares it, trains and completes
#   (COMPLETED, exit 0, never requeued); `down` stops every daemon it started, by PID, and
#   a second `down` is harmless.
# Usage: bash tests/slurm/test_cluster.sh RNNTRAIN_BINARY [REPO_ROOT]
. "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"

cluster_up
pids=$(cat "$CDIR/munge/munged.pid" "$CDIR/ctld/slurmctld.pid" "$CDIR"/nodes/*/slurmd.pid | tr '\n' ' ')
log "cluster up: daemons $pids"

# A plain job: batch script plus an MPI-style step over two tasks.
j=$(submit /dev/stdin plain.out <<'JOB'
#!/bin/bash
#SBATCH --ntasks=2 --time=2
echo "batch on $(hostname) job $SLURM_JOB_ID"
srun --mpi=pmix -n 2 bash -c 'echo "task $SLURM_PROCID of $SLURM_NTASKS"'
JOB
)
[ "$(wait_done "$j" 60)" = COMPLETED ] || fail "plain job $j: $(job_state "$j")"
grep -q "^batch on" "$WORK/plain.out" || fail "plain job wrote no output"
[ "$(grep -c '^task [01] of 2$' "$WORK/plain.out")" -eq 2 ] || fail "srun step did not run 2 tasks"
log "plain job $j completed with its 2-task srun step"

# The training job script: prepares the corpus itself, trains, completes, no requeue.
head -c 200000 "$REPO/datasets/moby-dick.txt" >"$WORK/corpus.txt"
small_model 100 50
export DATA="$WORK/data/corpus.h5" INPUT="$WORK/corpus.txt" OUT="$WORK/run"
j=$(submit "$JOB1" train.out --time=3)
[ "$(wait_done "$j" 120)" = COMPLETED ] || fail "training job $j ended $(job_state "$j")"
[ "$(job_field "$j" ExitCode)" = 0:0 ] || fail "training job exit code $(job_field "$j" ExitCode)"
[ "$(job_field "$j" Restarts)" = 0 ] || fail "a completed training job was requeued"
[ -f "$DATA" ] || fail "the job did not prepare $DATA"
[ -f "$OUT/model.h5" ] || fail "no model written"
ls "$OUT"/checkpoints/ckpt-*.h5 >/dev/null 2>&1 || fail "no checkpoint written"
grep -q 'training complete' "$WORK/train.out" || fail "job log lacks 'training complete'"
grep -q 'step 100/100' "$WORK/train.out" || fail "trainer did not reach step 100"
! grep -q 'requeueing' "$WORK/train.out" || fail "completed job tried to requeue"
log "training job $j: prepared the corpus, trained 100 steps, COMPLETED, not requeued"

# Teardown by PID; nothing left; a second teardown is harmless.
t=$SECONDS
timeout -k 5 120 "$CLUSTER" down --dir "$CDIR" || fail "down failed"
for p in $pids; do
  if [ -r "/proc/$p/stat" ] && ! grep -q ') Z' "/proc/$p/stat"; then fail "daemon $p still running after down"; fi
done
log "down in $((SECONDS - t)) s; no daemon left"
timeout -k 5 60 "$CLUSTER" down --dir "$CDIR" >/dev/null 2>&1 || fail "second down failed"
