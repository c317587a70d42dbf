#!/usr/bin/env bash
# bench-g2p.sh - grapheme-to-phoneme on CMUdict with the seq2seq task: prepare
# datasets/cmudict.tsv into OUT/g2p.h5 if it is missing (characters -> phoneme symbols, split
# 90/5/5 by word, seed 1234), train an encoder-decoder with mpirun -np RANKS for each
# attention kind asked for, evaluate the test split greedy (beam 1) and with beam search,
# and print a summary table: train wall time, steps, epochs, word error rate (WER = the
# "sequence error rate": the output equals none of the word's reference pronunciations)
# and phoneme error rate (PER = the "token error rate"), then the exact commands.
# Targets, results and the CPU they were measured on: docs/tasks.md, "Sequence to
# sequence". Writes OUT/table.md, OUT/commands.txt, OUT/<run>/ (model, metrics.jsonl,
# train.log, eval-beam*.json).
#
# Usage: scripts/bench-g2p.sh [options]
#   --bin PATH         rnntrain binary (default build/rnntrain); copied into OUT first, so
#                      a rebuild during the run cannot change it
#   --out DIR          output directory (default: a new /tmp/rnntrain-g2p.XXXXXX)
#   --data FILE        the prepared dataset (default OUT/g2p.h5; made when missing)
#   --attention LIST   comma-separated kinds, one run each: general, dot, none
#                      (default general,none). dot needs a decoder as wide as the encoder's
#                      output: 2 x its width with --bidirectional, so use general there
#   --steps N          updates per run (default 20000; one epoch is ~1880 updates of 64)
#   --minutes M        time budget per run instead of --steps: a 250-update probe of the
#                      same configuration measures the speed, and the run gets the updates
#                      that fit 0.92 x M minutes (the rest is left for validation passes
#                      and the machine's noise). On a shared machine the speed can change
#                      after the probe: a run still training at M minutes is stopped
#                      there (SIGTERM: rnntrain writes a checkpoint and exits 75) and that
#                      checkpoint is evaluated; the table then says "stopped at M min"
#   --hidden H         decoder width (default 256); the encoder's layers are --hidden wide
#                      unless --encoder gives a KIND:WIDTH list
#   --encoder SPEC     encoder layers: a count, or a list such as lstm:256 (default 1)
#   --layers L         decoder layers (default 1)
#   --embed E          embedding width (default 64)
#   --batch B          global batch (default 64)      --lr X        (default 3e-3)
#   --dropout P        (default 0.2)                  --warmup N    (default 200)
#   --eval-every N     validation every N updates (default 1000)
#   --beam K           beam width of the second evaluation (default 5; --alpha A, default 1)
#   --ranks N          MPI ranks (default 2)
#   --seed S           training seed (default 1234)
#   --no-bidirectional a forward-only encoder
#   --train-arg ARG    one more argument for rnntrain train (repeatable)
#   --nice N           run everything under nice -n N (default 0)
# Needs: mpirun (Open MPI; as root OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
# are exported here), python3 (reads the JSON lines), datasets/cmudict.tsv (built with
# datasets/build-cmudict.sh when missing). OPENBLAS_CORETYPE is unset (a forced core type
# can halve the BLAS speed) and OPENBLAS_NUM_THREADS=1.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
die() { echo "bench-g2p: ERROR: $*" >&2; exit 2; }

