#!/usr/bin/env bash
# Sequential digits: the 8x8 scikit-learn digits (datasets/digits.csv) read one pixel per
# step (64 steps x 1 feature), 70/10/20 split shuffled with seed 1234. S5 (target: test
# accuracy >= 95%) and LSTM with the same budget (layers, width, batch, steps, optimizer
# recipe, pooling), and LSTM with last-step readout. Writes OUTDIR/table.md.
# Results and commands: docs/long-range.md.
#
# Usage: scripts/bench-seq-digits.sh [OUTDIR]
# env: BUILD_DIR (build), LAYERS (3), HIDDEN (64), BATCH (32), STEPS (1500), LR (3e-3),
#   SSM_LR (1e-3), SCHEDULE (cosine), WARMUP (100), POOL (mean), EVAL_EVERY (100), NICE (10)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bdir=${BUILD_DIR:-$root/build}
bin=$bdir/rnntrain
out=${1:-$(mktemp -d /tmp/rnntrain-seq-digits.XXXXXX)}
mkdir -p "$out"
out=$(cd "$out" && pwd)
export OPENBLAS_NUM_THREADS=1
unset OPENBLAS_CORETYPE
LAYERS=${LAYERS:-3}
HIDDEN=${HIDDEN:-64}
BATCH=${BATCH:-32}
STEPS=${STEPS:-1500}
LR=${LR:-3e-3}
SSM_LR=${SSM_LR:-1e-3}
SCHEDULE=${SCHEDULE:-cosine}
WARMUP=${WARMUP:-100}
POOL=${POOL:-mean}
EVAL_EVERY=${EVAL_EVERY:-100}
NICE=${NICE:-10}
py=/usr/bin/python3

[ -x "$bin" ] || { cmake -S "$root" -B "$bdir" -DCMAKE_BUILD_TYPE=Release >/dev/null &&
                   cmake --build "$bdir" -j1 >/dev/null; }
[ -f "$root/datasets/digits.csv" ] || bash "$root/datasets/build-digits.sh"
data=$out/seq-digits.h5
"$bin" prepare --csv "$root/datasets/digits.csv" --task classify --steps 64 --features 1 \
  --split 0.7,0.1,0.2 --seed 1234 --output "$data"

table=$out/table.md
{
  echo "| kind | pool | parameters | steps | test accuracy | wall time (s) | target >= 95% |"
  echo "|---|---|---|---|---|---|---|"
} > "$table"
# name kind pool extra-args
for spec in "s5 s5 $POOL --ssm-lr $SSM_LR" "lstm lstm $POOL" "lstm-last lstm last"; do
  set -- $spec
  name=$1 kind=$2 pool=$3
  shift 3
  run=$out/digits-$name
  rm -rf "$run"
  cmd=("$bin" train --data "$data" --out "$run" --model "$kind" --layers "$LAYERS"
       --hidden "$HIDDEN" "$@" --pool "$pool" --batch "$BATCH" --bptt 64 --steps "$STEPS"
       --optim adam --lr "$LR" --schedule "$SCHEDULE" --warmup "$WARMUP" --seed 1234
       --eval-every "$EVAL_EVERY" --print-every "$EVAL_EVERY" --threads 1 --ckpt-minutes 0)
  echo "== $name: ${cmd[*]}"
  t0=$(date +%s.%N)
  nice -n "$NICE" "${cmd[@]}" 2> "$run.log" || { echo "train failed: see $run.log"; tail -3 "$run.log"; continue; }
  t1=$(date +%s.%N)
  wall=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.0f", b - a }')
  nice -n "$NICE" "$bin" eval --model "$run" --data "$data" --split test --bptt 64 | tee "$run.eval"
  acc=$(nice -n "$NICE" "$bin" eval --model "$run" --data "$data" --split test --bptt 64 --json |
        "$py" -c 'import json,sys; print("%.2f" % (100 * json.load(sys.stdin)["accuracy"]))')
  params=$("$bin" info "$run/model.h5" | sed -n 's/.* \([0-9]*\) parameters in all.*/\1/p')
  verdict="-"
  [ "$kind" = s5 ] && verdict=$(awk -v a="$acc" 'BEGIN { print (a >= 95) ? "pass" : "FAIL" }')
  echo "| $name | $pool | $params | $STEPS | $acc% | $wall | $verdict |" | tee -a "$table"
done
echo
cat "$table"
