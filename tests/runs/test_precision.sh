#!/usr/bin/env bash
# precision_runs: `rnntrain train --precision fp32|bf16` through the binary, on a byte-level
# language model of Moby Dick with a 2-layer LSTM of width 64:
#   * fp32 and bf16, 50 steps: final training (and validation) loss within 1% of each other,
#     and the parameters are NOT bitwise equal (bf16 products are really in use); fp32 is the
#     default, bitwise; the log names the precision;
#   * --deterministic --precision bf16: bitwise the same parameters on 1, 2 and 4 ranks, and a
#     2-rank checkpoint resumed on 4 ranks; --threads 2 is bitwise --threads 1;
#   * a bf16 checkpoint (step 12) resumes with --precision fp32 to step 24, also on a CPU
#     without AVX512-BF16 (RNNTRAIN_CPU_HIDE), and an fp32 one in bf16: each a mix of both
#     (bitwise neither), with the validation loss of the uninterrupted runs within 1%; model
#     files and checkpoints of bf16 runs hold float32 datasets only, and `rnntrain info`
#     shows precision=bf16;
#   * resume in bf16: 12 steps, then resumed to 24, bitwise 24 uninterrupted steps;
#   * RNNTRAIN_CPU_HIDE=avx512_bf16 (as on a CPU without the feature): --precision bf16 exits
#     with status 2 naming --precision and avx512_bf16 (on 1 and 2 ranks), no output
#     directory; --precision fp32 trains, bitwise as without the variable; a hidden avx512f
#     is named instead; --precision fp16 is refused naming the option;
#   * eval --precision bf16 scores an fp32 model within 1% of eval in fp32, and is refused
#     on a CPU without the feature.
# On a CPU without avx512_bf16 (/proc/cpuinfo) only the refusals run, without the variable.
#   tests/runs/test_precision.sh RNNTRAIN_BIN MPIEXEC REPO_ROOT
set -uo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh" "$@"

head -c 120000 "$ROOT/datasets/moby-dick.txt" > "$TMP/text.txt"
"$BIN" prepare --input "$TMP/text.txt" --output "$TMP/lm.h5" >/dev/null || fail "prepare lm"
LM="--data $TMP/lm.h5 --model lstm --layers 2 --hidden 64 --batch 8 --bptt 16 --eval-batch 8
    --ckpt-minutes 0 --print-every 10"

# last record of a kind (train|valid) in a run's metrics.jsonl: its loss (train) or nats
last_loss() { # last_loss DIR KIND
    "$PY" - "$1/metrics.jsonl" "$2" <<'PYEOF'
import json, sys
recs = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
recs = [r for r in recs if r.get("kind") == sys.argv[2]]
print(recs[-1]["loss" if sys.argv[2] == "train" else "nats"])
PYEOF
}
# exit 0 if two numbers are within a relative tolerance of the second
within() { # within A B TOL
    "$PY" -c 'import sys; a, b, t = map(float, sys.argv[1:4]); sys.exit(0 if abs(a - b) <= t * abs(b) else 1)' "$@"
}
# exit 0 if every dataset of a model file or checkpoint is float32 (ints: vocab, counters),
# printing the float datasets' dtypes otherwise
all_float32() {
    "$PY" - "$1" <<'PYEOF'
import sys, h5py, numpy as np
bad, n = [], 0
def visit(name, obj):
    global n
    if isinstance(obj, h5py.Dataset):
        if obj.dtype.kind == "f":
            n += 1
            if obj.dtype != np.float32: bad.append("%s %s" % (name, obj.dtype))
with h5py.File(sys.argv[1], "r") as f:
    f.visititems(visit)
    if "params" not in f: bad.append("no /params")
print("%d float datasets%s" % (n, ", not float32: " + ", ".join(bad) if bad else ", all float32"))
sys.exit(1 if bad or n == 0 else 0)
PYEOF
}

