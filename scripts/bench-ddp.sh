#!/usr/bin/env bash
# bench-ddp.sh - issue-4 target, side by side in ONE run: data-parallel rnntrain against
# PyTorch DistributedDataParallel (gloo), 2 processes x 1 thread each, same model
# (LSTM 2x512, embed 512, byte vocabulary), same per-rank batch (32 streams, T=64),
# same data file:
#   (a) scripts/torch_ddp.py --procs 2 --threads 1 --batch-per-rank 32   (TORCH_STEPS steps;
#       total tokens/s over the steps after its 3 warm-up steps)
#   (b) mpirun -np 2 rnntrain train --batch 64 ...                         (STEPS steps;
#       tokens/s = mean of metrics.jsonl train lines' tokens_per_s, the first line excluded;
#       "comm wait" = mean comm_wait share of the same lines)
# and prints both, the ratio rnntrain/DDP (target >= 1.5x) and the load average around every
# run.  The machine is shared: compare the ratio of one round, and use ROUNDS=2 when it is
# noisy.  See docs/scaling.md, "PyTorch DDP comparison".
#
# Both run the same OpenBLAS kernels: OPENBLAS_CORETYPE is set to the core rnntrain runs when
# it is unset (scripts/blas-core.sh), OPENBLAS_NUM_THREADS=1, OMP_NUM_THREADS=1.  mpirun uses Open MPI's default
# binding (2 ranks on 2 cores: one core each); torch_ddp.py does not bind.
#
# Knobs (environment):
#   ROUNDS=1         repeat (a)(b) this many times (interleaved); every round is reported
#   STEPS=40 PRINT_EVERY=10   rnntrain steps / --print-every (STEPS/PRINT_EVERY >= 2)
#   TORCH_STEPS=20   torch_ddp.py steps
#   TEXT=FILE        training text (default datasets/linux-kernel.txt if present, else
#                    datasets/moby-dick.txt); prepared with `rnntrain prepare` into a temp dir
#   SPLIT=0.99,0.005,0.005    prepare split (a small valid split keeps rnntrain's end-of-run
#                    validation short; it is not part of any speed figure)
#   RNNTRAIN=PATH    binary (default build/rnntrain; copied, so a rebuild cannot change it)
#   OUT=DIR          keep logs and summary.json there (default: a temp dir, removed)
#   MPI_BIND=KIND    mpirun --bind-to KIND (default: Open MPI's default, core for 2 ranks)
#   STRICT=1         exit 1 if the ratio of any round is below 1.5
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

ROUNDS=${ROUNDS:-1}
STEPS=${STEPS:-40}
PRINT_EVERY=${PRINT_EVERY:-10}
TORCH_STEPS=${TORCH_STEPS:-20}
SPLIT=${SPLIT:-0.99,0.005,0.005}
RNNTRAIN=${RNNTRAIN:-$ROOT/build/rnntrain}
PY=/usr/bin/python3
NP=2 BPR=32 BPTT=64 LAYERS=2 HIDDEN=512

die() { echo "bench-ddp: error: $*" >&2; exit 1; }
say() { echo "== $*" >&2; }
load() { cut -d' ' -f1-3 /proc/loadavg; }

(( STEPS / PRINT_EVERY >= 2 )) || die "STEPS/PRINT_EVERY must be >= 2 (the first train line is warm-up)"
(( TORCH_STEPS > 3 )) || die "TORCH_STEPS must be > 3 (3 warm-up steps are excluded)"
[[ -x "$RNNTRAIN" ]] || die "no rnntrain at $RNNTRAIN (cmake -S . -B build && cmake --build build -j2)"
command -v mpirun >/dev/null || die "mpirun not found (apt-get install openmpi-bin)"
"$PY" -c "import torch, h5py" 2>/dev/null || die "$PY needs python3-torch and python3-h5py"

# --- environment: same for both ----------------------------------------------------------
for v in $(env | sed -n 's/^\(OMPI_MCA_[A-Za-z0-9_]*\)=.*/\1/p'); do unset "$v"; done
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export PMIX_MCA_gds=${PMIX_MCA_gds:-hash} # see scripts/run-main-job.sh
export OMPI_MCA_btl=self,vader,tcp OMPI_MCA_btl_tcp_if_include=lo OMPI_MCA_oob_tcp_if_include=lo
# shellcheck source=scripts/blas-core.sh
. "$ROOT/scripts/blas-core.sh"
BLAS_CORE=$(bench_blas_core "$RNNTRAIN") || die "cannot run $RNNTRAIN --version"
BENCH_ENV=(env OPENBLAS_CORETYPE="$BLAS_CORE" OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1)

