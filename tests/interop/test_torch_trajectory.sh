#!/usr/bin/env bash
# interop_trajectory: rnntrain trains like PyTorch, step by step, from the same weights.
#
#   tests/interop/test_torch_trajectory.sh RNNTRAIN_BIN REPO_ROOT
#
# For each cell with another optimizer (lstm+adam, gru+rmsprop, rnn+adamw; 5 warm-up steps,
# then constant, constant and cosine learning rates), 2 layers:
#   1. scripts/torch_reference.py draws PyTorch's default initial weights for a seed and
#      writes them as an rnntrain model file (--save-init; h5py writes null-padded strings
#      there, which h5_read_attr_str must read whole), then trains 50 steps of B=8 x T=16
#      with global-norm clipping on ~6 KB of Moby Dick (42 chunks per epoch: the run crosses
#      an epoch end, where both reset the carried state);
#   2. `rnntrain train --init-from` that file, same recipe;
#   3. the per-step training losses must agree within TOL relative at every step.
# This checks the whole training loop against an independent implementation: TBPTT state
# carry and reset, loss, backward, clipping, the optimizer's update and its defaults, the
# learning-rate schedules.
# (Measured agreement: lstm 3e-6, gru 2e-7, rnn 1e-4 at worst over the 50 steps; float
# rounding differences grow slowly through the updates. A wrong state carry, a reset
# missing at the epoch end or a different optimizer rule shows up at 1e-2 or more.)
# Exit 77 (skipped) if /usr/bin/python3 cannot import torch and h5py.
set -euo pipefail

# shellcheck source=setup.sh
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh" interop_trajectory "$@"
TOL=1e-3
STEPS=50

head -c 6000 "$ROOT/datasets/moby-dick.txt" > "$TMP/text.txt"
"$BIN" prepare --input "$TMP/text.txt" --output "$TMP/data.h5" >/dev/null

fails=0
# bad input to --save-init: a clear message, exit 2, no file written
for bad in "--synthetic 256 --save-init $TMP/none.h5|--save-init needs --data" \
           "--data $TMP/data.h5 --steps 0|--steps must be >= 1"; do
    args=${bad%%|*} want=${bad#*|} rc=0
    # shellcheck disable=SC2086
    "$PY" "$ROOT/scripts/torch_reference.py" $args > "$TMP/bad.out" 2>&1 || rc=$?
    if (( rc != 2 )) || ! grep -q -- "$want" "$TMP/bad.out" || [[ -e $TMP/none.h5 ]]; then
        echo "FAIL: torch_reference.py $args: exit $rc, expected 2 and '$want':"; cat "$TMP/bad.out"
        fails=$((fails + 1))
    else
        echo "ok:   torch_reference.py $args: $(tail -n 1 "$TMP/bad.out")"
    fi
done
for c in "lstm adam constant" "gru rmsprop constant" "rnn adamw cosine"; do
    read -r cell optim schedule <<<"$c"
    recipe=(--model "$cell" --layers 2 --hidden 24 --embed 16 --batch 8 --bptt 16
            --optim "$optim" --lr 3e-3 --clip 0.5 --steps "$STEPS" --eval-batch 4
            --schedule "$schedule" --warmup 5 --min-lr 1e-4)
    if ! "$PY" "$ROOT/scripts/torch_reference.py" --data "$TMP/data.h5" "${recipe[@]}" \
        --seed 3 --save-init "$TMP/init-$cell.h5" --json > "$TMP/pt-$cell.json" 2> "$TMP/pt-$cell.log"; then
        echo "FAIL: $cell: torch_reference.py failed:"; cat "$TMP/pt-$cell.log"
        fails=$((fails + 1)); continue
    fi
    if ! "$BIN" train --data "$TMP/data.h5" --out "$TMP/rt-$cell" --log "$TMP/rt-$cell.jsonl" \
        "${recipe[@]}" --print-every 1 --init-from "$TMP/init-$cell.h5" > "$TMP/rt-$cell.log" 2>&1; then
        echo "FAIL: $cell: rnntrain train --init-from failed:"; cat "$TMP/rt-$cell.log"
        fails=$((fails + 1)); continue
    fi
    if ! "$PY" - "$cell" "$TMP/pt-$cell.json" "$TMP/rt-$cell.jsonl" "$TOL" "$STEPS" <<'PYEOF'
import json
import sys

cell, pt_path, rt_path, tol, steps = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4]), int(sys.argv[5])
pt = json.load(open(pt_path))["train_losses"]
rt = [json.loads(line)["loss"] for line in open(rt_path) if '"kind": "train"' in line]
if len(pt) != steps or len(rt) != steps:
    sys.exit("FAIL: %s: %d PyTorch and %d rnntrain losses, expected %d" % (cell, len(pt), len(rt), steps))
rel = [abs(a - b) / abs(b) for a, b in zip(rt, pt)]
worst = max(range(steps), key=lambda i: rel[i])
msg = "%s: %d steps, losses %.6f -> %.6f (PyTorch %.6f -> %.6f), worst relative difference %.2e at step %d" % (
    cell, steps, rt[0], rt[-1], pt[0], pt[-1], rel[worst], worst + 1)
if rel[worst] > tol:
    sys.exit("FAIL: " + msg + " > %g" % tol)
if not rt[-1] < rt[0] - 1.0:
    sys.exit("FAIL: %s: the loss did not fall (%.4f -> %.4f): the comparison would be empty" % (cell, rt[0], rt[-1]))
print("ok:   " + msg)
PYEOF
    then fails=$((fails + 1)); fi
done
(( fails == 0 )) || { echo "$fails failure(s)"; exit 1; }
echo "all trajectories agree within $TOL"