# refused: status 2, the output naming every string given, no output directory
refused() { # refused NAME "ENV..." NP EXPECT1 EXPECT2 -- ARGS...
    local name=$1 envs=$2 np=$3 e1=$4 e2=$5; shift 6
    local launcher=()
    [[ $np == 0 ]] || launcher=("$MPI" -np "$np")
    out=$(env $envs timeout -k 5 120 "${launcher[@]}" "$BIN" train --out "$TMP/$name" $LM --steps 2 "$@" 2>&1)
    rc=$?
    if [[ $rc == 2 && $out == *"$e1"* && $out == *"$e2"* && ! -e $TMP/$name ]]; then
        ok "$name: refused (2): $(grep -m1 -- "$e1" <<< "$out" | cut -c1-150)"
    else
        fail "$name: expected status 2 naming '$e1' and '$e2' and no $TMP/$name, got ($rc): $out"
    fi
}

refused fp16 "" 0 "--precision" "fp16" -- --precision fp16

if ! grep -qw avx512_bf16 /proc/cpuinfo; then
    # as RNNTRAIN_CPU_HIDE acts below: the refusal without the variable
    # the message lists every feature of the four this CPU lacks, in this order
    lacks=
    for f in avx512f avx512bw avx512vl avx512_bf16; do
        grep -qw "$f" /proc/cpuinfo || lacks+="${lacks:+, }$f"
    done
    refused no-bf16 "" 0 "--precision" "does not offer $lacks;" -- --precision bf16
    run nobf16-fp32 0 $LM --steps 5 --precision fp32 || fail "fp32 on this CPU: $(tail -3 "$TMP/nobf16-fp32.log")"
    echo "precision_runs: this CPU lacks avx512_bf16: the bf16 runs are skipped"
    echo "precision_runs: $fails failure(s)"
    [[ $fails == 0 ]]
    exit
fi

# RNNTRAIN_CPU_HIDE: act as a CPU without the feature
refused hide "RNNTRAIN_CPU_HIDE=avx512_bf16" 0 "--precision" "does not offer avx512_bf16 " -- --precision bf16
refused hide-list "RNNTRAIN_CPU_HIDE=sse2,avx512_bf16" 0 "--precision" "does not offer avx512_bf16 " -- --precision bf16
refused hide-2ranks "RNNTRAIN_CPU_HIDE=avx512_bf16" 2 "--precision" "does not offer avx512_bf16 " -- --precision bf16
refused hide-f "RNNTRAIN_CPU_HIDE=avx512f" 0 "--precision" "does not offer avx512f " -- --precision bf16

# fp32 and bf16, 50 steps
run fp32 0 $LM --steps 50 --precision fp32 || fail "fp32 run: $(tail -3 "$TMP/fp32.log")"
run bf16 0 $LM --steps 50 --precision bf16 || fail "bf16 run: $(tail -3 "$TMP/bf16.log")"
run default 0 $LM --steps 50 || fail "run without --precision: $(tail -3 "$TMP/default.log")"
grep -q "| bf16 (AVX512-BF16) products |" "$TMP/bf16.log" && grep -q "| fp32 products |" "$TMP/fp32.log" \
    && grep -q "| fp32 products |" "$TMP/default.log" && ok "the logs name the precision" \
    || fail "the logs do not name the precision: $(grep -h products "$TMP"/{fp32,bf16,default}.log)"
for kind in train valid; do
    l32=$(last_loss "$TMP/fp32" $kind) l16=$(last_loss "$TMP/bf16" $kind)
    if within "$l16" "$l32" 0.01; then ok "final $kind loss: bf16 $l16, fp32 $l32 (within 1%)"
    else fail "final $kind loss: bf16 $l16, fp32 $l32: more than 1% apart"; fi
done
if r=$(params_cmp "$TMP/bf16/model.h5" "$TMP/fp32/model.h5" 0); then
    fail "bf16 run bitwise equal to the fp32 run: bf16 products not in use?"
