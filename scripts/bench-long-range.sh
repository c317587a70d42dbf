#!/usr/bin/env bash
# Long-range benchmark: the adding problem (datasets/adding.py) at T = 200 and T = 1000 for
# the five layer kinds (tanh RNN, LSTM, GRU, Mamba, S5) with the same budget: the same
# width, layers, batch, steps and optimizer recipe; each sequence is one chunk (--bptt T),
# so the gradient reaches the first marker. Test MSE by `rnntrain eval`; target < 0.01
# for mamba and s5 (predicting 1.0 scores 1/6 = 0.167). Writes OUTDIR/table.md and the
# learning curves OUTDIR/long-range-adding.png (scripts/plot_long_range.py).
# Results and commands: docs/long-range.md.
#
# Usage: scripts/bench-long-range.sh [OUTDIR]
# env (defaults are the documented run): BUILD_DIR (build), TS ("200 1000"),
#   KINDS ("mamba s5 lstm gru rnn"), LAYERS (2), HIDDEN (64), BATCH (32), STEPS (see
#   below), LR, SCHEDULE, WARMUP, CLIP, EVAL_EVERY, NTRAIN, NVALID, NTEST, SEED,
#   MAMBA_ARGS, S5_ARGS (kind-specific layer settings), NICE (10),
#   FROM_T (unset): a curriculum: the runs at every T other than FROM_T start from the
#   weights of the same kind's run at FROM_T (--init-from OUTDIR/adding-T$FROM_T-KIND,
#   which must exist: list FROM_T first in TS), as OUTDIR/adding-T$T-KIND-from$FROM_T;
#   the budget is then STEPS at FROM_T plus STEPS at T, the same for every kind.
# Runs are one at a time, single-threaded (OPENBLAS_NUM_THREADS=1, --threads 1).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bdir=${BUILD_DIR:-$root/build}
bin=$bdir/rnntrain
out=${1:-$(mktemp -d /tmp/rnntrain-long-range.XXXXXX)}
mkdir -p "$out"
out=$(cd "$out" && pwd)
py=/usr/bin/python3
export OPENBLAS_NUM_THREADS=1
unset OPENBLAS_CORETYPE
TS=${TS:-"200 1000"}
KINDS=${KINDS:-"mamba s5 lstm gru rnn"}
LAYERS=${LAYERS:-2}
HIDDEN=${HIDDEN:-64}
BATCH=${BATCH:-32}
STEPS=${STEPS:-1500}
LR=${LR:-5e-3}
SCHEDULE=${SCHEDULE:-constant}
WARMUP=${WARMUP:-0}
CLIP=${CLIP:-5}
EVAL_EVERY=${EVAL_EVERY:-100}
NTRAIN=${NTRAIN:-10000}
NVALID=${NVALID:-256}
NTEST=${NTEST:-1000}
SEED=${SEED:-1}
MAMBA_ARGS=${MAMBA_ARGS:-"--d-state 4"}
S5_ARGS=${S5_ARGS:-""}
NICE=${NICE:-10}
FROM_T=${FROM_T:-}

[ -x "$bin" ] || { cmake -S "$root" -B "$bdir" -DCMAKE_BUILD_TYPE=Release >/dev/null &&
                   cmake --build "$bdir" -j1 >/dev/null; }

table=$out/table.md

for T in $TS; do
  data=$out/adding-T$T.h5
  [ -f "$data" ] || "$py" "$root/datasets/adding.py" --T "$T" --seed "$SEED" --train "$NTRAIN" \
      --valid "$NVALID" --test "$NTEST" "$data"
  for kind in $KINDS; do
    run=$out/adding-T$T-$kind
    extra=""
    case $kind in
      mamba) extra=$MAMBA_ARGS ;;
      s5) extra=$S5_ARGS ;;
    esac
    label=$kind steps=$STEPS
    if [ -n "$FROM_T" ] && [ "$T" != "$FROM_T" ]; then
      start=$out/adding-T$FROM_T-$kind
      [ -f "$start/model.h5" ] || { echo "bench-long-range.sh: FROM_T=$FROM_T: no $start/model.h5 (put $FROM_T first in TS)" >&2; exit 2; }
      run=$run-from$FROM_T
      extra="$extra --init-from $start"
      label="$kind, from its T = $FROM_T model" steps="$STEPS + $STEPS"
    fi
    rm -rf "$run"
    # shellcheck disable=SC2086
    cmd=("$bin" train --data "$data" --out "$run" --model "$kind" --layers "$LAYERS"
         --hidden "$HIDDEN" $extra --batch "$BATCH" --bptt "$T" --steps "$STEPS"
         --optim adam --lr "$LR" --schedule "$SCHEDULE" --warmup "$WARMUP" --clip "$CLIP"
         --seed 1234 --eval-every "$EVAL_EVERY" --eval-batch 32 --print-every "$EVAL_EVERY"
         --threads 1 --ckpt-minutes 0)
    echo "== T=$T $kind: ${cmd[*]}"
    t0=$(date +%s.%N)
    nice -n "$NICE" "${cmd[@]}" 2> "$run.log" || { echo "train failed: see $run.log"; tail -3 "$run.log"; continue; }
    t1=$(date +%s.%N)
    wall=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.0f", b - a }')
    mse=$(nice -n "$NICE" "$bin" eval --model "$run" --data "$data" --split test --batch 32 \
          --bptt "$T" --json | "$py" -c 'import json,sys; print("%.4f" % json.load(sys.stdin)["loss"])')
    params=$("$bin" info "$run/model.h5" | sed -n 's/.* \([0-9]*\) parameters in all.*/\1/p')
    verdict="-"
    case $kind in
      mamba|s5) verdict=$(awk -v m="$mse" 'BEGIN { print (m < 0.01) ? "pass" : "FAIL" }') ;;
    esac
    echo "| $label | $T | $params | $steps | $mse | $wall | $verdict |" | tee "$run.row"
  done
done
# the table of every run in OUTDIR (also those of earlier invocations with other TS/KINDS)
{
  echo "| kind | T | parameters | steps | test MSE | wall time (s) | target < 0.01 |"
  echo "|---|---|---|---|---|---|---|"
  for row in $(cd "$out" && ls adding-T*-*.row | sort -t- -k2.2n); do cat "$out/$row"; done
} > "$table"
echo
cat "$table"
"$py" "$root/scripts/plot_long_range.py" "$out" -o "$out/long-range-adding.png"
