#!/usr/bin/env bash
# The main job: set up, then train a character-level LSTM on the bundled corpus
# datasets/moby-dick.txt with 2 MPI ranks, evaluate it, sample from it, plot its curves.
#
# Usage: bash scripts/run-main-job.sh        (from any directory; a few minutes on 2 cores)
#   1. scripts/install-deps.sh (apt-get; skipped when everything is installed)
#   2. Release build of rnntrain in $BUILD_DIR (default build)
#   3. rnntrain prepare   datasets/moby-dick.txt -> $OUT/moby.h5 (90/5/5 split, bytes)
#   4. mpirun -np $NP rnntrain train  -> $OUT/run/model.h5, $OUT/run/metrics.jsonl
#   5. mpirun -np $NP rnntrain eval --split test
#   6. rnntrain sample --prime "Call me Ishmael"
#   7. scripts/plot_metrics.py -> $OUT/run/curves.png (if /usr/bin/python3 has matplotlib)
# Relative BUILD_DIR and OUT are taken relative to the repository root.
#
# Environment overrides (defaults in brackets):
#   OUT [out]  BUILD_DIR [build]  NP [2]  INPUT [datasets/moby-dick.txt]
#   MODEL [lstm]  LAYERS [2]  HIDDEN [256]  BATCH [32]  BPTT [64]  LR [2e-3]
#   STEPS [1500]  EVAL_EVERY [250]  PRINT_EVERY [50]  THREADS [1]  SEED [1234]
#   PRIME ["Call me Ishmael"]  LENGTH [400]  TEMPERATURE [0.8]  SKIP_DEPS=1
set -euo pipefail

repo=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd -P)
cd -- "$repo"

OUT=${OUT:-out}
BUILD_DIR=${BUILD_DIR:-build}
NP=${NP:-2}
INPUT=${INPUT:-datasets/moby-dick.txt}
MODEL=${MODEL:-lstm}
LAYERS=${LAYERS:-2}
HIDDEN=${HIDDEN:-256}
BATCH=${BATCH:-32}
BPTT=${BPTT:-64}
LR=${LR:-2e-3}
STEPS=${STEPS:-1500}
EVAL_EVERY=${EVAL_EVERY:-250}
PRINT_EVERY=${PRINT_EVERY:-50}
THREADS=${THREADS:-1}
SEED=${SEED:-1234}
PRIME=${PRIME:-Call me Ishmael}
LENGTH=${LENGTH:-400}
TEMPERATURE=${TEMPERATURE:-0.8}

die() { echo "run-main-job: ERROR: $*" >&2; exit 1; }
header() { echo; echo "==================== $* ===================="; }
job_start=$SECONDS
section_start=$SECONDS
timings=()
# done_section NAME: record how long the section that just ended took.
done_section() {
  timings+=("$(printf '%-9s %4d s' "$1" $((SECONDS - section_start)))")
  section_start=$SECONDS
}
trap 'rc=$?; [ "$rc" -eq 0 ] || echo "run-main-job: FAILED (exit $rc) after $((SECONDS - job_start)) s" >&2' EXIT

header "1/7 dependencies"
if [ "${SKIP_DEPS:-0}" != 1 ]; then
  bash scripts/install-deps.sh || die "installing dependencies failed"
else
  echo "skipped (SKIP_DEPS=1)"
fi
done_section deps

header "2/7 build (Release, $BUILD_DIR)"
cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release >/dev/null \
  || die "cmake configure failed (rerun: cmake -S $repo -B $BUILD_DIR)"
cmake --build "$BUILD_DIR" -j"$(nproc 2>/dev/null || echo 2)" --target rnntrain \
  || die "build failed"
case "$BUILD_DIR" in /*) BIN="$BUILD_DIR/rnntrain" ;; *) BIN="$repo/$BUILD_DIR/rnntrain" ;; esac
[ -x "$BIN" ] || die "no executable at $BIN after the build"
done_section build

# mpirun: as root Open MPI needs both variables; more ranks than cores need --oversubscribe;
# ranks with several BLAS threads must not be pinned to one core each.
if [ "$(id -u)" -eq 0 ]; then
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
fi
# PMIx's shared-memory data store fails in some sandboxes (gVisor: MPI_Init ends in "getting
# local rank failed"); its in-memory one works everywhere and costs nothing at these sizes.
export PMIX_MCA_gds=${PMIX_MCA_gds:-hash}
MPIRUN=(mpirun -np "$NP")
if [ "$(nproc 2>/dev/null || echo 1)" -lt "$NP" ]; then MPIRUN+=(--oversubscribe); fi
if [ "$THREADS" -gt 1 ]; then MPIRUN+=(--bind-to none); fi

mkdir -p -- "$OUT"
DATA="$OUT/moby.h5"
RUN="$OUT/run"

header "3/7 prepare ($INPUT -> $DATA)"
"$BIN" prepare --input "$INPUT" --output "$DATA"
done_section prepare

header "4/7 train ($MODEL ${LAYERS}x$HIDDEN, $NP ranks, $STEPS steps -> $RUN)"
mkdir -p -- "$RUN"
# The metrics file is appended to: start it afresh so the curves show this run only; and
# this job's earlier checkpoints go (train refuses to start afresh over a run's checkpoints).
rm -f -- "$RUN/metrics.jsonl" "$RUN/curves.png"
rm -rf -- "$RUN/checkpoints"
set -x
"${MPIRUN[@]}" "$BIN" train --data "$DATA" --out "$RUN" \
  --model "$MODEL" --layers "$LAYERS" --hidden "$HIDDEN" --batch "$BATCH" --bptt "$BPTT" \
  --lr "$LR" --steps "$STEPS" --eval-every "$EVAL_EVERY" --print-every "$PRINT_EVERY" \
  --threads "$THREADS" --seed "$SEED"
{ set +x; } 2>/dev/null
done_section train

header "5/7 evaluate on the test split ($NP ranks)"
"${MPIRUN[@]}" "$BIN" eval --model "$RUN" --data "$DATA" --split test --threads "$THREADS"
done_section eval

header "6/7 sample (prime \"$PRIME\", $LENGTH tokens, temperature $TEMPERATURE)"
"$BIN" sample --model "$RUN" --prime "$PRIME" --length "$LENGTH" --temperature "$TEMPERATURE"
echo
done_section sample

header "7/7 plot learning curves"
if [ -x /usr/bin/python3 ] && /usr/bin/python3 -c 'import matplotlib' 2>/dev/null; then
  /usr/bin/python3 scripts/plot_metrics.py "$RUN/metrics.jsonl" -o "$RUN/curves.png"
else
  echo "skipped: /usr/bin/python3 has no matplotlib (apt-get install python3-matplotlib)"
fi
done_section plot

header "done in $((SECONDS - job_start)) s"
printf '  %s\n' "${timings[@]}"
echo "  outputs: $DATA, $RUN/model.h5, $RUN/metrics.jsonl$( [ -f "$RUN/curves.png" ] && echo ", $RUN/curves.png")"