else ok "bf16 and fp32 runs differ ($r)"; fi
if r=$(params_cmp "$TMP/default/model.h5" "$TMP/fp32/model.h5" 0); then
    ok "no --precision: bitwise --precision fp32"
else fail "no --precision vs --precision fp32: $r"; fi
# the variable changes nothing in fp32
if env RNNTRAIN_CPU_HIDE=avx512_bf16 "$BIN" train --out "$TMP/hide32" $LM --steps 50 \
        --precision fp32 > "$TMP/hide32.log" 2>&1 &&
        r=$(params_cmp "$TMP/hide32/model.h5" "$TMP/fp32/model.h5" 0); then
    ok "RNNTRAIN_CPU_HIDE=avx512_bf16 --precision fp32 trains, bitwise as without it"
else fail "RNNTRAIN_CPU_HIDE=avx512_bf16 --precision fp32: ${r:-} $(tail -3 "$TMP/hide32.log")"; fi
for f in "$TMP/bf16/model.h5" "$TMP/bf16/checkpoints/ckpt-0000000050.h5"; do
    if r=$(all_float32 "$f"); then ok "bf16 run's $(basename "$f"): $r"
    else fail "bf16 run's $(basename "$f"): $r"; fi
done
out=$("$BIN" info "$TMP/bf16" 2>&1); rc=$?
if [[ $rc == 0 && $out == *"precision=bf16"* ]]; then ok "info on the bf16 run shows precision=bf16"
else fail "info on the bf16 run: ($rc) $out"; fi

# --deterministic: bitwise on 1, 2 and 4 ranks; a 2-rank checkpoint resumed on 4 ranks
DET="$LM --deterministic --micro-batch 2 --precision bf16"
for np in 1 2 4; do
    run "det$np" "$np" $DET --steps 12 || fail "bf16 deterministic on $np ranks: $(tail -3 "$TMP/det$np.log")"
done
for np in 2 4; do
    if r=$(params_cmp "$TMP/det$np/model.h5" "$TMP/det1/model.h5" 0); then
        ok "--deterministic --precision bf16: $np ranks bitwise equal to 1 rank"
    else fail "--deterministic --precision bf16 on $np ranks: $r"; fi
done
run detx 2 $DET --steps 6 && run detx 4 $DET --steps 12 --resume auto \
    || fail "bf16 deterministic 2 ranks -> 4 ranks: $(tail -3 "$TMP/detx.log")"
if r=$(params_cmp "$TMP/detx/model.h5" "$TMP/det1/model.h5" 0); then
    ok "--deterministic bf16: 6 steps on 2 ranks resumed on 4 to 12: bitwise 12 steps on 1"
else fail "--deterministic bf16 2 -> 4 ranks resume: $r"; fi

# resume across precisions, and bitwise in bf16
run ref32 0 $LM --steps 24 --precision fp32 || fail "fp32 24 steps"
run ref16 0 $LM --steps 24 --precision bf16 || fail "bf16 24 steps"
run threads2 0 $LM --steps 24 --precision bf16 --threads 2 || fail "bf16 --threads 2: $(tail -3 "$TMP/threads2.log")"
if r=$(params_cmp "$TMP/threads2/model.h5" "$TMP/ref16/model.h5" 0); then
    ok "bf16 --threads 2 bitwise --threads 1"
else fail "bf16 --threads 2 vs 1: $r"; fi
run split16 0 $LM --steps 12 --precision bf16 && run split16 0 $LM --steps 24 --precision bf16 --resume auto \
    || fail "bf16 12 + 12 steps: $(tail -3 "$TMP/split16.log")"
if r=$(params_cmp "$TMP/split16/model.h5" "$TMP/ref16/model.h5" 0); then
    ok "bf16: 12 steps + resume to 24 bitwise equal to 24 steps"
