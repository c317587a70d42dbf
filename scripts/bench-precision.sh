#!/usr/bin/env bash
# bench-precision.sh - issue 16's speed targets, measured side by side in ONE run, the cases
# alternating within each round (the machine is shared and noisy: compare ratios):
#   sgemm      the machine's sgemm rate (scripts/bench_sgemm.c, square 2048, 1 thread)
#   fp32       rnntrain, --precision fp32, 1 rank x 1 thread
#   bf16       rnntrain, --precision bf16, 1 rank x 1 thread
#   torch      scripts/torch_reference.py, fp32, 1 thread (nn.LSTM: oneDNN/MKL-DNN kernels)
#   torch-bf16 the same under torch.autocast("cpu", dtype=torch.bfloat16)
#   fp32-t2    rnntrain fp32, 1 rank x 2 threads (--threads 2)
#   bf16-t2    rnntrain bf16, 1 rank x 2 threads
#   fp32-r2    rnntrain fp32, 2 ranks x 1 thread (mpirun -np 2)
# Prints, per case, the median over rounds of tokens/s and GFLOP/s (matrix products, as each
# program counts them) and the fraction of the sgemm rate; then the ratios the issue sets
# targets for, each the median of the per-round ratios:
#   bf16 / fp32 >= 1.7 (AVX512-BF16; 3 with AMX), bf16 / max(torch, torch-bf16) >= 2,
#   fp32-t2 / fp32 >= 1.8, fp32-t2 / fp32-r2 >= 0.95.
# The CPU model (lscpu) is printed first. Model: LSTM 2x512, embed 512, B=32, T=64, Adam,
# byte vocabulary of datasets/moby-dick.txt.
#
# Knobs (environment): MODEL=lstm LAYERS=2 HIDDEN=512 BATCH=32 BPTT=64 STEPS=40
#   PRINT_EVERY=10 (the first progress line is warm-up, excluded) TORCH_STEPS=15 ROUNDS=3
#   CASES="sgemm fp32 bf16 torch torch-bf16 fp32-t2 bf16-t2 fp32-r2" (a subset to run)
#   RNNTRAIN=build/rnntrain KEEP=1 (keep the temp dir)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
MODEL=${MODEL:-lstm} LAYERS=${LAYERS:-2} HIDDEN=${HIDDEN:-512} BATCH=${BATCH:-32}
BPTT=${BPTT:-64} STEPS=${STEPS:-40} PRINT_EVERY=${PRINT_EVERY:-10}
TORCH_STEPS=${TORCH_STEPS:-15} ROUNDS=${ROUNDS:-3}
CASES=${CASES:-sgemm fp32 bf16 torch torch-bf16 fp32-t2 bf16-t2 fp32-r2}
RNNTRAIN=${RNNTRAIN:-$ROOT/build/rnntrain}
PY=/usr/bin/python3

die() { echo "bench-precision: error: $*" >&2; exit 1; }
[[ -x "$RNNTRAIN" ]] || die "no rnntrain binary at $RNNTRAIN (build first, or set RNNTRAIN)"
(( STEPS / PRINT_EVERY >= 2 )) || die "STEPS/PRINT_EVERY must be >= 2 (the first line is warm-up)"

TMP=$(mktemp -d "${TMPDIR:-/tmp}/bench-precision.XXXXXX")
cleanup() { if [[ -n "${KEEP:-}" ]]; then echo "kept $TMP" >&2; else rm -rf "$TMP"; fi; }
trap cleanup EXIT

# the shell of this machine exports OPENBLAS_CORETYPE=Haswell, which halves the sgemm rate
unset OPENBLAS_CORETYPE
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 PMIX_MCA_gds=${PMIX_MCA_gds:-hash}
export OMPI_MCA_rmaps_base_oversubscribe=1 OMPI_MCA_hwloc_base_binding_policy=none

echo "cpu: $(lscpu | sed -n 's/^Model name: *//p' | head -1) | $(nproc --all) cores |" \
    "bf16: $(grep -q avx512_bf16 /proc/cpuinfo && echo avx512_bf16 || echo none)" \
    "amx: $(grep -q amx_bf16 /proc/cpuinfo && echo amx_bf16 || echo none)"
cc -O2 -o "$TMP/bench_sgemm" scripts/bench_sgemm.c $(pkg-config --cflags --libs openblas) \
    || die "cannot compile scripts/bench_sgemm.c"
"$RNNTRAIN" prepare --input datasets/moby-dick.txt --output "$TMP/data.h5" --vocab bytes \
    --split 0.99,0.005,0.005 > "$TMP/prepare.txt" 2>&1 || { cat "$TMP/prepare.txt" >&2; die "prepare failed"; }

RN_OPTS=(--model "$MODEL" --layers "$LAYERS" --hidden "$HIDDEN" --batch "$BATCH" --bptt "$BPTT"
         --steps "$STEPS" --print-every "$PRINT_EVERY" --ckpt-every 0 --ckpt-minutes 0
         --eval-batch "$BATCH")

# rn CASE OUT [rnntrain options]: prints "tokens/s GFLOP/s" (mean of the progress lines but
# the first)
rn() {
    local out=$1; shift
    rm -rf "$out"
    "$@" > "$out.log" 2>&1 || { tail -5 "$out.log" >&2; die "run failed: $*"; }
    awk '/^step [0-9]+\/[0-9]+ /{n++; if (n == 1) next; for (i = 1; i <= NF; i++) {
             if ($(i) == "tok/s") t += $(i - 1); if ($(i) == "GFLOP/s") g += $(i - 1) }; k++ }
         END { if (k == 0) exit 1; printf "%.1f %.2f\n", t / k, g / k }' "$out.log"
}

