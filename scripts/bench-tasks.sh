#!/usr/bin/env bash
# Issue 7 targets, reproducible: digits classification (LSTM, shuffled-with-seed 70/10/20
# split, i.e. 80/20 train+valid/test), sunspots forecasting at horizons 1..12 beside the
# persistence and seasonal-naive baselines, and class-conditional generation of digits
# (nearest-centroid accuracy of generated sequences vs chance).
# Usage: scripts/bench-tasks.sh [OUTDIR]   (env: BUILD_DIR, default build)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bin=${BUILD_DIR:-$root/build}/rnntrain
out=${1:-$(mktemp -d /tmp/rnntrain-tasks.XXXXXX)}
mkdir -p "$out"
[ -x "$bin" ] || { cmake -S "$root" -B "${BUILD_DIR:-$root/build}" >/dev/null && cmake --build "${BUILD_DIR:-$root/build}" -j"$(nproc)" >/dev/null; }
[ -f "$root/datasets/digits.csv" ] || bash "$root/datasets/build-digits.sh"
[ -f "$root/datasets/sunspots.csv" ] || bash "$root/datasets/build-sunspots.sh"
cd "$out"
echo "== digits: 8 steps x 8 pixels -> class (LSTM 1x64) =="
"$bin" prepare --csv "$root/datasets/digits.csv" --task classify --steps 8 --features 8 \
  --split 0.7,0.1,0.2 --seed 1234 --output digits.h5
"$bin" train --data digits.h5 --out digits --model lstm --layers 1 --hidden 64 --batch 32 \
  --steps 400 --lr 5e-3 --eval-every 200 --print-every 200 --ckpt-minutes 0 2>&1 | grep -E "valid|error" || true
"$bin" eval --model digits --data digits.h5 --split test
echo
echo "== sunspots: 48 months -> next 12 months (LSTM 1x64) =="
"$bin" prepare --csv "$root/datasets/sunspots.csv" --task regress --column value --window 48 \
  --horizon 12 --split 0.8,0.1,0.1 --output sunspots.h5
"$bin" train --data sunspots.h5 --out sunspots --model lstm --layers 1 --hidden 64 --batch 32 \
  --steps 1500 --lr 3e-3 --schedule cosine --eval-every 500 --print-every 500 --ckpt-minutes 0 2>&1 | grep -E "valid|error" || true
"$bin" eval --model sunspots --data sunspots.h5 --split test
echo
echo "== generation: digit class -> its 8 pixel rows (GRU 1x64, class sets the initial state) =="
"$bin" prepare --csv "$root/datasets/digits.csv" --task generate --steps 8 --features 8 \
  --split 0.7,0.1,0.2 --seed 1234 --output generate.h5
"$bin" train --data generate.h5 --out generate --model gru --layers 1 --hidden 64 --batch 32 \
  --steps 600 --lr 5e-3 --eval-every 300 --print-every 300 --ckpt-minutes 0 2>&1 | grep -E "valid|error" || true
"$bin" eval --model generate --data generate.h5 --split test
"$bin" predict --model generate --data generate.h5 --split test --output generated.csv > /dev/null
echo "generated sequences written to $out/generated.csv"
