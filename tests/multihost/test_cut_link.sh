#!/usr/bin/env bash
# A cut network link between two hosts ends the job within a bounded time, and the run
# resumes from its last checkpoint to the same bits as an uninterrupted run.
#
# Usage: test_cut_link.sh RNNTRAIN_BIN REPO_ROOT     (ctest: multihost_cut_link)
# Needs root and `ip netns` (exit 77 = skipped otherwise). About 40 s.
#
# 2 ranks train on 2 namespace hosts (scripts/netns-hosts.sh) over TCP with --watchdog 4.
# Once checkpoints exist, host 2's link to the bridge is taken down: neither rank can reach
# the other, and neither can the launcher reach host 2's daemon. Each rank's watchdog must
# then end it (exit 76) within the limit plus the grace period; the rank on mpirun's host
# must say which rank did not answer (its message is the one that reaches the launcher's
# log). With the link up again the launcher ends with a failure status. A resumed run
# (--resume auto, the same two hosts) must then reach the final step bitwise equal to an
# uninterrupted run (--deterministic).
set -euo pipefail
BIN=${1:?usage: test_cut_link.sh RNNTRAIN_BIN REPO_ROOT}
REPO=${2:?usage: test_cut_link.sh RNNTRAIN_BIN REPO_ROOT}
# shellcheck source=lib.sh
. "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"

LIMIT=25  # seconds from the cut to the end of both ranks (watchdog 4 s + grace + slack)

mh_hosts_up 2
mh_prepare_data
args=(train --data "$WORK/data.h5" --hidden 16 --batch 4 --bptt 16 --eval-batch 4
      --ckpt-every 10 --ckpt-minutes 0 --keep 0 --print-every 10 --watchdog 4 --deterministic --micro-batch 2)
final=400

# the uninterrupted run, on the same two hosts
timeout -k 10 120 "$NETNS_STATE/mpirun.sh" -np 2 "$BIN" "${args[@]}" --steps "$final" \
  --out "$WORK/ref" >"$WORK/ref.log" 2>&1 || { cat "$WORK/ref.log"; mh_fail "reference run failed"; }

out=$WORK/cut
timeout -k 10 300 "$NETNS_STATE/mpirun.sh" -np 2 "$BIN" "${args[@]}" --steps 1000000 \
  --out "$out" >"$WORK/cut.log" 2>&1 &
job=$!
t0=$SECONDS
until [ -f "$out/checkpoints/ckpt-0000000020.h5" ]; do
  kill -0 "$job" 2>/dev/null || { cat "$WORK/cut.log"; mh_fail "the job ended before the cut"; }
  [ $((SECONDS - t0)) -lt 60 ] || mh_fail "no checkpoint at step 20 within 60 s"
  sleep 0.1
done
ranks=$(mh_rank_pids)
[ "$(echo "$ranks" | wc -w)" -eq 2 ] || mh_fail "expected 2 rnntrain processes, found '$ranks'"

ip netns exec "$NETNS_PREFIX-br" ip link set h2 down || mh_fail "cannot take host 2's link down"
tc=$SECONDS
while [ -n "$(mh_rank_pids)" ]; do
  if [ $((SECONDS - tc)) -gt "$LIMIT" ]; then
    ip netns exec "$NETNS_PREFIX-br" ip link set h2 up || true
    cat "$WORK/cut.log"
    mh_fail "ranks $(mh_rank_pids) still run $LIMIT s after the link was cut"
  fi
  sleep 0.2
done
took=$((SECONDS - tc))
ip netns exec "$NETNS_PREFIX-br" ip link set h2 up || mh_fail "cannot bring host 2's link up again"
rc=0
wait "$job" || rc=$?
[ "$rc" -ne 0 ] || { cat "$WORK/cut.log"; mh_fail "the launcher exited 0 after the cut"; }
msg=$(grep -m1 "has not completed after" "$WORK/cut.log" || true)
echo "$msg" | grep -q "rank 1 ([^)]*) did not answer" ||
  { cat "$WORK/cut.log"; mh_fail "rank 0's watchdog message does not name rank 1 as the silent one"; }
mh_log "link cut: both ranks ended within $took s; launcher exit $rc; $(echo "$msg" | cut -c1-160)"

timeout -k 10 120 "$NETNS_STATE/mpirun.sh" -np 2 "$BIN" "${args[@]}" --steps "$final" \
  --out "$out" --resume auto >"$WORK/resume.log" 2>&1 || { cat "$WORK/resume.log"; mh_fail "resume after the cut failed"; }
/usr/bin/python3 - "$out/model.h5" "$WORK/ref/model.h5" <<'EOF' || mh_fail "the resumed run differs from the uninterrupted one"
import sys, h5py
with h5py.File(sys.argv[1], "r") as a, h5py.File(sys.argv[2], "r") as b:
    bad = [n for n in a["params"] if a["params"][n][()].tobytes() != b["params"][n][()].tobytes()]
    if bad: print("differ bitwise:", bad); sys.exit(1)
EOF
mh_log "resumed after the cut: bitwise equal to the uninterrupted run"
mh_log "PASS"
