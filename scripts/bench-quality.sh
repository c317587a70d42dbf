#!/usr/bin/env bash
# bench-quality.sh - issue-3 quality target on the Linux-kernel byte corpus.
#
# Recipe: byte vocab, 90/5/5 split (rnntrain prepare default), LSTM 2x256 (embed 256),
# B=32 (global) x T=64, Adam lr 2e-3, global-norm clip 5, PyTorch-default init, seed 1234
# (`--init pytorch` draws PyTorch's own initial weights for the seed: test interop_init);
# validation on the whole valid split read as 32 carried-state streams every 2M tokens
# (1024 steps) up to TOKENS_M (default 4M = 2048 steps).  rnntrain runs data-parallel on
# NP=2 MPI ranks (1 BLAS thread each) to save wall time; the global batch stays 32.
#
# Targets (from the issue; PyTorch 1.13, same recipe): valid nats/char within 0.05 of
# PyTorch at 2M tokens (PyTorch: 1.78, 1.81 with another seed), below the n-gram floor (the
# issue: 1.62, "order 4, Witten-Bell"; PyTorch's figure at 4M) by 4M tokens.  PyTorch at 8M:
# 1.53.  The floor is also measured here, on the same valid split: scripts/ngram_floor.py
# (interpolated Witten-Bell, counts from the train split; the best order is the 5-gram, i.e.
# 4 bytes of history).  A target passes against the stricter of 1.62 and the measured floor.
#
# Usage: scripts/bench-quality.sh [--with-torch]
#   --with-torch   also run scripts/torch_reference.py on the same HDF5 file (after rnntrain,
#                  TORCH_THREADS=1 thread by default) and compare with that run's figures too
# Environment:
#   TOKENS_M=4        training tokens in units of 2^20 (a multiple of EVAL_M; fractions
#                     are fine, e.g. TOKENS_M=0.125 EVAL_M=0.0625 for a quick smoke test)
#   EVAL_M=2          validate every EVAL_M * 2^20 tokens
#   NP=2              MPI ranks            TORCH_THREADS=1   torch threads (--with-torch)
#   PRINT_EVERY=128   rnntrain progress    TIMEOUT=7200      seconds, per training run
#   SEED=1234         the recipe's seed; SEEDS="1234 1 2" runs one training per seed (and one
#                     PyTorch run per seed with --with-torch) and adds a per-seed table with
#                     mean and standard deviation (targets are checked on the first seed)
#   TORCH_INIT=1      rnntrain starts from the weights PyTorch itself wrote for the seed
#                     (torch_reference.py --save-init --steps 0, then train --init-from):
#                     bit for bit the same start (rnntrain's own draw for the seed equals it
#                     but for the embedding, within 2.5e-6: PyTorch's vector log/sin/cos)
#   TEXT=FILE         training text (default datasets/linux-kernel.txt, built if missing;
#                     the reference figures hold for that corpus only)
#   RNNTRAIN=PATH     binary (default build/rnntrain, built with CMake if missing)
#   NICE=-10          run the training under `nice -n -10` (root): less disturbed by other jobs
#   KEEP=1            keep the temp dir (metrics, model)
#   STRICT=1          exit 1 if a target fails
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

WITH_TORCH=0
for a in "$@"; do
    case $a in
        --with-torch) WITH_TORCH=1 ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "bench-quality: unknown argument '$a' (try --help)" >&2; exit 2 ;;
    esac
done

# The recipe (fixed: these are the issue's numbers)
MODEL=lstm LAYERS=2 HIDDEN=256 EMBED=256 BATCH=32 BPTT=64 LR=2e-3 CLIP=5 EVAL_BATCH=32
TOKENS_M=${TOKENS_M:-4}
EVAL_M=${EVAL_M:-2}
NP=${NP:-2}
TORCH_THREADS=${TORCH_THREADS:-1}
PRINT_EVERY=${PRINT_EVERY:-128}
TIMEOUT=${TIMEOUT:-7200}
RNNTRAIN=${RNNTRAIN:-$ROOT/build/rnntrain}
PY=/usr/bin/python3

die() { echo "bench-quality: error: $*" >&2; exit 1; }
say() { echo "== $*" >&2; }

