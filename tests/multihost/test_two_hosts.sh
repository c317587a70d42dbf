#!/usr/bin/env bash
# Data-parallel training across two hosts gives the same run as one rank.
#
# Usage: test_two_hosts.sh RNNTRAIN_BIN REPO_ROOT     (ctest: multihost_two_hosts)
# Needs root and `ip netns` (exit 77 = skipped otherwise). About 10 s.
#
# 2 hosts are network namespaces joined by a bridge (scripts/netns-hosts.sh); Open MPI
# starts one rank per host (rsh agent = ip netns exec) and the ranks talk over TCP only
# (btl self,tcp on the private /24). The same small LSTM is trained on 1 rank (no launcher)
# and on those 2 ranks, with the same global batch and seed: the streams are the same, so
# every per-step training loss must agree within 1e-5 relative and the final validation
# loss within 1e-5 nats. --verify-every 1 also checks that both ranks hold bitwise equal
# parameters after every step. Everything is bounded by timeouts and torn down on exit.
set -euo pipefail
BIN=${1:?usage: test_two_hosts.sh RNNTRAIN_BIN REPO_ROOT}
REPO=${2:?usage: test_two_hosts.sh RNNTRAIN_BIN REPO_ROOT}
# shellcheck source=lib.sh
. "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"

mh_hosts_up 2
mh_prepare_data

args=(train --data "$WORK/data.h5" --model lstm --layers 2 --hidden 24 --batch 8 --bptt 16
      --steps 20 --print-every 1 --eval-batch 8 --verify-every 1 --seed 7)

t0=$SECONDS
timeout -k 10 60 "$BIN" "${args[@]}" --out "$WORK/one" >"$WORK/one.log" 2>&1 ||
  { cat "$WORK/one.log"; mh_fail "1-rank training failed (exit $?)"; }
mh_log "1 rank (local): $((SECONDS - t0)) s"

t0=$SECONDS
rc=0
timeout -k 10 60 "$NETNS_STATE/mpirun.sh" -np 2 "$BIN" "${args[@]}" --out "$WORK/two" \
  >"$WORK/two.log" 2>&1 || rc=$?
[ "$rc" -eq 0 ] || { cat "$WORK/two.log"; mh_fail "2-rank training across 2 hosts failed (exit $rc; 124 = timed out)"; }
mh_log "2 ranks on 2 hosts over TCP: $((SECONDS - t0)) s"
grep -q '^ranks 2 ' "$WORK/two.log" || { cat "$WORK/two.log"; mh_fail "the 2-host run did not run 2 ranks"; }

# "step loss" per train line; "nats" of the last valid line
steps() { sed -n 's/.*"kind": "train", "step": \([0-9]*\),.*"loss": \([^,]*\),.*/\1 \2/p' "$1"; }
nats() { sed -n 's/.*"kind": "valid".*"nats": \([^,]*\),.*/\1/p' "$1" | tail -n 1; }
steps "$WORK/one/metrics.jsonl" >"$WORK/one.steps"
steps "$WORK/two/metrics.jsonl" >"$WORK/two.steps"
[ "$(wc -l <"$WORK/one.steps")" -eq 20 ] || mh_fail "1-rank run logged $(wc -l <"$WORK/one.steps") train lines, not 20"
[ "$(wc -l <"$WORK/two.steps")" -eq 20 ] || mh_fail "2-rank run logged $(wc -l <"$WORK/two.steps") train lines, not 20"

paste -d' ' "$WORK/one.steps" "$WORK/two.steps" | awk '
  { if ($1 != $3) { printf "step mismatch: %s vs %s\n", $1, $3; bad = 1; next }
    d = $2 - $4; if (d < 0) d = -d; m = ($2 < 0 ? -$2 : $2); if (($4 < 0 ? -$4 : $4) > m) m = ($4 < 0 ? -$4 : $4)
    r = m > 0 ? d / m : d; if (r > worst) worst = r
    if (r > 1e-5) { printf "step %d: loss %s (1 rank) vs %s (2 hosts): rel diff %.3g > 1e-5\n", $1, $2, $4, r; bad = 1 } }
  END { printf "per-step losses: worst relative difference %.3g over %d steps\n", worst, NR; exit bad }' ||
  mh_fail "per-step losses differ"

n1=$(nats "$WORK/one/metrics.jsonl"); n2=$(nats "$WORK/two/metrics.jsonl")
[ -n "$n1" ] && [ -n "$n2" ] || mh_fail "no validation line (1 rank: '$n1', 2 hosts: '$n2')"
awk -v a="$n1" -v b="$n2" 'BEGIN { d = a - b; if (d < 0) d = -d
  printf "final validation: %s nats (1 rank) vs %s nats (2 hosts): |diff| %.3g\n", a, b, d; exit d > 1e-5 }' ||
  mh_fail "final validation loss differs by more than 1e-5 nats"
mh_log "PASS"
