#!/usr/bin/env bash
# bench-ssm-quality.sh - state space layer quality: valid nats/char of rnntrain and of
# scripts/torch_ssm_bench.py (PyTorch) trained the same way, beside LSTM 2x256.
#
#   moby    datasets/moby-dick.txt, 90/5/5 split, 2^20 training tokens (512 steps of
#           B=32 x T=64), validated at the end on the whole valid split (32 streams)
#   kernel  the kernel corpus (datasets/linux-kernel.txt, built by
#           datasets/build-kernel-corpus.sh if missing; or KERNEL_TEXT=FILE), 90/5/5,
#           validated at 2M and 4M tokens (2^20 tokens = 1M; 1024 and 2048 steps)
# Recipe for every run: byte vocabulary, B=32, T=64, Adam lr 2e-3, clip 5, seed 1234,
# 1 rank, 1 thread; rnntrain --init pytorch (its default: mamba_ssm's init for Mamba,
# PyTorch's for LSTM), torch_ssm_bench.py its own init of the same distributions.
# Targets (issue): moby mamba 2x256 <= 1.62, s5 2x256 <= 1.93 (rnntrain); kernel at 2M and
# 4M: rnntrain within 0.03 of PyTorch for mamba and s5.
#
# Usage:  scripts/bench-ssm-quality.sh [RUN...]
#   RUN = IMPL:MODEL:CORPUS, IMPL rn|pt, MODEL mamba|s5|lstm, CORPUS moby|kernel;
#   default: every combination, in the order
#     rn:mamba:moby pt:mamba:moby rn:lstm:moby pt:lstm:moby rn:s5:moby pt:s5:moby
#     rn:mamba:kernel pt:mamba:kernel rn:s5:kernel pt:s5:kernel rn:lstm:kernel pt:lstm:kernel
#   rn:s5:* runs are skipped when the binary has no s5 kind.
# Each run appends one JSON line per validation to OUT/results.jsonl (impl, model, corpus,
# tokens, nats, wall seconds, the exact command) and keeps its log in OUT; a table of
# everything in OUT/results.jsonl is printed at the end (so runs can be done in pieces).
# Knobs: OUT=out/ssm-quality  RNNTRAIN=build/rnntrain  NICE=5  KERNEL_M=4 (last kernel
# eval, in 2^20 tokens; evals every 2M)  TIMEOUT=14400 (per run)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
OUT=${OUT:-$ROOT/out/ssm-quality}
RNNTRAIN=${RNNTRAIN:-$ROOT/build/rnntrain}
NICE=${NICE:-5}
KERNEL_M=${KERNEL_M:-4}
TIMEOUT=${TIMEOUT:-14400}
PY=/usr/bin/python3
die() { echo "bench-ssm-quality: error: $*" >&2; exit 1; }
say() { echo "== $*" >&2; }

