#!/usr/bin/env bash
# bench-ssm.sh - state space layer speed, rnntrain vs PyTorch side by side in ONE run,
# 1 thread each, alternating for ROUNDS rounds. For every model of MODELS it prints:
#   tokens/s of rnntrain and of scripts/torch_ssm_bench.py (PyTorch in its fastest CPU
#   form), their ratio, GFLOP/s, the fraction of the sgemm rate measured in the same round
#   (square 2048, 1 thread, before and after rnntrain: the higher), peak RSS of both.
# GFLOP/s counts what rnntrain prints in its train lines (3 x forward FLOPs of
# model_forward_flops_per_token: GEMMs, the scan and the convolution included); PyTorch
# is given the same FLOPs per token. Targets (issue): rnntrain >= 3x PyTorch tokens/s for
# mamba 2x256, mamba 4x512, s5 2x256; rnntrain >= 65% of the sgemm rate.
# See docs/ssm-benchmarks.md.
#
# Modes:
#   PERF=1     also `perf record` rnntrain for each model and split its time into
#              GEMM (OpenBLAS sgemm_*/cblas_*, rnntrain's packed kernel_RxC), the scan
#              (rnntrain's scan functions: Mamba scan_*, S5 s5_step_row/s5_back_row), the
#              rest (symbols of perf report)
#   RSS=1      peak RSS of rnntrain mamba 2x256 (and s5 2x256) on two corpus sizes: the
#              text, and the text 4 times over (flat in corpus size?)
#
# Knobs (environment):
#   MODELS="mamba:2x256 mamba:4x512 s5:2x256 lstm:2x256"  KIND:LAYERSxWIDTH; s5 entries are
#              skipped when this rnntrain has no s5 kind (its --model list)
#   ROUNDS=3   STEPS=30 (rnntrain; tokens/s = mean of the train lines after the first)
#   PRINT_EVERY=10   TORCH_STEPS=13 (torch_ssm_bench.py times all but its first 3)
#   BATCH=32 BPTT=64 LR=2e-3 CLIP=5 SEED=1234
#   TEXT=FILE  training text (default datasets/linux-kernel.txt if present, else
#              datasets/moby-dick.txt); SPLIT=0.998,0.001,0.001 (tiny valid split: the
#              end-of-run validation is in no figure but is in a PERF profile)
#   RNNTRAIN=PATH (default build/rnntrain)   NICE=N   SKIP_TORCH=1   KEEP=1
#   RN_EXTRA="--precision bf16"  more rnntrain train options (e.g. bf16 products, or
#              --flush-denormals)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

MODELS=${MODELS:-"mamba:2x256 mamba:4x512 s5:2x256 lstm:2x256"}
ROUNDS=${ROUNDS:-3}
STEPS=${STEPS:-30}
PRINT_EVERY=${PRINT_EVERY:-10}
TORCH_STEPS=${TORCH_STEPS:-13}
RN_EXTRA=${RN_EXTRA:-}
BATCH=${BATCH:-32}
BPTT=${BPTT:-64}
LR=${LR:-2e-3}
CLIP=${CLIP:-5}
SEED=${SEED:-1234}
SPLIT=${SPLIT:-0.998,0.001,0.001}
RNNTRAIN=${RNNTRAIN:-$ROOT/build/rnntrain}
PY=/usr/bin/python3

die() { echo "bench-ssm: error: $*" >&2; exit 1; }
say() { echo "== $*" >&2; }
(( STEPS / PRINT_EVERY >= 2 )) || die "STEPS/PRINT_EVERY must be >= 2 (the first train line is warm-up)"

TMP=$(mktemp -d "${TMPDIR:-/tmp}/bench-ssm.XXXXXX")
cleanup() { if [[ -n "${KEEP:-}" ]]; then echo "bench-ssm: kept $TMP" >&2; else rm -rf "$TMP"; fi; }
trap cleanup EXIT
trap 'exit 130' INT TERM

if [[ ! -x "$RNNTRAIN" ]]; then
    say "building rnntrain (cmake -S . -B build -DCMAKE_BUILD_TYPE=Release && cmake --build build -j1)"
    cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >&2 && cmake --build build -j1 >&2 || die "build failed"
    RNNTRAIN=$ROOT/build/rnntrain
fi
cp "$RNNTRAIN" "$TMP/rnntrain"   # a concurrent rebuild cannot change it mid-run
BIN_DATE=$(date -r "$RNNTRAIN" "+%F %T")