bin=$root/build/rnntrain out='' data='' attention=general,none steps='' minutes=''
hidden=256 encoder=1 layers=1 embed=64 batch=64 lr=3e-3 dropout=0.2 warmup=200
eval_every=1000 beam=5 alpha=1 ranks=2 seed=1234 bidir=--bidirectional nice_n=0
extra=()
while [ "$#" -gt 0 ]; do
  case "$1" in
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; exit 0 ;;
    --no-bidirectional) bidir=''; shift; continue ;;
  esac
  [ "$#" -ge 2 ] || die "$1 needs a value (see --help)"
  case "$1" in
    --bin) bin=$2 ;;           --out) out=$2 ;;          --data) data=$2 ;;
    --attention) attention=$2 ;; --steps) steps=$2 ;;    --minutes) minutes=$2 ;;
    --hidden) hidden=$2 ;;     --encoder) encoder=$2 ;;  --layers) layers=$2 ;;
    --embed) embed=$2 ;;       --batch) batch=$2 ;;      --lr) lr=$2 ;;
    --dropout) dropout=$2 ;;   --warmup) warmup=$2 ;;    --eval-every) eval_every=$2 ;;
    --beam) beam=$2 ;;         --alpha) alpha=$2 ;;      --ranks) ranks=$2 ;;
    --seed) seed=$2 ;;         --train-arg) extra+=("$2") ;;  --nice) nice_n=$2 ;;
    *) die "unknown option: $1 (see --help)" ;;
  esac
  shift 2
done
[ -n "$steps" ] && [ -n "$minutes" ] && die "give --steps or --minutes, not both"
[ -z "$steps" ] && [ -z "$minutes" ] && steps=20000
[ -x "$bin" ] || die "no binary at $bin (build it, or pass --bin)"
command -v mpirun >/dev/null || die "mpirun not found"
command -v python3 >/dev/null || die "python3 not found"

out=${out:-$(mktemp -d /tmp/rnntrain-g2p.XXXXXX)}
mkdir -p "$out"
out=$(cd "$out" && pwd)
cp "$bin" "$out/rnntrain"
bin=$out/rnntrain
data=${data:-$out/g2p.h5}

export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export PMIX_MCA_gds=${PMIX_MCA_gds:-hash} # see scripts/run-main-job.sh
unset OPENBLAS_CORETYPE
run() { nice -n "$nice_n" "$@"; }
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }
# json FILE EXPR: evaluate a python expression over the JSON object j of FILE's last line
json() { python3 -c 'import json,sys; j=json.loads(open(sys.argv[1]).read().strip().splitlines()[-1]); print(eval(sys.argv[2]))' "$1" "$2"; }

cpu=$(lscpu 2>/dev/null | sed -n 's/^Model name: *//p' | head -1)
echo "bench-g2p: $(getconf _NPROCESSORS_ONLN) CPUs (${cpu:-unknown}); load average $(cut -d' ' -f1-3 /proc/loadavg); out $out"

if [ ! -f "$data" ]; then
  tsv=$root/datasets/cmudict.tsv
  [ -f "$tsv" ] || bash "$root/datasets/build-cmudict.sh"
  pcmd=("$bin" prepare --pairs "$tsv" --source chars --target symbols --seed 1234 --output "$data")
  echo "== prepare: ${pcmd[*]}"
  "${pcmd[@]}" 2>&1 | tee "$out/prepare.log"
fi

table=$out/table.md
cmds=$out/commands.txt
: > "$cmds"
{
  echo "| attention | decoder | encoder | updates | epochs | train wall (min) | beam | test WER | test PER | token loss (nats) |"
  echo "|---|---|---|---|---|---|---|---|---|---|"
} > "$table"