SEEDS=${SEEDS:-${SEED:-1234}}
read -r -a SEED_LIST <<< "$SEEDS"
(( ${#SEED_LIST[@]} >= 1 )) || die "SEEDS is empty"
for s in "${SEED_LIST[@]}"; do [[ $s =~ ^[0-9]+$ ]] || die "SEEDS: '$s' is not a non-negative integer"; done
SEED=${SEED_LIST[0]}

TOK_PER_STEP=$((BATCH * BPTT))
# steps = tokens / (B*T); TOKENS_M and EVAL_M may be fractions (e.g. 0.125 for a smoke test)
to_steps() { awk -v m="$1" -v d="$TOK_PER_STEP" 'BEGIN { s = m * 1048576 / d;
    if (s >= 1 && s == int(s)) printf "%d", s }'; }
STEPS=$(to_steps "$TOKENS_M")
EVAL_EVERY=$(to_steps "$EVAL_M")
[[ -n "$STEPS" && -n "$EVAL_EVERY" ]] || die "TOKENS_M and EVAL_M must give whole numbers of $TOK_PER_STEP-token steps"
(( STEPS % EVAL_EVERY == 0 )) || die "TOKENS_M must be a multiple of EVAL_M"
(( BATCH % NP == 0 )) || die "NP must divide the batch ($BATCH)"

MPI_ENV=(OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 PMIX_MCA_gds=${PMIX_MCA_gds:-hash}
         OMPI_MCA_btl=self,vader,tcp OMPI_MCA_btl_tcp_if_include=lo OMPI_MCA_oob_tcp_if_include=lo)

TMP=$(mktemp -d "${TMPDIR:-/tmp}/bench-quality.XXXXXX")
cleanup() { if [[ -n "${KEEP:-}" ]]; then echo "bench-quality: kept $TMP" >&2; else rm -rf "$TMP"; fi; }
trap cleanup EXIT
trap 'exit 130' INT TERM

if [[ ! -x "$RNNTRAIN" ]]; then
    say "building rnntrain (cmake -S . -B build && cmake --build build -j2)"
    cmake -S . -B build >&2 && cmake --build build -j2 >&2 || die "build failed"
    RNNTRAIN=$ROOT/build/rnntrain
fi
cp "$RNNTRAIN" "$TMP/rnntrain"   # a concurrent rebuild cannot change it mid-run
# rnntrain and PyTorch run the same OpenBLAS kernels (scripts/blas-core.sh)
# shellcheck source=scripts/blas-core.sh
. "$ROOT/scripts/blas-core.sh"
BLAS_CORE=$(bench_blas_core "$TMP/rnntrain") || die "cannot run $RNNTRAIN --version"
BENCH_ENV=(env OPENBLAS_CORETYPE="$BLAS_CORE" OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1)
# NICE=-10 (root only): run the benchmarks at a higher priority than other people's jobs,
# so that a busy shared machine disturbs the figures less
if [[ -n "${NICE:-}" ]]; then BENCH_ENV=(nice -n "$NICE" "${BENCH_ENV[@]}"); fi
BIN_DATE=$(date -r "$RNNTRAIN" "+%F %T")
GIT_REV=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
if [[ -n "$(git status --porcelain -- src 2>/dev/null)" ]]; then GIT_REV="$GIT_REV+dirty-src"; fi

KERNEL=1
if [[ -z "${TEXT:-}" ]]; then
    TEXT=datasets/linux-kernel.txt
    if [[ ! -s "$TEXT" ]]; then
        say "building $TEXT (datasets/build-kernel-corpus.sh)"
        datasets/build-kernel-corpus.sh >&2 || die "cannot build the kernel corpus"
    fi
elif [[ "$(cd "$(dirname "$TEXT")" && pwd)/$(basename "$TEXT")" != "$ROOT/datasets/linux-kernel.txt" ]]; then
    KERNEL=0
    say "warning: TEXT=$TEXT is not the kernel corpus: the reference figures do not apply"
fi
[[ -s "$TEXT" ]] || die "no training text $TEXT"
"$TMP/rnntrain" prepare --input "$TEXT" --output "$TMP/data.h5" --vocab bytes >&2 \
    || die "rnntrain prepare failed"

say "config: $MODEL ${LAYERS}x$HIDDEN embed $EMBED, B=$BATCH T=$BPTT, adam lr $LR clip $CLIP, init pytorch${TORCH_INIT:+ (weights drawn by PyTorch for each seed, TORCH_INIT=1)}, seeds ${SEED_LIST[*]}; $STEPS steps = ${TOKENS_M}M tokens, eval every $EVAL_EVERY steps on valid x $EVAL_BATCH streams; $NP ranks; rnntrain $GIT_REV (binary $RNNTRAIN built $BIN_DATE); data $TEXT"
say "load before: $(cut -d' ' -f1-3 /proc/loadavg); nice ${NICE:-0}; OpenBLAS core $BLAS_CORE for rnntrain and PyTorch"

# --- the n-gram floor on this valid split -----------------------------------------------------
FLOOR_MEASURED=""
if "$PY" scripts/ngram_floor.py "$TMP/data.h5" --orders 1-6 --json > "$TMP/ngram.json"; then
    FLOOR_MEASURED=$("$PY" -c "import json,sys; b = json.load(open(sys.argv[1]))['best']
print('%.4f %d' % (b['nats'], b['order']))" "$TMP/ngram.json")
    say "n-gram floor (interpolated Witten-Bell, best order): ${FLOOR_MEASURED% *} nats/char, order ${FLOOR_MEASURED#* }"
else
    say "warning: scripts/ngram_floor.py failed (python3-h5py/numpy missing?): using the issue's 1.62 only"
fi

# --- rnntrain on NP ranks, one run per seed: writes $TMP/rn-SEED.txt ("tokens nats" lines) ----
RN_WALL=() RN_TPS=()
run_rnntrain() {
    local seed=$1
    local out=$TMP/rn-$seed
    local init=()
    if [[ -n "${TORCH_INIT:-}" ]]; then
        "$PY" scripts/torch_reference.py --data "$TMP/data.h5" --model "$MODEL" --layers "$LAYERS" \
            --hidden "$HIDDEN" --embed "$EMBED" --seed "$seed" --steps 0 \
            --save-init "$TMP/init-$seed.h5" >&2 || die "torch_reference.py --save-init failed (seed $seed)"
        init=(--init-from "$TMP/init-$seed.h5")
    fi
    local cmd=(mpirun -np "$NP" "$TMP/rnntrain" train --data "$TMP/data.h5" --out "$out"
        --log "$out.jsonl" --model "$MODEL" --layers "$LAYERS" --hidden "$HIDDEN"
        --embed "$EMBED" --batch "$BATCH" --bptt "$BPTT" --optim adam --lr "$LR" --clip "$CLIP"
        --init pytorch --seed "$seed" --steps "$STEPS" --eval-every "$EVAL_EVERY"
        --eval-batch "$EVAL_BATCH" --print-every "$PRINT_EVERY" --threads 1 "${init[@]}")
    say "rnntrain: ${cmd[*]}"
    local t0; t0=$(date +%s)
    "${BENCH_ENV[@]}" "${MPI_ENV[@]}" timeout -k 10 "$TIMEOUT" "${cmd[@]}" 2>&1 | tee "$out.stderr" >&2 \
        || die "rnntrain train failed (seed $seed)"
    RN_WALL+=($(( $(date +%s) - t0 )))
    # valid lines -> "tokens nats" (the final eval repeats the last --eval-every point: keep one)
    awk '/"kind": "valid"/ {
            t = $0; sub(/.*"tokens": /, "", t); sub(/[,}].*/, "", t)
            n = $0; sub(/.*"nats": /, "", n);   sub(/[,}].*/, "", n)
            v[t] = n; if (!(t in seen)) { seen[t] = 1; order[++k] = t } }
         END { for (i = 1; i <= k; i++) print order[i], v[order[i]] }' "$out.jsonl" > "$TMP/rn-$seed.txt"
    [[ -s "$TMP/rn-$seed.txt" ]] || die "no valid lines in $out.jsonl"
    RN_TPS+=("$(awk -F'"tokens_per_s": ' '/"kind": "train"/ { split($2, a, ","); n++; if (n > 1) { s += a[1]; m++ } }
              END { if (m) printf "%.0f", s / m }' "$out.jsonl")")
    rm -rf "$out"
}

# --- optional PyTorch run, same file, same seeds: writes $TMP/pt-SEED.txt --------------------
PT_WALL=()
run_torch() {
    local seed=$1
    : > "$TMP/pt-$seed.txt"
    local cmd=("$PY" scripts/torch_reference.py --data "$TMP/data.h5" --model "$MODEL" --layers "$LAYERS"
            --hidden "$HIDDEN" --embed "$EMBED" --batch "$BATCH" --bptt "$BPTT" --optim adam
            --lr "$LR" --clip "$CLIP" --seed "$seed" --steps "$STEPS" --eval-every "$EVAL_EVERY"
            --eval-batch "$EVAL_BATCH" --threads "$TORCH_THREADS" --log-every "$PRINT_EVERY" --json)
    say "PyTorch: ${cmd[*]}"
    local t0; t0=$(date +%s)
    if ${NICE:+nice -n "$NICE"} env OPENBLAS_CORETYPE="$BLAS_CORE" OPENBLAS_NUM_THREADS="$TORCH_THREADS" OMP_NUM_THREADS="$TORCH_THREADS" \
           timeout -k 10 "$TIMEOUT" "${cmd[@]}" > "$TMP/pt-$seed.json"; then
        PT_WALL+=($(( $(date +%s) - t0 )))
        "$PY" -c "import json,sys
for e in json.load(open(sys.argv[1]))['evals']: print(e['tokens'], e['nats'])" "$TMP/pt-$seed.json" > "$TMP/pt-$seed.txt"
    else
        say "torch_reference.py failed (seed $seed)"
    fi
}

for s in "${SEED_LIST[@]}"; do run_rnntrain "$s"; done
if (( WITH_TORCH )); then for s in "${SEED_LIST[@]}"; do run_torch "$s"; done; fi

# --- table for the first seed, with the targets ----------------------------------------------
STATUS=0
[[ -f "$TMP/pt-$SEED.txt" ]] || : > "$TMP/pt-$SEED.txt"   # no PyTorch run: an empty column
awk -v kernel="$KERNEL" -v rev="$GIT_REV" -v np="$NP" -v tps="${RN_TPS[0]}" -v rwall="${RN_WALL[0]}" \
    -v pwall="${PT_WALL[0]:-}" -v pthreads="$TORCH_THREADS" -v strict="${STRICT:-}" -v text="$TEXT" \
    -v seed="$SEED" -v measured="${FLOOR_MEASURED% *}" -v morder="${FLOOR_MEASURED#* }" '
FILENAME == ARGV[1] { rn[$1] = $2; tok[++k] = $1; next }
FILENAME == ARGV[2] { pt[$1] = $2; havept = 1; next }
function m(t) { return t / 1048576 }
BEGIN {
    # issue-3 reference: PyTorch 1.13, same recipe, kernel corpus (nats/char)
    ref[2] = 1.78; ref[4] = 1.62; ref[8] = 1.53; floor_ = 1.62
}
END {
    # the stricter of the issue figure and the floor measured on this split
    if (kernel && measured != "" && measured + 0 < floor_) floor_ = measured + 0
    printf "\nbench-quality  lstm 2x256, B=32 T=64, adam 2e-3, clip 5, seed %s  (rnntrain %s, %d ranks, %s tok/s mean, %d s wall",
           seed, rev, np, tps, rwall
    if (pwall != "") printf "; torch %d threads %d s wall", pthreads, pwall
    printf ")\ndata %s, byte vocab, 90/5/5; valid = whole valid split as 32 carried-state streams\n\n", text
    printf "%8s %12s %14s %14s %10s\n", "tokens", "rnntrain", "pytorch (run)", "pytorch (ref)", "rn - ref"
    fails = 0; checked2 = 0; below = 0; by4 = 0; best4 = ""
    for (i = 1; i <= k; i++) {
        t = tok[i]; M = m(t); Mi = int(M + 0.5)
        r = (kernel && (Mi in ref) && M == Mi) ? ref[Mi] : ""
        p = (t in pt) ? sprintf("%.4f", pt[t]) : "-"
        printf "%7.2fM %12.4f %14s %14s %10s\n", M, rn[t], p, (r == "" ? "-" : r),
               (r == "" ? "-" : sprintf("%+.4f", rn[t] - r))
        if (M <= 4 + 1e-9 && (best4 == "" || rn[t] < best4)) best4 = rn[t]
        if (M >= 4 - 1e-9) by4 = 1
        if (M == 2) { checked2 = 1; rn2 = rn[t]; pt2 = (t in pt) ? pt[t] : "" }
    }
    if (!kernel) { printf "\n(not the kernel corpus: no targets)\n"; exit 0 }
    printf "\nn-gram floor: issue 1.62 nats/char"
    if (measured != "") printf "; measured on this valid split %.4f (interpolated Witten-Bell %d-gram)", measured, morder
    printf "\ntargets:\n"
    if (checked2) {
        ok = rn2 <= ref[2] + 0.05; fails += !ok
        printf "  2M tokens: rnntrain %.4f <= PyTorch ref %.2f + 0.05        %s\n", rn2, ref[2], ok ? "PASS" : "FAIL"
        if (pt2 != "") {
            ok = rn2 <= pt2 + 0.05; fails += !ok
            printf "  2M tokens: rnntrain %.4f <= PyTorch (this run) %.4f + 0.05  %s\n", rn2, pt2, ok ? "PASS" : "FAIL"
        }
    } else printf "  2M tokens: no evaluation at 2M\n"
    if (by4) { ok = best4 < floor_; fails += !ok
        printf "  by 4M tokens: best valid %.4f < floor %.4f                %s\n", best4, floor_, ok ? "PASS" : "FAIL" }
    else printf "  by 4M tokens: run shorter than 4M tokens\n"
    if (strict != "" && fails) exit 1
}' "$TMP/rn-$SEED.txt" "$TMP/pt-$SEED.txt" || STATUS=$?

# --- with several seeds: one row per seed, mean and standard deviation ------------------------
if (( ${#SEED_LIST[@]} > 1 )); then
    for s in "${SEED_LIST[@]}"; do
        [[ -f "$TMP/pt-$s.txt" ]] || : > "$TMP/pt-$s.txt"
        awk -v seed="$s" 'FILENAME == ARGV[1] { rn[$1] = $2; tok[++k] = $1; next }
            { pt[$1] = $2 }
            END { for (i = 1; i <= k; i++) print seed, tok[i], rn[tok[i]], (tok[i] in pt) ? pt[tok[i]] : "-" }' \
            "$TMP/rn-$s.txt" "$TMP/pt-$s.txt"
    done | awk -v measured="${FLOOR_MEASURED% *}" '
    { key = $2; if (!(key in seen)) { seen[key] = 1; toks[++nt] = key }
      if (!($1 in sseen)) { sseen[$1] = 1; seeds[++ns] = $1 }
      rn[$1, key] = $3; pt[$1, key] = $4 }
    function fmt(v) { return (v == "-" || v == "") ? "-" : sprintf("%.4f", v) }
    function stats(arr, key,    i, n, s, q, v) {
        n = 0; s = 0; q = 0
        for (i = 1; i <= ns; i++) { v = arr[seeds[i], key]; if (v == "-" || v == "") continue; n++; s += v; q += v * v }
        if (n == 0) return "-"
        mean = s / n; sd = n > 1 ? sqrt((q - n * mean * mean) / (n - 1)) : 0
        return sprintf("%.4f +- %.4f (n=%d)", mean, sd < 0 ? 0 : sd, n)
    }
    END {
        printf "\nper seed: valid nats/char, rnntrain / PyTorch\n%8s", "seed"
        for (j = 1; j <= nt; j++) printf " %19.2fM", toks[j] / 1048576
        printf "\n"
        for (i = 1; i <= ns; i++) {
            printf "%8s", seeds[i]
            for (j = 1; j <= nt; j++) printf " %9s / %-9s", fmt(rn[seeds[i], toks[j]]), fmt(pt[seeds[i], toks[j]])
            printf "\n"
        }
        for (j = 1; j <= nt; j++) {
            printf "%7.2fM  rnntrain %s   PyTorch %s\n", toks[j] / 1048576, stats(rn, toks[j]), stats(pt, toks[j])
        }
        if (measured != "") printf "measured n-gram floor %.4f\n", measured
    }'
fi
exit $STATUS
