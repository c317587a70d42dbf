#!/usr/bin/env bash
# SLURM test 4: several nodes. A cluster of 2 SLURM nodes, each slurmd in its own network
# namespace (own address, hostname, /etc/hosts, /tmp); slurmctld in a third.
#   a. reference: slurm/train-single-node.sbatch, 2 ranks on ONE node (srun --mpi=pmix);
#   b. the same job over 2 nodes x 1 rank (srun --mpi=pmix): the same loss at every logged
#      step and bitwise the same final parameters;
#   c. slurm/train-multi-node.sbatch over 2 nodes x 1 rank (mpirun inside the allocation);
#      node2 is lost mid-run (its rank SIGKILLed): the job fails fast (FAILED within 40 s,
#      no hang; about 12 s under mpirun, KillWait = 10 s under srun); requeued (scontrol requeue, as SLURM does after a node failure), it resumes
#      from its last checkpoint and ends with the reference's parameters and losses;
#   d. the same loss of node2 under srun (slurm/train-single-node.sbatch on 2 nodes).
# Usage: bash tests/slurm/test_multi_node.sh RNNTRAIN_BINARY [REPO_ROOT]
. "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"
command -v ip >/dev/null 2>&1 && command -v nsenter >/dev/null 2>&1 && command -v unshare >/dev/null 2>&1 \
  || skip "needs ip (iproute2), nsenter and unshare"

# KillWait 10 s: when a node is lost, the surviving rank is stuck in an all-reduce with the
# dead one, ignores SIGTERM's request to checkpoint, and dies only from SIGKILL, KillWait
# later under srun (about 4 x MPI_KILL_TIMEOUT under mpirun).
cluster_up --nodes 2 --cpus 2 --kill-wait 10
prepare_data
small_model 2400 100 # long enough that node2 is lost mid-run, not after the end
# Both "nodes" share this machine's cores: no binding (bound ranks would pile onto core 0).
export MPI_BIND=none CPU_BIND=none

export OUT="$WORK/one"
ref=$(submit "$JOB1" one.out --time=5 --nodes=1 --ntasks-per-node=2)
[ "$(wait_done "$ref" 150)" = COMPLETED ] || fail "single-node job $ref ended $(job_state "$ref")"
log "a. single-node reference job $ref completed on $(job_field "$ref" NodeList)"

export OUT="$WORK/srun2"
j=$(submit "$JOB1" srun2.out --time=5 --nodes=2 --ntasks-per-node=1)
[ "$(wait_done "$j" 150)" = COMPLETED ] || fail "2-node srun job $j ended $(job_state "$j")"
[ "$(job_field "$j" NodeList)" = "node[1-2]" ] || fail "job $j ran on $(job_field "$j" NodeList)"
log "b. 2-node srun job $j completed on node[1-2]"
same_losses "$WORK/one" "$WORK/srun2"
same_model "$WORK/one" "$WORK/srun2"

# lose_node2 SCRIPT NAME LABEL: run SCRIPT on 2 nodes, kill node2's rank mid-run, expect a
# fast failure, requeue, resume from the last checkpoint, the reference's result.
lose_node2() {
  local script=$1 name=$2 label=$3 j lost t st ck
  export OUT="$WORK/$name"
  j=$(submit "$script" "$name.out" --time=5 --nodes=2 --ntasks-per-node=1)
  wait_until 120 "job $j at step 150" step_at_least "$OUT/metrics.jsonl" 150
  stop_job_ranks "$j" 2
  mapfile -t lost < <(job_pids "$j" "rnnslurm-$CLUSTER_ID-node2")
  [ ${#lost[@]} -ge 1 ] || fail "found no rank of job $j on node2"
  log "$label job $j at step $(last_train_step "$OUT/metrics.jsonl"): node2 lost (SIGKILL to its rank ${lost[*]})"
  kill -KILL "${lost[@]}"
  cont_ranks
  t=$SECONDS
  wait_until 40 "job $j to fail after losing node2" state_is "$j" "FAILED|CANCELLED|NODE_FAIL|COMPLETED"
  st=$(job_state "$j")
  [ "$st" = FAILED ] || fail "job $j ended $st after losing a node, expected FAILED"
  log "   job $j FAILED $((SECONDS - t)) s after the loss (exit code $(job_field "$j" ExitCode))"
  ck=$(ls "$OUT/checkpoints" | sed -n 's/^ckpt-0*\([0-9][0-9]*\)\.h5$/\1/p' | sort -n | tail -n 1)
  [ -n "$ck" ] || fail "no checkpoint left by job $j"
  sl scontrol requeue "$j" || fail "scontrol requeue of the failed job $j failed"
  release "$j"
  [ "$(wait_done "$j" 150)" = COMPLETED ] || fail "requeued job $j ended $(job_state "$j")"
  grep -q "resumed from .*ckpt-0*$ck.h5: step $ck," "$WORK/$name.out" \
    || fail "job $j did not resume from its checkpoint at step $ck"
  log "   requeued job $j resumed from step $ck and completed"
  same_model "$WORK/one" "$OUT"
  same_losses "$WORK/one" "$OUT" $(partial_after "$ck")
}
lose_node2 "$JOBN" mpi2 "c. mpirun"
lose_node2 "$JOB1" srun2lost "d. srun"