if [[ -n "${OUT:-}" ]]; then
    mkdir -p "$OUT"; TMP=$(cd "$OUT" && pwd)
else
    TMP=$(mktemp -d "${TMPDIR:-/tmp}/bench-ddp.XXXXXX")
    trap 'rm -rf "$TMP"' EXIT
fi
trap 'exit 130' INT TERM

cp "$RNNTRAIN" "$TMP/rnntrain"
BIN_DATE=$(date -r "$RNNTRAIN" "+%F %T")
GIT_REV=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
if [[ -n "$(git status --porcelain -- src 2>/dev/null)" ]]; then GIT_REV="$GIT_REV+dirty-src"; fi

# --- data ------------------------------------------------------------------------------------
if [[ -z "${TEXT:-}" ]]; then
    TEXT=datasets/linux-kernel.txt
    [[ -s "$TEXT" ]] || TEXT=datasets/moby-dick.txt
fi
[[ -s "$TEXT" ]] || die "no training text $TEXT"
"$TMP/rnntrain" prepare --input "$TEXT" --output "$TMP/data.h5" --vocab bytes --split "$SPLIT" \
    > "$TMP/prepare.txt" 2>&1 || { cat "$TMP/prepare.txt" >&2; die "rnntrain prepare failed"; }
cat "$TMP/prepare.txt" >&2

say "config: lstm ${LAYERS}x$HIDDEN embed $HIDDEN, $NP processes x 1 thread, $BPR streams per rank (global $((NP * BPR))), T=$BPTT, adam 2e-3, clip 5; data $TEXT (split $SPLIT); rnntrain $GIT_REV (binary built $BIN_DATE)"
say "machine: $(nproc) cpus ($(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n1)); $(mpirun --version 2>/dev/null | head -n1); load at start $(load)"

PT_CMD=("$PY" scripts/torch_ddp.py --data "$TMP/data.h5" --procs "$NP" --threads 1
        --model lstm --layers "$LAYERS" --hidden "$HIDDEN" --batch-per-rank "$BPR"
        --bptt "$BPTT" --lr 2e-3 --clip 5 --steps "$TORCH_STEPS" --log-every 5 --json)

PT=() RN=() CW=() LD=() PT_CORE="" RN_CORE=""
for (( round = 1; round <= ROUNDS; round++ )); do
    R=$TMP/r$round
    mkdir -p "$R"
    l0=$(load)
    # --- (a) PyTorch DDP ------------------------------------------------------------------
    say "round $round/$ROUNDS (a) PyTorch DDP, load $l0: ${PT_CMD[*]}"
    timeout -k 10 900 "${BENCH_ENV[@]}" "${PT_CMD[@]}" > "$R/ddp.json" 2> >(tee "$R/ddp.log" >&2) \
        || die "torch_ddp.py failed"
    pt=$("$PY" -c "import json,sys; print('%.1f' % json.load(open(sys.argv[1]))['tokens_per_s'])" "$R/ddp.json")
    PT_CORE=$("$PY" -c "import json,sys; print(json.load(open(sys.argv[1]))['openblas_core'])" "$R/ddp.json")
    say "PyTorch DDP total tokens/s: $pt"
    l1=$(load)

    # --- (b) rnntrain on 2 MPI ranks ------------------------------------------------------
    RN_CMD=(timeout -k 10 900 "${BENCH_ENV[@]}" mpirun -np "$NP" ${MPI_BIND:+--bind-to "$MPI_BIND"} "$TMP/rnntrain" train
            --data "$TMP/data.h5" --out "$R/rnn-out" --batch $((NP * BPR)) --bptt "$BPTT"
            --model lstm --layers "$LAYERS" --hidden "$HIDDEN" --steps "$STEPS"
            --print-every "$PRINT_EVERY" --ckpt-minutes 0 --threads 1)
    say "round $round/$ROUNDS (b) rnntrain, load $l1: ${RN_CMD[*]}"
    "${RN_CMD[@]}" > "$R/rnn.log" 2>&1 || { cat "$R/rnn.log" >&2; die "rnntrain train failed"; }
    cat "$R/rnn.log" >&2
    read -r rn cw < <(awk '/"kind": "train"/ {
            n++; if (n == 1) next
            split($0, a, "\"tokens_per_s\": "); split(a[2], b, ","); s += b[1]
            split($0, c, "\"comm_wait\": "); split(c[2], d, ","); w += d[1]; m++ }
        END { if (m) printf "%.1f %.4f\n", s / m, w / m }' "$R/rnn-out/metrics.jsonl") || true
    [[ -n "${rn:-}" ]] || die "fewer than 2 train lines in $R/rnn-out/metrics.jsonl"
    RN_CORE=$(sed -n 's/.*BLAS threads* (\([^)]*\)).*/\1/p' "$R/rnn.log" | head -1)
    say "rnntrain tokens/s (mean of train lines after the first): $rn, comm wait $(awk -v w="$cw" 'BEGIN { printf "%.1f%%", 100 * w }')"
    PT+=("$pt") RN+=("$rn") CW+=("$cw") LD+=("$l0 / $l1 / $(load)")
