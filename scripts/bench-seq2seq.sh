#!/usr/bin/env bash
# bench-seq2seq.sh: seq2seq training throughput against the same layers as a language model.
#
# Usage: scripts/bench-seq2seq.sh [RNNTRAIN]   (from the repository root; default build/rnntrain)
#   env: ROUNDS (3), STEPS (300), HIDDEN (256), KIND (lstm), BATCH (64), BPTT (16)
# Each round runs, alternating, on one rank with one BLAS thread:
#   lm        --model KIND --layers 1 --hidden H on datasets/moby-dick.txt (bytes), --bptt BPTT
#   s2s       the G2P pairs (datasets/cmudict.tsv; built with datasets/build-cmudict.sh if
#             missing): encoder KIND:H (one direction) -> decoder KIND:H, no attention
#   s2s-att   the same with --attention general
#   s2s-bi    a bidirectional encoder and --attention general
# and the machine's sgemm rate (scripts/bench_sgemm.c, 2048^3). It prints tokens/s (seq2seq:
# real source + target tokens, padding not counted), the GFLOP/s rnntrain reports, the
# fraction of the sgemm rate, and each seq2seq rate over the language model's of the same
# round. Target (issue 14): s2s within 20% of lm per token.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BIN=${1:-build/rnntrain}
ROUNDS=${ROUNDS:-3} STEPS=${STEPS:-300} HIDDEN=${HIDDEN:-256} KIND=${KIND:-lstm}
BATCH=${BATCH:-64} BPTT=${BPTT:-16}
die() { echo "bench-seq2seq: ERROR: $*" >&2; exit 1; }
[[ -x $BIN ]] || die "no binary $BIN (build first)"
TMP=$(mktemp -d "${TMPDIR:-/tmp}/bench-seq2seq.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
cp "$BIN" "$TMP/rnntrain"
# shellcheck source=scripts/blas-core.sh
. "$ROOT/scripts/blas-core.sh"
CORE=$(bench_blas_core "$TMP/rnntrain") || die "cannot run $BIN --version"
RUN=(env -u OPENBLAS_L2_SIZE OPENBLAS_CORETYPE="$CORE" OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1)
cc -O2 -o "$TMP/bench_sgemm" scripts/bench_sgemm.c $(pkg-config --cflags --libs openblas) ||
    die "cannot compile scripts/bench_sgemm.c"
[[ -s datasets/cmudict.tsv ]] || bash datasets/build-cmudict.sh >&2
"$TMP/rnntrain" prepare --input datasets/moby-dick.txt --output "$TMP/lm.h5" >/dev/null
"$TMP/rnntrain" prepare --pairs datasets/cmudict.tsv --source chars --target symbols \
    --output "$TMP/g2p.h5" >/dev/null
COMMON=(--model "$KIND" --layers 1 --hidden "$HIDDEN" --embed 64 --batch "$BATCH"
        --steps "$STEPS" --print-every "$STEPS" --eval-every 0 --ckpt-minutes 0)
# the progress line of the last step: tok/s and GFLOP/s
rate() { sed -n "s/^step $STEPS\/.*| \([0-9]*\) tok\/s | \([0-9.]*\) GFLOP\/s.*/\1 \2/p" "$1" | tail -1; }
CPU=$(lscpu | sed -n 's/^Model name: *//p' | head -1)
echo "# $CPU | OpenBLAS core $CORE | 1 rank, 1 thread | $KIND:$HIDDEN, batch $BATCH, $STEPS steps"
printf '%-6s %-8s %10s %8s %8s %9s\n' round config tok/s GFLOP/s sgemm% vs-lm
declare -A SUM
for round in $(seq 1 "$ROUNDS"); do
    sg=$("${RUN[@]}" "$TMP/bench_sgemm" --json 2048 1 |
         sed -n '/"shape": "square"/s/.*"gflops": *\([0-9.]*\).*/\1/p' | head -1)
    "${RUN[@]}" "$TMP/rnntrain" train --data "$TMP/lm.h5" --out "$TMP/lm" --bptt "$BPTT" \
        "${COMMON[@]}" > "$TMP/lm.log" 2>&1 || die "lm run failed: $(tail -3 "$TMP/lm.log")"
    read -r lm_tps lm_gf < <(rate "$TMP/lm.log")
    printf '%-6s %-8s %10s %8s %8.1f %9s\n' "$round" lm "$lm_tps" "$lm_gf" \
        "$(awk -v a="$lm_gf" -v b="$sg" 'BEGIN { print 100 * a / b }')" "-"
    for cfg in s2s s2s-att s2s-bi; do
        extra=()
        [[ $cfg == s2s-att ]] && extra=(--attention general)
        [[ $cfg == s2s-bi ]] && extra=(--bidirectional --attention general)
        "${RUN[@]}" "$TMP/rnntrain" train --data "$TMP/g2p.h5" --out "$TMP/$cfg" \
            "${COMMON[@]}" "${extra[@]}" > "$TMP/$cfg.log" 2>&1 ||
            die "$cfg run failed: $(tail -3 "$TMP/$cfg.log")"
        read -r tps gf < <(rate "$TMP/$cfg.log")
        ratio=$(awk -v a="$tps" -v b="$lm_tps" 'BEGIN { printf "%.3f", a / b }')
        SUM[$cfg]=$(awk -v s="${SUM[$cfg]:-0}" -v r="$ratio" 'BEGIN { print s + r }')
        printf '%-6s %-8s %10s %8s %8.1f %9s\n' "$round" "$cfg" "$tps" "$gf" \
            "$(awk -v a="$gf" -v b="$sg" 'BEGIN { print 100 * a / b }')" "$ratio"
    done
    echo "#      sgemm    $sg GFLOP/s"
done
for cfg in s2s s2s-att s2s-bi; do
    awk -v s="${SUM[$cfg]}" -v n="$ROUNDS" -v c="$cfg" \
        'BEGIN { m = s / n; printf "mean %s / lm tokens/s: %.3f (%s the 20%% target)\n", c, m, (m >= 0.8 ? "meets" : "misses") }'
done
