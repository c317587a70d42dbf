#!/usr/bin/env bash
# run-digit-captions.sh - digit captioning with the seq2seq task: each 8x8 scikit-learn digit
# (64 pixel values in [0,1]) conditions the decoder, which spells the digit's English name
# ("zero" .. "nine") one character at a time. Prepares datasets/digit-captions.tsv into
# OUT/cap.h5 if it is missing (split 90/5/5, seed 1234), trains on 1 or 2 ranks, decodes
# the test split greedily and prints the exact-match rate (= 1 - the sequence error rate;
# target >= 95%) and the token (character) error rate. Results: docs/tasks.md, "Sequence to
# sequence". Writes OUT/cap.h5, OUT/run/ (model, metrics.jsonl, train.log, eval-test.json),
# OUT/predictions.tsv (rnntrain predict) and OUT/summary.md.
#
# Usage: scripts/run-digit-captions.sh [options]
#   --bin PATH       rnntrain binary (default build/rnntrain; copied into OUT first)
#   --out DIR        output directory (default: a new /tmp/rnntrain-captions.XXXXXX)
#   --data FILE      the prepared dataset (default OUT/cap.h5; made when missing)
#   --ranks N        1 (plain process) or 2 (mpirun -np 2) (default 1)
#   --steps N        updates (default 2000; an epoch is 50 updates of 32)
#   --hidden H       decoder width (default 128)     --layers L  (default 1)
#   --embed E        character embedding width (default 16)
#   --batch B        global batch (default 32)       --lr X      (default 3e-3)
#   --dropout P      (default 0.2)                   --warmup N  (default 100)
#   --seed S         training seed (default 1234)
#   --train-arg ARG  one more argument for rnntrain train (repeatable)
# Needs: python3 (reads the JSON line), datasets/digits.csv (datasets/build-digits.sh);
# mpirun for --ranks 2 (as root OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 are
# exported here). OPENBLAS_CORETYPE is unset and OPENBLAS_NUM_THREADS=1.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
die() { echo "run-digit-captions: ERROR: $*" >&2; exit 2; }

bin=$root/build/rnntrain out='' data='' ranks=1 steps=2000 hidden=128 layers=1 embed=16
batch=32 lr=3e-3 dropout=0.2 warmup=100 seed=1234
extra=()
while [ "$#" -gt 0 ]; do
  case "$1" in -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; exit 0 ;; esac
  [ "$#" -ge 2 ] || die "$1 needs a value (see --help)"
  case "$1" in
    --bin) bin=$2 ;;       --out) out=$2 ;;        --data) data=$2 ;;
    --ranks) ranks=$2 ;;   --steps) steps=$2 ;;    --hidden) hidden=$2 ;;
    --layers) layers=$2 ;; --embed) embed=$2 ;;    --batch) batch=$2 ;;
    --lr) lr=$2 ;;         --dropout) dropout=$2 ;; --warmup) warmup=$2 ;;
    --seed) seed=$2 ;;     --train-arg) extra+=("$2") ;;
    *) die "unknown option: $1 (see --help)" ;;
  esac
  shift 2
done
case "$ranks" in 1|2) ;; *) die "--ranks: 1 or 2" ;; esac
[ -x "$bin" ] || die "no binary at $bin (build it, or pass --bin)"
command -v python3 >/dev/null || die "python3 not found"

out=${out:-$(mktemp -d /tmp/rnntrain-captions.XXXXXX)}
mkdir -p "$out"
out=$(cd "$out" && pwd)
cp "$bin" "$out/rnntrain"
bin=$out/rnntrain
data=${data:-$out/cap.h5}

export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export PMIX_MCA_gds=${PMIX_MCA_gds:-hash} # see scripts/run-main-job.sh
unset OPENBLAS_CORETYPE
cpu=$(lscpu 2>/dev/null | sed -n 's/^Model name: *//p' | head -1)

if [ ! -f "$data" ]; then
  tsv=$root/datasets/digit-captions.tsv
  [ -f "$root/datasets/digits.csv" ] || bash "$root/datasets/build-digits.sh"
  bash "$root/datasets/build-digit-captions.sh" "$tsv"
  pcmd=("$bin" prepare --pairs "$tsv" --source features --target chars --seed 1234 --output "$data")
  echo "== prepare: ${pcmd[*]}"
  "${pcmd[@]}" 2>&1 | tee "$out/prepare.log"
fi

dir=$out/run
rm -rf "$dir"
launch=()
[ "$ranks" -gt 1 ] && launch=(mpirun -np "$ranks")
cmd=(${launch[@]+"${launch[@]}"} "$bin" train --data "$data" --out "$dir" --model lstm
     --layers "$layers" --hidden "$hidden" --embed "$embed" --batch "$batch" --steps "$steps"
     --lr "$lr" --clip 5 --schedule cosine --warmup "$warmup" --dropout "$dropout"
     --seed "$seed" --threads 1 --eval-every 500 --print-every 500 --ckpt-minutes 0
     ${extra[@]+"${extra[@]}"})
echo "== train: ${cmd[*]}"
t0=$(date +%s.%N)
"${cmd[@]}" > "$out/train.log" 2>&1 || { tail -5 "$out/train.log"; die "training failed: $out/train.log"; }
t1=$(date +%s.%N)
mv "$out/train.log" "$dir/train.log"
grep -E '^(rnntrain|valid|model)' "$dir/train.log" | tail -3
wall=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')

ecmd=("$bin" eval --model "$dir" --data "$data" --split test --beam 1 --json)
echo "== eval: ${ecmd[*]}"
"${ecmd[@]}" > "$dir/eval-test.json"
pcmd=("$bin" predict --model "$dir" --data "$data" --split test --output "$out/predictions.tsv")
echo "== predict: ${pcmd[*]}"
"${pcmd[@]}"

read -r n em cer < <(python3 -c '
import json, sys
j = json.loads(open(sys.argv[1]).read().strip().splitlines()[-1])
print(j["sources"], "%.2f" % (100 * (1 - j["sequence_error_rate"])), "%.2f" % (100 * j["token_error_rate"]))' "$dir/eval-test.json")
verdict=$(awk -v a="$em" 'BEGIN { print (a >= 95) ? "pass" : "FAIL" }')
{
  echo "| ranks | decoder | updates | train wall (s) | test images | exact match | char error rate | target >= 95% |"
  echo "|---|---|---|---|---|---|---|---|"
  echo "| $ranks | ${layers}x$hidden | $steps | $wall | $n | $em% | $cer% | $verdict |"
  echo
  echo "CPU: $(getconf _NPROCESSORS_ONLN) x ${cpu:-unknown}"
  echo "${cmd[*]}"
  echo "${ecmd[*]}"
} > "$out/summary.md"
echo
cat "$out/summary.md"
