#!/usr/bin/env bash
# watchdog: a stalled rank does not stall the job forever. Two ranks train; one is stopped
# with SIGSTOP (as a hung node or a debugger would); the other rank's watchdog (--watchdog 3)
# ends the job within seconds with status 76 and a message naming the waiting call, the
# step and the stopped rank (the one that did not answer the live rank's message); the run
# then resumes from its last checkpoint to the same bits as an uninterrupted run. Twice:
# stopping rank 0 and stopping rank 1. (A cut network link: tests/multihost/test_cut_link.sh.)
#   tests/runs/test_watchdog.sh RNNTRAIN_BIN MPIEXEC REPO_ROOT
set -uo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh" "$@"
runs_cleanup() { pkill -9 -P $$ 2>/dev/null; }


head -c 300000 "$ROOT/datasets/moby-dick.txt" > "$TMP/text.txt"
"$BIN" prepare --input "$TMP/text.txt" --output "$TMP/lm.h5" >/dev/null || fail "prepare"
ARGS="--data $TMP/lm.h5 --hidden 16 --batch 4 --bptt 16 --eval-batch 4 --ckpt-every 10
      --ckpt-minutes 0 --keep 0 --print-every 10 --watchdog 3 --deterministic --micro-batch 2"
run ref 2 $ARGS --steps 400 || fail "reference run: $(tail -3 "$TMP/ref.log")"

for victim in 0 1; do
    name=stop$victim
    "$MPI" -np 2 "$BIN" train --out "$TMP/$name" $ARGS --steps 100000 > "$TMP/$name.log" 2>&1 &
    launcher=$!
    # the ranks: children of the launcher, in rank order of their OMPI_COMM_WORLD_RANK
    pid=""
    for _ in $(seq 1 200); do
        for c in $(pgrep -P "$launcher"); do
            r=$(tr '\0' '\n' < "/proc/$c/environ" 2>/dev/null | sed -n 's/^OMPI_COMM_WORLD_RANK=//p')
            [[ $r == "$victim" ]] && pid=$c
        done
        [[ -n $pid && -f $TMP/$name/checkpoints/ckpt-0000000020.h5 ]] && break
        sleep 0.1
    done
    [[ -n $pid ]] || { fail "rank $victim not found"; kill -9 "$launcher"; continue; }
    kill -STOP "$pid"
    t0=$SECONDS
    for _ in $(seq 1 300); do kill -0 "$launcher" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$launcher" 2>/dev/null; then
        fail "rank $victim stopped: the job still runs after $((SECONDS - t0)) s"
        kill -CONT "$pid"; kill -9 "$launcher"; wait "$launcher" 2>/dev/null; continue
    fi
    wait "$launcher"; rc=$?
    kill -9 "$pid" 2>/dev/null
    if [[ $rc == 76 ]] && grep "has not completed after" "$TMP/$name.log" |
            grep -q "rank $victim ([^)]*) did not answer"; then
        ok "rank $victim stopped: the job ended in $((SECONDS - t0)) s with status 76: $(grep -m1 'has not completed' "$TMP/$name.log" | cut -c1-110)"
    else
        fail "rank $victim stopped: status $rc: $(tail -5 "$TMP/$name.log")"
    fi
    run "$name" 2 $ARGS --steps 400 --resume auto || fail "resume after the stall: $(tail -3 "$TMP/$name.log")"
    if r=$(params_cmp "$TMP/$name/model.h5" "$TMP/ref/model.h5" 0); then
        ok "resumed after the stall: bitwise equal to the uninterrupted run"
    else fail "resumed after the stall: $r"; fi
done
echo "watchdog: $fails failure(s)"
[[ $fails -eq 0 ]]
