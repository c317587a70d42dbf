#!/usr/bin/env bash
# model_runs: models through the binary as users run them, on 1, 2 and 4 ranks: the state
# space kinds (mamba, s5), a 2-layer LSTM with --dropout 0.3 (whose masks are keyed by
# global stream, so they must not depend on the rank count either) and one updated every 5
# tokens with --bptt 16 (--bptt-step: windows overlap, the state is carried at a window's
# start; language-model checks only):
#   * a byte-level language model trained with SGD on 1, 2 and 4 ranks: the same
#     parameters within 1e-5 relative (only the reduction order differs);
#   * --deterministic: bitwise the same parameters on 1, 2 and 4 ranks (language model and
#     classify);
#   * resume: 12 steps, then resumed to 24, bitwise equal to 24 uninterrupted steps; a run
#     killed with SIGKILL right after a checkpoint resumes to the same bits; a checkpoint of
#     2 ranks resumes on 1 (within 1e-4);
#   * the tasks: classify (8x8 digits, one pixel row per step), regress (the adding
#     problem, datasets/adding.py) and generate train and evaluate; the LM samples;
#   * --dropout 0 is bitwise the run without dropout; --bptt-step 16 with --bptt 16 is
#     bitwise plain TBPTT; a checkpoint is not resumed with another --bptt-step;
#   * bad settings are clear errors naming the option.
#   tests/runs/test_model_runs.sh RNNTRAIN_BIN MPIEXEC REPO_ROOT
set -uo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh" "$@"


KINDS="mamba s5 lstm-dropout lstm-window"

head -c 120000 "$ROOT/datasets/moby-dick.txt" > "$TMP/text.txt"
"$BIN" prepare --input "$TMP/text.txt" --output "$TMP/lm.h5" >/dev/null || fail "prepare lm"
"$BIN" prepare --csv "$ROOT/datasets/digits.csv" --task classify --steps 8 --features 8 \
    --output "$TMP/digits.h5" >/dev/null || fail "prepare digits"
"$PY" "$ROOT/datasets/adding.py" --T 30 --seed 3 --train 256 --valid 64 --test 64 \
    "$TMP/adding.h5" >/dev/null || fail "adding.py"
"$BIN" prepare --csv "$ROOT/datasets/digits.csv" --task generate --steps 8 --features 8 \
    --output "$TMP/gen.h5" >/dev/null || fail "prepare generate"


small() { # small model options per case
    case $1 in
        mamba) echo "--model mamba --layers 2 --hidden 16 --d-state 4" ;;
        s5) echo "--model s5 --layers 2 --hidden 16 --d-state 8" ;;
        lstm-dropout) echo "--model lstm --layers 2 --hidden 16 --dropout 0.3" ;;
        lstm-window) echo "--model lstm --layers 2 --hidden 16 --bptt-step 5" ;; # with --bptt 16
    esac
}
lm_only() { [[ $1 == lstm-window ]]; } # --bptt-step: language models only