# shellcheck source=scripts/blas-core.sh
. "$ROOT/scripts/blas-core.sh"
BLAS_CORE=$(bench_blas_core "$TMP/rnntrain") || die "cannot run $RNNTRAIN --version"
BENCH_ENV=(env -u OPENBLAS_L2_SIZE OPENBLAS_CORETYPE="$BLAS_CORE" OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1)
if [[ -n "${NICE:-}" ]]; then BENCH_ENV=(nice -n "$NICE" "${BENCH_ENV[@]}"); fi

# the kinds this binary registers: its --model error message lists them
KINDS=$({ "$TMP/rnntrain" train --data /nonexistent --out "$TMP/x" --model '?' 2>&1 || true; } \
        | sed -n 's/.*expected one of \([a-z0-9|]*\).*/\1/p' | head -1)
[[ -n "$KINDS" ]] || die "cannot read the layer kinds from 'rnntrain train --model ?'"
has_kind() { [[ "|$KINDS|" == *"|$1|"* ]]; }

cc -O2 -o "$TMP/bench_sgemm" scripts/bench_sgemm.c $(pkg-config --cflags --libs openblas) \
    || die "cannot compile scripts/bench_sgemm.c"

if [[ -z "${TEXT:-}" ]]; then
    TEXT=datasets/linux-kernel.txt
    [[ -s "$TEXT" ]] || TEXT=datasets/moby-dick.txt
fi
[[ -s "$TEXT" ]] || die "no training text $TEXT"
"$TMP/rnntrain" prepare --input "$TEXT" --output "$TMP/data.h5" --vocab bytes --split "$SPLIT" \
    > "$TMP/prepare.txt" 2>&1 || { cat "$TMP/prepare.txt" >&2; die "rnntrain prepare failed"; }
cat "$TMP/prepare.txt" >&2

HAVE_TIME=0
if [[ -x /usr/bin/time ]] && /usr/bin/time -v true 2>/dev/null; then HAVE_TIME=1; fi
maxrss_mb() { awk -F': *' '/Maximum resident set size/ { printf "%.1f", $2 / 1024 }' "$1"; }
timed() { local out=$1; shift; if (( HAVE_TIME )); then /usr/bin/time -v -o "$out" "$@"; else "$@"; fi; }
sg_square() { sed -n '/"shape": "square"/s/.*"gflops": *\([0-9.]*\).*/\1/p' "$1"; }
maxof() { printf '%s\n' "$@" | awk 'NF && ($1 > m || m == "") { m = $1 } END { print m }'; }