RUNS=("$@")
if (( ${#RUNS[@]} == 0 )); then
    RUNS=(rn:mamba:moby pt:mamba:moby rn:lstm:moby pt:lstm:moby rn:s5:moby pt:s5:moby
          rn:mamba:kernel pt:mamba:kernel rn:s5:kernel pt:s5:kernel rn:lstm:kernel pt:lstm:kernel)
fi
mkdir -p "$OUT"
[[ -x "$RNNTRAIN" ]] || die "no rnntrain binary at $RNNTRAIN (cmake -S . -B build -DCMAKE_BUILD_TYPE=Release && cmake --build build -j1)"
BIN=$OUT/rnntrain-$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
cp "$RNNTRAIN" "$BIN"
# shellcheck source=scripts/blas-core.sh
. "$ROOT/scripts/blas-core.sh"
BLAS_CORE=$(bench_blas_core "$BIN") || die "cannot run $BIN --version"
ENVV=(nice -n "$NICE" env -u OPENBLAS_L2_SIZE OPENBLAS_CORETYPE="$BLAS_CORE" OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1)
KINDS=$({ "$BIN" train --data /nonexistent --out "$OUT/x" --model '?' 2>&1 || true; } \
        | sed -n 's/.*expected one of \([a-z0-9|]*\).*/\1/p' | head -1)
CPU=$(lscpu | sed -n 's/^Model name: *//p' | head -1)
say "CPU $CPU; OpenBLAS core $BLAS_CORE; rnntrain kinds $KINDS; out $OUT"

data_for() {  # data_for CORPUS -> path of the HDF5 file (made once)
    local c=$1 text
    if [[ $c == moby ]]; then text=datasets/moby-dick.txt
    else
        text=${KERNEL_TEXT:-datasets/linux-kernel.txt}
        if [[ ! -s $text ]]; then datasets/build-kernel-corpus.sh "$text" >&2 || die "no kernel corpus"; fi
    fi
    if [[ ! -s "$OUT/$c.h5" ]]; then
        "$BIN" prepare --input "$text" --output "$OUT/$c.h5" --vocab bytes >&2 || die "prepare $text failed"
    fi
    echo "$OUT/$c.h5"
}

record() {  # record IMPL MODEL CORPUS WALL CMD-STRING < "tokens nats" lines
    local impl=$1 model=$2 corpus=$3 wall=$4 cmd=$5
    while read -r tok nats; do
        "$PY" -c 'import json,sys
i,m,c,t,n,w,cmd,cpu,core = sys.argv[1:]
print(json.dumps({"impl": i, "model": m, "corpus": c, "tokens": int(t), "nats": float(n),
                  "wall_s": int(w), "cpu": cpu, "blas_core": core, "command": cmd}))' \
            "$impl" "$model" "$corpus" "$tok" "$nats" "$wall" "$cmd" "$CPU" "$BLAS_CORE" >> "$OUT/results.jsonl"
    done
}

for run in "${RUNS[@]}"; do
    IFS=: read -r impl model corpus <<< "$run"
    [[ $impl =~ ^(rn|pt)$ && $model =~ ^(mamba|s5|lstm)$ && $corpus =~ ^(moby|kernel)$ ]] \
        || die "bad run '$run' (IMPL:MODEL:CORPUS, rn|pt, mamba|s5|lstm, moby|kernel)"
    if [[ $impl == rn && "|$KINDS|" != *"|$model|"* ]]; then say "skip $run: rnntrain has no $model kind"; continue; fi
    data=$(data_for "$corpus")
    if [[ $corpus == moby ]]; then steps=512 every=0
    else steps=$(( KERNEL_M * 512 )) every=1024; fi
    tag=$impl-$model-$corpus
    if [[ $impl == rn ]]; then
        cmd=("$BIN" train --data "$data" --out "$OUT/$tag" --log "$OUT/$tag.jsonl" --model "$model"
             --layers 2 --hidden 256 --batch 32 --bptt 64 --optim adam --lr 2e-3 --clip 5
             --seed 1234 --steps "$steps" --eval-every "$every" --eval-batch 32 --print-every 64
             --threads 1 --ckpt-minutes 0)
        rm -rf "$OUT/$tag" "$OUT/$tag.jsonl"
    else
        cmd=("$PY" scripts/torch_ssm_bench.py --data "$data" --model "$model" --layers 2
             --hidden 256 --batch 32 --bptt 64 --lr 2e-3 --clip 5 --seed 1234 --steps "$steps"
             --eval-every "$every" --eval-batch 32 --log-every 64 --threads 1 --json)
    fi
    say "$run: ${ENVV[*]} ${cmd[*]}"
    t0=$(date +%s)
    if [[ $impl == rn ]]; then
        "${ENVV[@]}" timeout -k 10 "$TIMEOUT" "${cmd[@]}" > "$OUT/$tag.log" 2>&1 || { tail "$OUT/$tag.log" >&2; die "$run failed"; }
        wall=$(( $(date +%s) - t0 ))
        awk '/"kind": "valid"/ { t = $0; sub(/.*"tokens": /, "", t); sub(/[,}].*/, "", t)
             n = $0; sub(/.*"nats": /, "", n); sub(/[,}].*/, "", n); if (!(t in s)) { s[t] = 1; print t, n } }' \
            "$OUT/$tag.jsonl" | record "$impl" "$model" "$corpus" "$wall" "${ENVV[*]} ${cmd[*]}"
        rm -rf "${OUT:?}/$tag"
    else
        "${ENVV[@]}" timeout -k 10 "$TIMEOUT" "${cmd[@]}" > "$OUT/$tag.json" 2> "$OUT/$tag.log" || { tail "$OUT/$tag.log" >&2; die "$run failed"; }
        wall=$(( $(date +%s) - t0 ))
        "$PY" -c 'import json,sys
for e in json.load(open(sys.argv[1]))["evals"]: print(e["tokens"], e["nats"])' "$OUT/$tag.json" \
            | record "$impl" "$model" "$corpus" "$wall" "${ENVV[*]} ${cmd[*]}"
    fi
    say "$run done in $wall s: $(tail -1 "$OUT/results.jsonl")"
done

# --- table of everything recorded (the newest line per impl/model/corpus/tokens) -----------------
"$PY" - "$OUT/results.jsonl" <<'EOF'
import json, sys
rows = {}
for line in open(sys.argv[1]):
    r = json.loads(line)
    rows[(r["corpus"], r["tokens"], r["model"], r["impl"])] = r
print("\nbench-ssm-quality: valid nats/char, 2x256 models, B=32 T=64, adam 2e-3, clip 5, seed 1234")
print("%-7s %7s %-6s %10s %10s %9s  %s" % ("corpus", "tokens", "model", "rnntrain", "pytorch", "rn - pt", "target"))
keys = sorted({(c, t, m) for c, t, m, _ in rows})
for c, t, m in keys:
    rn, pt = rows.get((c, t, m, "rn")), rows.get((c, t, m, "pt"))
    rv = rn["nats"] if rn else None
    pv = pt["nats"] if pt else None
    tgt = ""
    if c == "moby" and m in ("mamba", "s5") and rv is not None:
        lim = 1.62 if m == "mamba" else 1.93
        tgt = "<= %.2f %s" % (lim, "PASS" if rv <= lim else "FAIL")
    if c == "kernel" and m in ("mamba", "s5") and rv is not None and pv is not None:
        tgt = "|rn - pt| <= 0.03 %s" % ("PASS" if abs(rv - pv) <= 0.03 else "FAIL")
    print("%-7s %6.2fM %-6s %10s %10s %9s  %s" % (
        c, t / 2 ** 20, m, "%.4f" % rv if rv is not None else "-",
        "%.4f" % pv if pv is not None else "-",
        "%+.4f" % (rv - pv) if rv is not None and pv is not None else "-", tgt))
EOF