for k in $KINDS; do
    M=$(small "$k")
    LM="--data $TMP/lm.h5 $M --batch 8 --bptt 16 --eval-batch 8 --ckpt-minutes 0 --print-every 100"
    # 1 vs 2 vs 4 ranks (sgd: the parameters move by lr x gradient, no normalisation)
    for np in 1 2 4; do
        run "$k-sgd$np" "$np" $LM --optim sgd --lr 0.5 --steps 6 || fail "$k: sgd on $np ranks: $(tail -3 "$TMP/$k-sgd$np.log")"
    done
    for np in 2 4; do
        if r=$(params_cmp "$TMP/$k-sgd$np/model.h5" "$TMP/$k-sgd1/model.h5" 1e-5); then
            ok "$k: $np ranks vs 1 rank: $r"
        else fail "$k: $np ranks vs 1 rank: $r"; fi
    done
    # --deterministic: bitwise on 1, 2, 4 ranks
    for np in 1 2 4; do
        run "$k-det$np" "$np" $LM --deterministic --micro-batch 2 --steps 6 || fail "$k: deterministic $np ranks"
    done
    for np in 2 4; do
        if r=$(params_cmp "$TMP/$k-det$np/model.h5" "$TMP/$k-det1/model.h5" 0); then
            ok "$k: --deterministic $np ranks bitwise equal to 1 rank"
        else fail "$k: --deterministic $np ranks: $r"; fi
    done
    SEQ="--data $TMP/digits.h5 $M --batch 8 --eval-batch 8 --ckpt-minutes 0 --print-every 100"
    if ! lm_only "$k"; then
    for np in 1 2 4; do
        run "$k-cdet$np" "$np" $SEQ --deterministic --micro-batch 2 --steps 5 || fail "$k: classify deterministic $np ranks: $(tail -3 "$TMP/$k-cdet$np.log")"
    done
    for np in 2 4; do
        if r=$(params_cmp "$TMP/$k-cdet$np/model.h5" "$TMP/$k-cdet1/model.h5" 0); then
            ok "$k: classify --deterministic $np ranks bitwise equal to 1 rank"
        else fail "$k: classify --deterministic $np ranks: $r"; fi
    done
    # and without --deterministic (one micro-batch per rank, whose slots depend on the
    # rank count: dropout masks follow the sequence, not its slot)
    for np in 1 2 4; do
        run "$k-csgd$np" "$np" $SEQ --optim sgd --lr 0.5 --steps 5 || fail "$k: classify sgd $np ranks"
    done
    for np in 2 4; do
        if r=$(params_cmp "$TMP/$k-csgd$np/model.h5" "$TMP/$k-csgd1/model.h5" 1e-5); then
            ok "$k: classify $np ranks vs 1 rank: $r"
        else fail "$k: classify $np ranks vs 1 rank: $r"; fi
    done
    fi
    # resume: 12 + 12 == 24 bitwise
    run "$k-ref" 0 $LM --steps 24 || fail "$k: reference run"
    run "$k-split" 0 $LM --steps 12 && run "$k-split" 0 $LM --steps 24 --resume auto || fail "$k: split run"
    if r=$(params_cmp "$TMP/$k-split/model.h5" "$TMP/$k-ref/model.h5" 0); then
        ok "$k: 12 steps + resume to 24 bitwise equal to 24 steps"
    else fail "$k: resume: $r"; fi
    # SIGKILL after the step-8 checkpoint, resume
    "$BIN" train --out "$TMP/$k-kill" $LM --steps 24 --ckpt-every 4 > "$TMP/$k-kill.log" 2>&1 &
    pid=$!
    for _ in $(seq 1 600); do
        [[ -f $TMP/$k-kill/checkpoints/ckpt-0000000008.h5 ]] && break
        sleep 0.05
    done
    kill -9 "$pid" 2>/dev/null; wait "$pid" 2>/dev/null
    run "$k-kill" 0 $LM --steps 24 --ckpt-every 4 --resume auto || fail "$k: resume after kill -9"
    if r=$(params_cmp "$TMP/$k-kill/model.h5" "$TMP/$k-ref/model.h5" 0); then
        ok "$k: killed with SIGKILL after a checkpoint, resumed: bitwise equal"
    else fail "$k: kill -9 resume: $r"; fi
    # 2 ranks -> 1 rank
    run "$k-x" 2 $LM --steps 12 && run "$k-x" 0 $LM --steps 24 --resume auto || fail "$k: cross-rank resume"
    if r=$(params_cmp "$TMP/$k-x/model.h5" "$TMP/$k-ref/model.h5" 1e-4); then
        ok "$k: checkpoint of 2 ranks resumed on 1: $r"
    else fail "$k: cross-rank resume: $r"; fi
    # every task
    if lm_only "$k"; then
        "$BIN" eval --model "$TMP/$k-ref" --data "$TMP/lm.h5" > "$TMP/$k-lm.eval" 2>&1 \
            && ok "$k: the language model evaluates" || fail "$k: LM eval"
        continue
    fi
    run "$k-cls" 0 $SEQ --steps 20 || fail "$k: classify: $(tail -3 "$TMP/$k-cls.log")"
    "$BIN" eval --model "$TMP/$k-cls" --data "$TMP/digits.h5" > "$TMP/$k-cls.eval" 2>&1 \
        && grep -q "accuracy" "$TMP/$k-cls.eval" && ok "$k: classify trains and evaluates" \
        || fail "$k: classify eval: $(cat "$TMP/$k-cls.eval")"
    run "$k-add" 0 --data "$TMP/adding.h5" $M --steps 20 --batch 16 --ckpt-minutes 0 \
        || fail "$k: regress (adding): $(tail -3 "$TMP/$k-add.log")"
    "$BIN" eval --model "$TMP/$k-add" --data "$TMP/adding.h5" > "$TMP/$k-add.eval" 2>&1 \
        && ok "$k: regress on the adding problem trains and evaluates" \
        || fail "$k: regress eval: $(cat "$TMP/$k-add.eval")"
    run "$k-gen" 0 --data "$TMP/gen.h5" $M --steps 10 --batch 8 --bptt 4 --ckpt-minutes 0 \
        && ok "$k: generate (conditioned on the label) trains" \
        || fail "$k: generate: $(tail -3 "$TMP/$k-gen.log")"
    "$BIN" eval --model "$TMP/$k-ref" --data "$TMP/lm.h5" > "$TMP/$k-lm.eval" 2>&1 || fail "$k: LM eval"
    s=$("$BIN" sample --model "$TMP/$k-ref" --length 40 --seed 1 2>&1) && [[ ${#s} -ge 30 ]] \
        && ok "$k: sample from the language model" || fail "$k: sample: $s"
done

# --dropout 0 is the run without dropout, bit for bit
run "drop0" 0 --data "$TMP/lm.h5" --model lstm --layers 2 --hidden 16 --batch 8 --bptt 16 \
    --ckpt-minutes 0 --steps 8 --dropout 0 || fail "dropout 0 run"
run "drop-none" 0 --data "$TMP/lm.h5" --model lstm --layers 2 --hidden 16 --batch 8 --bptt 16 \
    --ckpt-minutes 0 --steps 8 || fail "run without dropout"
if r=$(params_cmp "$TMP/drop0/model.h5" "$TMP/drop-none/model.h5" 0); then
    ok "--dropout 0 bitwise equal to no dropout"
else fail "--dropout 0 vs none: $r"; fi
if r=$(params_cmp "$TMP/lstm-dropout-ref/model.h5" "$TMP/drop-none/model.h5" 1e-6); then
    fail "--dropout 0.3 changed nothing: $r"
else ok "--dropout 0.3 changes the training"; fi

# --bptt-step equal to --bptt is plain TBPTT, bit for bit
run "win-eq" 0 --data "$TMP/lm.h5" --model lstm --layers 2 --hidden 16 --batch 8 --bptt 16 \
    --ckpt-minutes 0 --steps 8 --bptt-step 16 || fail "--bptt-step 16 run"
if r=$(params_cmp "$TMP/win-eq/model.h5" "$TMP/drop-none/model.h5" 0); then
    ok "--bptt-step 16 --bptt 16 bitwise equal to plain TBPTT"
else fail "--bptt-step = --bptt vs plain: $r"; fi
# a checkpoint of one --bptt-step is not resumed with another
out=$("$BIN" train --out "$TMP/lstm-window-ref" --data "$TMP/lm.h5" --model lstm --layers 2 \
    --hidden 16 --batch 8 --bptt 16 --bptt-step 4 --eval-batch 8 --steps 30 --resume auto 2>&1)
rc=$?
if [[ $rc == 2 && $out == *"--bptt-step 4"* ]]; then ok "resume with another --bptt-step refused: $out"
else fail "resume with another --bptt-step: ($rc) $out"; fi

# bad settings: clear errors naming the option
bad() { # bad EXPECT ARGS...
    local expect=$1; shift
    out=$("$BIN" train --data "$TMP/lm.h5" --out "$TMP/bad" --steps 1 "$@" 2>&1)
    rc=$?
    if [[ $rc != 0 && $out == *"$expect"* ]]; then ok "refused ($rc): $out"
    else fail "expected an error with '$expect' for $*, got ($rc): $out"; fi
}
bad "--d-state" --model mamba --d-state 0
bad "--expand" --model mamba --expand 0
bad "--d-conv" --model mamba --d-conv 1
bad "--dt-rank" --model mamba --hidden 16 --dt-rank 40
bad "--d-state 7" --model s5 --d-state 7
bad "--ssm-blocks" --model s5 --d-state 8 --ssm-blocks 3
bad "--d-state 10000" --model s5 --hidden 16 --d-state 10000
bad "--dropout" --dropout 1
bad "--dt-min: the initial step range [0.5, 0.1] is empty" --model s5 --dt-min 0.5
bad "--dt-max: the initial step range [0.001, 0.0001] is empty" --model mamba --dt-max 1e-4
bad "--dropout" --dropout -0.1
bad "--dropout" --dropout 1.5
bad "--bptt-step" --bptt 16 --bptt-step 17
bad "--dropout" --dropout 0.99999999
bad "--init uniform" --model s5 --init uniform
out=$("$BIN" train --data "$TMP/digits.h5" --out "$TMP/bad" --steps 1 --bptt-step 2 --bptt 4 2>&1); rc=$?
if [[ $rc != 0 && $out == *"--bptt-step"* ]]; then ok "refused ($rc): $out"
else fail "--bptt-step on a sequence task: ($rc) $out"; fi
# a Mamba model file without A_log
cp -r "$TMP/mamba-ref" "$TMP/noalog"
"$PY" -c "import h5py,sys; f=h5py.File(sys.argv[1],'r+'); del f['params/backbone.layers.0.mixer.A_log']" \
    "$TMP/noalog/model.h5"
out=$("$BIN" eval --model "$TMP/noalog" --data "$TMP/lm.h5" 2>&1); rc=$?
if [[ $rc == 3 && $out == *A_log* ]]; then ok "model file without A_log refused: $out"
else fail "model file without A_log: ($rc) $out"; fi
out=$("$BIN" info "$TMP/noalog" 2>&1); rc=$?
if [[ $rc == 3 && $out == *A_log* ]]; then ok "info on it (a run directory) names A_log"
else fail "info on a model file without A_log: ($rc) $out"; fi
for k in $KINDS; do
    out=$("$BIN" info "$TMP/$k-ref" 2>&1); rc=$?
    if [[ $rc == 0 && $out == *"layer 1"* && $out == *"parameters in all"* ]]; then
        ok "$k: info describes the run directory's model"
    else fail "$k: info: ($rc) $out"; fi
done

echo "model_runs: $fails failure(s)"
[[ $fails == 0 ]]