GIT_REV=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
if [[ -n "$(git status --porcelain -- src 2>/dev/null)" ]]; then GIT_REV="$GIT_REV+dirty-src"; fi
CPU=$(lscpu | sed -n 's/^Model name: *//p' | head -1)
PT_CORE=$("${BENCH_ENV[@]}" "$PY" -c "import torch, ctypes
l = ctypes.CDLL('libopenblas.so.0'); l.openblas_get_corename.restype = ctypes.c_char_p
print(l.openblas_get_corename().decode())" 2>/dev/null || echo "?")
say "rnntrain $GIT_REV (binary $RNNTRAIN built $BIN_DATE), kinds $KINDS; CPU $CPU; OpenBLAS core $BLAS_CORE (PyTorch's OpenBLAS: $PT_CORE); data $TEXT split $SPLIT; B=$BATCH T=$BPTT adam lr $LR clip $CLIP; load $(cut -d' ' -f1-3 /proc/loadavg)"

# model spec KIND:LxW -> rnntrain options / torch_ssm_bench.py options
rn_opts() { local k=${1%%:*} s=${1#*:}; echo "--model $k --layers ${s%x*} --hidden ${s#*x}"; }

SELECTED=()
for m in $MODELS; do
    k=${m%%:*}
    if ! has_kind "$k"; then say "skipping $m: this rnntrain has no '$k' kind (kinds: $KINDS)"; continue; fi
    SELECTED+=("$m")
done
(( ${#SELECTED[@]} )) || die "no model to run"

run_rnntrain() {  # run_rnntrain SPEC DIR DATA [prefix...]: writes DIR/rn.{stderr,time}
    local spec=$1 dir=$2 data=$3; shift 3
    # shellcheck disable=SC2046
    timed "$dir/rn.time" "$@" "${BENCH_ENV[@]}" "$TMP/rnntrain" train --data "$data" --out "$dir/out" \
        $(rn_opts "$spec") --batch "$BATCH" --bptt "$BPTT" --optim adam --lr "$LR" --clip "$CLIP" \
        --seed "$SEED" --steps "$STEPS" --print-every "$PRINT_EVERY" --eval-batch 8 --threads 1 \
        --ckpt-minutes 0 --log "$dir/rn.jsonl" $RN_EXTRA > "$dir/rn.stderr" 2>&1 \
        || { cat "$dir/rn.stderr" >&2; die "rnntrain train failed ($spec)"; }
    rm -rf "$dir/out"
}
# mean tokens/s and GFLOP/s of the train lines after the first
rn_tps() { awk '/^step / { for (i = 1; i <= NF; i++) if ($(i) == "tok/s") { n++; if (n > 1) { s += $(i-1); m++ } } }
                END { if (m) printf "%.1f", s / m }' "$1"; }
rn_gfl() { awk '/^step / { for (i = 1; i <= NF; i++) if ($(i) == "GFLOP/s") { n++; if (n > 1) { s += $(i-1); m++ } } }
                END { if (m) printf "%.2f", s / m }' "$1"; }

# results: R_<field>[model index, round] in files, one line "model round field value"
RES=$TMP/results.txt
: > "$RES"
for (( round = 1; round <= ROUNDS; round++ )); do
    for i in "${!SELECTED[@]}"; do
        spec=${SELECTED[$i]}
        D=$TMP/r$round-$i
        mkdir -p "$D"
        "${BENCH_ENV[@]}" "$TMP/bench_sgemm" --json 2048 1 > "$D/sg-before.jsonl"
        say "round $round/$ROUNDS $spec: rnntrain $(rn_opts "$spec") ... --steps $STEPS"
        run_rnntrain "$spec" "$D" "$TMP/data.h5"
        "${BENCH_ENV[@]}" "$TMP/bench_sgemm" --json 2048 1 > "$D/sg-after.jsonl"
        tps=$(rn_tps "$D/rn.stderr") gfl=$(rn_gfl "$D/rn.stderr")
        sq=$(maxof "$(sg_square "$D/sg-before.jsonl")" "$(sg_square "$D/sg-after.jsonl")")
        rss=""; (( HAVE_TIME )) && rss=$(maxrss_mb "$D/rn.time")
        echo "$i $round rn_tps $tps" >> "$RES"; echo "$i $round rn_gfl $gfl" >> "$RES"
        echo "$i $round sgemm $sq" >> "$RES"; echo "$i $round rn_rss ${rss:-nan}" >> "$RES"
        say "  rnntrain $tps tok/s, $gfl GFLOP/s, sgemm $(sg_square "$D/sg-before.jsonl")/$(sg_square "$D/sg-after.jsonl"), RSS ${rss:-?} MB"
        if [[ -z "${SKIP_TORCH:-}" ]]; then
            k=${spec%%:*} s=${spec#*:}
            pcmd=("$PY" scripts/torch_ssm_bench.py --data "$TMP/data.h5" --model "$k" --layers "${s%x*}"
                  --hidden "${s#*x}" --batch "$BATCH" --bptt "$BPTT" --lr "$LR" --clip "$CLIP"
                  --seed "$SEED" --steps "$TORCH_STEPS" --no-eval --threads 1 --json)
            say "round $round/$ROUNDS $spec: ${pcmd[*]}"
            if timed "$D/pt.time" "${BENCH_ENV[@]}" "${pcmd[@]}" > "$D/pt.json" 2> "$D/pt.stderr"; then
                ptps=$("$PY" -c "import json,sys; print('%.1f' % json.load(open(sys.argv[1]))['tokens_per_s'])" "$D/pt.json")
                prss=""; (( HAVE_TIME )) && prss=$(maxrss_mb "$D/pt.time")
                echo "$i $round pt_tps $ptps" >> "$RES"; echo "$i $round pt_rss ${prss:-nan}" >> "$RES"
                say "  pytorch $ptps tok/s, RSS ${prss:-?} MB"
            else
                cat "$D/pt.stderr" >&2; say "torch_ssm_bench.py failed ($spec)"
            fi
        fi
    done
done

# --- table -----------------------------------------------------------------------------------
{
printf '\nbench-ssm  (rnntrain %s; CPU %s; OpenBLAS %s / PyTorch %s; 1 thread each; B=%d T=%d; %d rnntrain / %d torch steps; %d rounds; load after %s)\n' \
    "$GIT_REV" "$CPU" "$BLAS_CORE" "$PT_CORE" "$BATCH" "$BPTT" "$STEPS" "$TORCH_STEPS" "$ROUNDS" "$(cut -d' ' -f1-3 /proc/loadavg)"
awk -v names="${SELECTED[*]}" '
{ v[$1, $2, $3] = $4; if ($2 > R) R = $2 }
function median(a, n,    i, j, t) {
    for (i = 2; i <= n; i++) for (j = i; j > 1 && a[j - 1] > a[j]; j--) { t = a[j]; a[j] = a[j - 1]; a[j - 1] = t }
    return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
}
END {
    n = split(names, nm, " ")
    printf "%-12s %5s %7s %10s %10s %7s %9s %9s %8s %9s %9s\n", "model", "round", "sgemm", "rn tok/s", "pt tok/s", "ratio",
           "rn GF/s", "pt GF/s", "of sgemm", "rn RSS", "pt RSS"
    for (i = 1; i <= n; i++) {
        k = i - 1; nr = 0; np_ = 0
        for (r = 1; r <= R; r++) {
            rt = v[k, r, "rn_tps"]; g = v[k, r, "rn_gfl"]; sq = v[k, r, "sgemm"]; pt = v[k, r, "pt_tps"]
            fpt = (rt > 0) ? g * 1e9 / rt : 0
            ratio = (pt > 0) ? rt / pt : 0
            printf "%-12s %5d %7.1f %10.0f %10s %7s %9.1f %9s %7.1f%% %9s %9s\n", nm[i], r, sq, rt,
                   (pt > 0 ? sprintf("%.0f", pt) : "-"), (pt > 0 ? sprintf("%.2fx", ratio) : "-"), g,
                   (pt > 0 ? sprintf("%.1f", pt * fpt / 1e9) : "-"), 100 * g / sq, v[k, r, "rn_rss"],
                   (pt > 0 ? v[k, r, "pt_rss"] : "-")
            fr[++nr] = 100 * g / sq; if (pt > 0) ra[++np_] = ratio
        }
        printf "%-12s median: %.1f%% of sgemm", nm[i], median(fr, nr)
        if (np_) printf ", ratio %.2fx", median(ra, np_)
        printf "   (targets: >= 65%% of sgemm%s)\n", (nm[i] ~ /^lstm/) ? "" : ", >= 3x PyTorch"
        delete fr; delete ra
    }
}' "$RES"
} | tee "$TMP/table.txt"

# --- PERF=1: where rnntrain's time goes ------------------------------------------------------
if [[ -n "${PERF:-}" ]]; then
    command -v perf > /dev/null || die "PERF=1 needs perf (Debian package linux-perf)"
    echo
    echo "perf record -e cpu-clock -F 2000 of rnntrain train (--steps $STEPS, incl. start-up and the final validation on the tiny valid split):"
    printf "%-12s %8s %8s %8s   %s\n" "model" "sgemm" "scan" "rest" "largest of the rest"
    for spec in "${SELECTED[@]}"; do
        D=$TMP/perf-${spec//[:x]/-}
        mkdir -p "$D"
        say "perf: $spec"
        run_rnntrain "$spec" "$D" "$TMP/data.h5" perf record -q -e cpu-clock -F 2000 -o "$D/perf.data" --
        perf report -i "$D/perf.data" --sort symbol --stdio 2> /dev/null | grep '%' | grep -v '^#' > "$D/symbols.txt"
        awk '{ p = $1; sub(/%/, "", p); s = $NF; for (i = 1; i <= NF; i++) if ($i == "[.]" || $i == "[k]") s = $(i + 1)
               if (s ~ /sgemm|cblas|gemm|^kernel_[0-9]+x[0-9]+/) g += p; else if (s ~ /^scan_|^s5_step_row|^s5_back_row/) c += p
               else { r += p; if (nr < 4) top = top sprintf("%s %.1f%%; ", s, p); nr++ } }
             END { printf "%8.1f%% %7.1f%% %7.1f%%   %s\n", g, c, r, top }' "$D/symbols.txt" \
            | sed "s/^/$(printf '%-12s ' "$spec")/"
    done
fi

# --- RSS=1: peak RSS on two corpus sizes ----------------------------------------------------
if [[ -n "${RSS:-}" ]]; then
    "$TMP/rnntrain" prepare --input "$TEXT" "$TEXT" "$TEXT" "$TEXT" --output "$TMP/data4.h5" --vocab bytes \
        --split "$SPLIT" > "$TMP/prepare4.txt" 2>&1 || die "prepare (4x) failed"
    echo
    echo "peak RSS (/usr/bin/time -v) of rnntrain train, $STEPS steps, on $TEXT ($(stat -c %s "$TEXT") bytes) and on it 4 times over:"
    for spec in "${SELECTED[@]}"; do
        [[ $spec == lstm* ]] && continue
        for d in data data4; do
            D=$TMP/rss-${spec//[:x]/-}-$d
            mkdir -p "$D"
            run_rnntrain "$spec" "$D" "$TMP/$d.h5"
            printf "  %-12s %-6s %s MB\n" "$spec" "$d" "$(maxrss_mb "$D/rn.time")"
        done
    done
fi