IFS=, read -r -a kinds <<< "$attention"
for kind in "${kinds[@]}"; do
  case "$kind" in general|dot|none) ;; *) die "--attention: unknown kind $kind" ;; esac
  name=$kind-h$hidden
  dir=$out/$name
  rm -rf "$dir" "$dir.probe"
  base=(mpirun -np "$ranks" "$bin" train --data "$data" --model lstm --layers "$layers"
        --hidden "$hidden" --embed "$embed" --encoder "$encoder" $bidir --attention "$kind"
        --batch "$batch" --lr "$lr" --clip 5 --schedule cosine --warmup "$warmup"
        --dropout "$dropout" --seed "$seed" --threads 1 --ckpt-minutes 0 ${extra[@]+"${extra[@]}"})
  n=$steps
  if [ -n "$minutes" ]; then
    # probe: 250 updates; the speed is taken between the updates 50 and 250 (start-up left out)
    run "${base[@]}" --out "$dir.probe" --steps 250 --print-every 50 --eval-every 0 \
      > "$dir.probe.log" 2>&1 || { tail -5 "$dir.probe.log"; die "the probe run failed: $dir.probe.log"; }
    n=$(python3 - "$dir.probe/metrics.jsonl" "$minutes" <<'EOF'
import json, sys
tr = [j for j in map(json.loads, open(sys.argv[1])) if j.get("kind") == "train"]
rate = (tr[-1]["step"] - tr[0]["step"]) / (tr[-1]["elapsed"] - tr[0]["elapsed"])
print(int(rate * 60 * float(sys.argv[2]) * 0.92) // 100 * 100)
EOF
)
    echo "== $name: by the probe's speed $n updates fit 0.92 x $minutes min"
    rm -rf "$dir.probe"
  fi
  cmd=("${base[@]}" --out "$dir" --steps "$n" --eval-every "$eval_every" --print-every 200)
  echo "== $name: ${cmd[*]}" | tee -a "$cmds"
  limit=()
  [ -n "$minutes" ] && limit=(timeout --signal=TERM --kill-after=120 "${minutes}m")
  model=$dir updates=$n status=0
  t0=$(now)
  run ${limit[@]+"${limit[@]}"} "${cmd[@]}" > "$dir.log" 2>&1 || status=$?
  t1=$(now)
  if [ "$status" -eq 124 ] && ls "$dir"/checkpoints/ckpt-*.h5 >/dev/null 2>&1; then
    # stopped by the time budget: the checkpoint written on SIGTERM is the model
    model=$(ls "$dir"/checkpoints/ckpt-*.h5 | sort | tail -1)
    updates=$(grep -o 'written at step [0-9]*' "$dir.log" | tail -1 | grep -o '[0-9]*$' || true)
    updates="${updates:-?} of $n (stopped at $minutes min)"
    echo "== $name: stopped by the $minutes min budget; evaluating $model"
  elif [ "$status" -ne 0 ]; then
    tail -5 "$dir.log"; echo "bench-g2p: training $name failed (exit $status): $dir.log" >&2; continue
  fi
  mv "$dir.log" "$dir/train.log"
  wall=$(elapsed "$t0" "$t1")
  grep -E '^(rnntrain|ranks|valid|model)' "$dir/train.log" | tail -4
  epochs=$(python3 -c '
import json, sys
tr = [j for j in map(json.loads, open(sys.argv[1])) if j.get("kind") == "train"]
print("%.1f" % tr[-1]["epoch"])' "$dir/metrics.jsonl")
  enc_desc=$encoder
  case "$encoder" in *:*) ;; *) enc_desc="${encoder}x$hidden" ;; esac
  [ -n "$bidir" ] && enc_desc="$enc_desc bi"
  for k in 1 "$beam"; do
    ecmd=("$bin" eval --model "$model" --data "$data" --split test --beam "$k" --alpha "$alpha" --json)
    echo "   ${ecmd[*]}" | tee -a "$cmds"
    run "${ecmd[@]}" > "$dir/eval-beam$k.json"
    ser=$(json "$dir/eval-beam$k.json" '"%.2f" % (100 * j["sequence_error_rate"])')
    ter=$(json "$dir/eval-beam$k.json" '"%.2f" % (100 * j["token_error_rate"])')
    loss=$(json "$dir/eval-beam$k.json" '"%.4f" % j["loss"]')
    echo "| $kind | ${layers}x$hidden | $enc_desc | $updates | $epochs | $(awk -v w="$wall" 'BEGIN { printf "%.1f", w / 60 }') | $k | $ser% | $ter% | $loss |" >> "$table"
    [ "$k" = "$beam" ] && break   # --beam 1: one evaluation
  done
  tail -n +3 "$table" | grep "^| $kind | ${layers}x$hidden " || true
done

echo
echo "CPU: $(getconf _NPROCESSORS_ONLN) x ${cpu:-unknown}; load average at the end $(cut -d' ' -f1-3 /proc/loadavg)"
echo "targets: test WER <= 30%, PER <= 8%, trained in <= 30 min on 2 ranks"
echo
cat "$table"
echo
cat "$cmds"