torch_run() { # torch_run OUT AUTOCAST
    "$PY" scripts/torch_reference.py --data "$TMP/data.h5" --model "$MODEL" --layers "$LAYERS" \
        --hidden "$HIDDEN" --batch "$BATCH" --bptt "$BPTT" --steps "$TORCH_STEPS" --threads 1 \
        --clip 5 --autocast "$2" --json 2> "$1.log" > "$1.json" || { tail -5 "$1.log" >&2; die "torch failed"; }
    "$PY" -c 'import json,sys; d=json.load(open(sys.argv[1])); print("%.1f %.2f" % (d["tokens_per_s"], d["gflops"]))' "$1.json"
}

run_case() { # run_case CASE ROUND -> "tokens/s GFLOP/s" (sgemm: "0 GFLOP/s")
    local c=$1 o="$TMP/$1-$2"
    case $c in
        sgemm) "$TMP/bench_sgemm" 2048 1 | sed -n 's/.* \([0-9.]*\) GFLOP\/s.*/0 \1/p' | head -1 ;;
        fp32) rn "$o" "$RNNTRAIN" train --data "$TMP/data.h5" --out "$o" "${RN_OPTS[@]}" --precision fp32 ;;
        bf16) rn "$o" "$RNNTRAIN" train --data "$TMP/data.h5" --out "$o" "${RN_OPTS[@]}" --precision bf16 ;;
        fp32-t2) rn "$o" "$RNNTRAIN" train --data "$TMP/data.h5" --out "$o" "${RN_OPTS[@]}" --threads 2 ;;
        bf16-t2) rn "$o" "$RNNTRAIN" train --data "$TMP/data.h5" --out "$o" "${RN_OPTS[@]}" --threads 2 --precision bf16 ;;
        fp32-r2) rn "$o" mpirun -np 2 "$RNNTRAIN" train --data "$TMP/data.h5" --out "$o" "${RN_OPTS[@]}" ;;
        torch) torch_run "$o" none ;;
        torch-bf16) torch_run "$o" bf16 ;;
        *) die "unknown case $c" ;;
    esac
}

declare -A TOK GF
for r in $(seq 1 "$ROUNDS"); do
    line="round $r:"
    for c in $CASES; do
        read -r tok gf < <(run_case "$c" "$r") || die "case $c gave no figure"
        TOK[$c-$r]=$tok GF[$c-$r]=$gf
        if [[ $c == sgemm ]]; then line+=" sgemm ${gf} GFLOP/s |"; else line+=" $c ${tok} tok/s |"; fi
    done
    echo "$line"
done

median() { printf '%s\n' "$@" | sort -g | awk '{a[NR] = $1} END {print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }
vals() { local c=$1 k=$2 r out=(); for r in $(seq 1 "$ROUNDS"); do
    if [[ $k == tok ]]; then out+=("${TOK[$c-$r]}"); else out+=("${GF[$c-$r]}"); fi; done; echo "${out[@]}"; }
have() { [[ " $CASES " == *" $1 "* ]]; }

SG=0
have sgemm && SG=$(median $(vals sgemm gf))
echo
echo "medians over $ROUNDS rounds ($MODEL ${LAYERS}x$HIDDEN, B=$BATCH, T=$BPTT):"
for c in $CASES; do
    [[ $c == sgemm ]] && { echo "  sgemm      $SG GFLOP/s (square 2048, 1 thread)"; continue; }
    t=$(median $(vals "$c" tok)) g=$(median $(vals "$c" gf))
    frac=$(awk -v g="$g" -v s="$SG" 'BEGIN { if (s > 0) printf "%.0f%%", 100 * g / s; else print "-" }')
    printf '  %-10s %9.0f tok/s  %7.1f GFLOP/s  %s of sgemm\n' "$c" "$t" "$g" "$frac"
done

ratio() { # ratio NAME NUM DEN TARGET: median of per-round NUM/DEN (DEN may be a max of two)
    local name=$1 num=$2 den=$3 target=$4 r out=()
    for r in $(seq 1 "$ROUNDS"); do
        local d
        if [[ $den == *,* ]]; then
            d=$(awk -v a="${TOK[${den%,*}-$r]}" -v b="${TOK[${den#*,}-$r]}" 'BEGIN { print (a + 0 > b + 0) ? a : b }')
        else d=${TOK[$den-$r]}; fi
        out+=("$(awk -v a="${TOK[$num-$r]}" -v b="$d" 'BEGIN { printf "%.3f", a / b }')")
    done
    local m; m=$(median "${out[@]}")
    printf '  %-28s %s (rounds: %s; target >= %s: %s)\n' "$name" "$m" "${out[*]}" "$target" \
        "$(awk -v m="$m" -v t="$target" 'BEGIN { print (m + 0 >= t + 0) ? "met" : "NOT met" }')"
}
echo "ratios (tokens/s, median of the rounds):"
have bf16 && have fp32 && ratio "bf16 / fp32" bf16 fp32 1.7
have bf16 && have torch && have torch-bf16 && ratio "bf16 / best PyTorch" bf16 torch,torch-bf16 2
have fp32-t2 && have fp32 && ratio "fp32 1x2 threads / 1x1" fp32-t2 fp32 1.8
have fp32-t2 && have fp32-r2 && ratio "fp32 1x2 threads / 2 ranks" fp32-t2 fp32-r2 0.95
have bf16-t2 && have bf16 && ratio "bf16 1x2 threads / 1x1" bf16-t2 bf16 1.8
exit 0