else fail "bf16 resume: $r"; fi
cross() { # cross NAME FROM TO [ENV...]: 12 steps in FROM, resumed in TO to 24
    local name=$1 from=$2 to=$3; shift 3
    run "$name" 0 $LM --steps 12 --precision "$from" || { fail "$name: 12 steps in $from"; return; }
    [[ -f $TMP/$name/checkpoints/ckpt-0000000012.h5 ]] || { fail "$name: no checkpoint at step 12"; return; }
    if [[ $from == bf16 ]]; then
        if r=$(all_float32 "$TMP/$name/checkpoints/ckpt-0000000012.h5"); then ok "$name: bf16 checkpoint: $r"
        else fail "$name: bf16 checkpoint: $r"; fi
    fi
    env "$@" timeout -k 5 300 "$BIN" train --out "$TMP/$name" $LM --steps 24 --precision "$to" \
        --resume auto > "$TMP/$name.resume.log" 2>&1 || { fail "$name: resumed in $to: $(tail -3 "$TMP/$name.resume.log")"; return; }
    if grep -q "resumed from .*ckpt-0000000012.h5: step 12" "$TMP/$name.resume.log" &&
            grep -q "| $to .*products |" "$TMP/$name.resume.log"; then
        ok "$name: the $from checkpoint of step 12 resumed with --precision $to $*"
    else fail "$name: resume log: $(head -3 "$TMP/$name.resume.log")"; fi
    local same=""
    for ref in ref32 ref16; do
        params_cmp "$TMP/$name/model.h5" "$TMP/$ref/model.h5" 0 >/dev/null && same="$same $ref"
    done
    if [[ -z $same ]]; then ok "$name: bitwise neither uninterrupted run (a mix of both precisions)"
    else fail "$name: bitwise the uninterrupted run(s)$same: the precision did not change at the resume"; fi
    local v v32 v16
    v=$(last_loss "$TMP/$name" valid) v32=$(last_loss "$TMP/ref32" valid) v16=$(last_loss "$TMP/ref16" valid)
    if within "$v" "$v32" 0.01 && within "$v" "$v16" 0.01; then
        ok "$name: validation loss $v at step 24 (fp32 $v32, bf16 $v16)"
    else fail "$name: validation loss $v at step 24, uninterrupted fp32 $v32, bf16 $v16"; fi
}
cross bf16-to-fp32 bf16 fp32
cross bf16-to-fp32-hidden bf16 fp32 RNNTRAIN_CPU_HIDE=avx512_bf16
cross fp32-to-bf16 fp32 bf16

# eval --precision: the bf16 score of the fp32 model within 1% of its fp32 score; refused
# naming the option and the feature on a CPU without it
ev32=$("$BIN" eval --model "$TMP/fp32" --data "$TMP/lm.h5" --json 2>"$TMP/ev32.err") || fail "eval fp32: $(tail -2 "$TMP/ev32.err")"
ev16=$("$BIN" eval --model "$TMP/fp32" --data "$TMP/lm.h5" --json --precision bf16 2>"$TMP/ev16.err") || fail "eval bf16: $(tail -2 "$TMP/ev16.err")"
n32=$("$PY" -c 'import json,sys; print(json.loads(sys.argv[1])["nats"])' "$ev32" 2>/dev/null)
n16=$("$PY" -c 'import json,sys; print(json.loads(sys.argv[1])["nats"])' "$ev16" 2>/dev/null)
if [[ -n $n32 && -n $n16 && $n32 != "$n16" ]] && within "$n16" "$n32" 0.01; then
    ok "eval --precision bf16: $n16 nats, fp32 $n32 (within 1%, not equal)"
else fail "eval --precision bf16: '$n16' vs fp32 '$n32'"; fi
out=$(RNNTRAIN_CPU_HIDE=avx512_bf16 "$BIN" eval --model "$TMP/fp32" --data "$TMP/lm.h5" --precision bf16 2>&1)
rc=$?
if [[ $rc == 2 && $out == *--precision* && $out == *avx512_bf16* ]]; then ok "eval --precision bf16 refused without the feature (2)"
else fail "eval --precision bf16 without the feature: ($rc) $out"; fi

echo "precision_runs: $fails failure(s)"
[[ $fails == 0 ]]