done

# --- summary ---------------------------------------------------------------------------------
{
    echo
    echo "bench-ddp  lstm ${LAYERS}x$HIDDEN V=256, $NP processes x 1 thread, B=$BPR per rank, T=$BPTT; rnntrain $GIT_REV; $TORCH_STEPS DDP / $STEPS rnntrain steps"
    echo "OpenBLAS core: torch $PT_CORE, rnntrain ${RN_CORE:-?}"
    printf "%-6s %14s %16s %8s %10s   %s\n" round "DDP tok/s" "rnntrain tok/s" ratio "comm wait" "load avg (before a / before b / after)"
    fails=0
    for (( i = 0; i < ROUNDS; i++ )); do
        awk -v r=$((i + 1)) -v p="${PT[i]}" -v n="${RN[i]}" -v w="${CW[i]}" -v l="${LD[i]}" \
            'BEGIN { printf "%-6d %14.0f %16.0f %7.2fx %9.1f%%   %s\n", r, p, n, n / p, 100 * w, l }'
        awk -v p="${PT[i]}" -v n="${RN[i]}" 'BEGIN { exit !(n / p >= 1.5) }' || fails=$((fails + 1))
    done
    if (( ROUNDS > 1 )); then
        printf '%s\n' "${PT[*]}" "${RN[*]}" | awk '
            NR == 1 { n = split($0, p, " "); for (i = 1; i <= n; i++) if (p[i] > bp) bp = p[i] }
            NR == 2 { split($0, r, " "); for (i = 1; i <= n; i++) { if (r[i] > br) br = r[i]; q[i] = r[i] / p[i] } }
            END { for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (q[j] < q[i]) { t = q[i]; q[i] = q[j]; q[j] = t }
                  med = (n % 2) ? q[(n + 1) / 2] : (q[n / 2] + q[n / 2 + 1]) / 2
                  printf "best round of each: DDP %.0f, rnntrain %.0f tok/s, ratio %.2fx; median of the round ratios %.2fx\n", bp, br, br / bp, med }'
    fi
    echo "target: rnntrain >= 1.5x PyTorch DDP total tokens/s -> $((ROUNDS - fails))/$ROUNDS rounds PASS"
} | tee "$TMP/summary.txt"
"$PY" - "$TMP/summary.json" "${PT[*]}" "${RN[*]}" "${CW[*]}" "$PT_CORE" "${RN_CORE:-}" "$GIT_REV" <<'EOF'
import json, sys
out, pt, rn, cw, pcore, rcore, rev = sys.argv[1:]
pt, rn, cw = ([float(x) for x in s.split()] for s in (pt, rn, cw))
json.dump({"rounds": [{"ddp_tokens_per_s": p, "rnntrain_tokens_per_s": r, "ratio": r / p,
                       "rnntrain_comm_wait": w} for p, r, w in zip(pt, rn, cw)],
           "openblas_core": {"torch": pcore, "rnntrain": rcore}, "rnntrain_rev": rev},
          open(out, "w"), indent=1)
EOF
[[ -n "${OUT:-}" ]] && echo "bench-ddp: logs and summary in $TMP" >&2
if [[ -n "${STRICT:-}" && $fails -gt 0 ]]; then exit 1; fi
exit 0
