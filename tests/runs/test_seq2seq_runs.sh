#!/usr/bin/env bash
# seq2seq_runs: the seq2seq task through the binary, on a synthetic task (reverse a string
# of letters, written here) and the bundled digits as captions:
#   * --deterministic with --dropout 0.2, a bidirectional encoder and attention: bitwise
#     the same parameters on 1, 2 and 4 ranks; without --deterministic within 1e-5;
#   * --dropout 0 is bitwise the run without the option;
#   * resume: 10 steps, then resumed to 20, bitwise equal to 20 uninterrupted steps;
#   * learning: reversal with attention reaches a low sequence error rate; digit
#     captioning names most test digits exactly; eval --beam 1 equals greedy; predict
#     --input decodes text;
#   * bad settings and inputs are clear errors naming the option, file or line.
#   tests/runs/test_seq2seq_runs.sh RNNTRAIN_BIN MPIEXEC REPO_ROOT
set -uo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh" "$@"


# reversal: a random string of 1-6 letters a-h -> its letters reversed, space-separated
"$PY" - "$TMP/rev.tsv" <<'PYEOF'
import random, sys
r = random.Random(5)
with open(sys.argv[1], "w") as f:
    for _ in range(3000):
        s = "".join(r.choice("abcdefgh") for _ in range(r.randint(1, 6)))
        f.write(s + "\t" + " ".join(reversed(s)) + "\n")
PYEOF
"$BIN" prepare --pairs "$TMP/rev.tsv" --source chars --target symbols --output "$TMP/rev.h5" \
    >/dev/null || fail "prepare --pairs reversal"
bash "$ROOT/datasets/build-digit-captions.sh" "$TMP/cap.tsv" >/dev/null 2>&1 ||
    fail "build-digit-captions.sh"
"$BIN" prepare --pairs "$TMP/cap.tsv" --source features --target chars --output "$TMP/cap.h5" \
    >/dev/null || fail "prepare --pairs captions"
"$BIN" prepare --input "$ROOT/datasets/moby-dick.txt" --output "$TMP/lm.h5" >/dev/null ||
    fail "prepare lm"

json_field() { "$PY" -c 'import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])' "$1" "$2"; }

S2S="--data $TMP/rev.h5 --model lstm --layers 1 --hidden 16 --embed 8 --encoder gru:8,lstm:8
     --bidirectional --attention general --batch 8 --eval-batch 8 --ckpt-minutes 0
     --print-every 100 --clip 5"
for np in 1 2 4; do
    run "det$np" "$np" $S2S --lr 5e-3 --deterministic --micro-batch 2 --dropout 0.2 --steps 6 ||
        fail "deterministic on $np ranks: $(tail -3 "$TMP/det$np.log")"
    run "sgd$np" "$np" $S2S --optim sgd --lr 0.5 --dropout 0.2 --steps 6 ||
        fail "sgd on $np ranks: $(tail -3 "$TMP/sgd$np.log")"
done
for np in 2 4; do
    if r=$(params_cmp "$TMP/det$np/model.h5" "$TMP/det1/model.h5" 0); then
        ok "--deterministic --dropout 0.2: $np ranks bitwise equal to 1 rank"
    else fail "--deterministic --dropout 0.2, $np ranks: $r"; fi
    if r=$(params_cmp "$TMP/sgd$np/model.h5" "$TMP/sgd1/model.h5" 1e-5); then
        ok "sgd --dropout 0.2: $np ranks vs 1 rank: $r"
    else fail "sgd --dropout 0.2, $np ranks vs 1: $r"; fi
done
# the state space kinds: a Mamba encoder, an S5 decoder, attention; ranks bitwise
SSM="--data $TMP/rev.h5 --layers s5:16 --encoder mamba:8 --d-state 4 --bidirectional
     --attention general --embed 8 --batch 8 --eval-batch 8 --ckpt-minutes 0 --print-every 100
     --lr 5e-3 --clip 5 --deterministic --micro-batch 2 --dropout 0.1 --steps 5"
for np in 1 2; do
    run "ssm$np" "$np" $SSM || fail "mamba -> s5 on $np ranks: $(tail -3 "$TMP/ssm$np.log")"
done
if r=$(params_cmp "$TMP/ssm2/model.h5" "$TMP/ssm1/model.h5" 0); then
    ok "mamba encoder -> s5 decoder: 2 ranks bitwise equal to 1 rank"
else fail "mamba -> s5, 2 ranks: $r"; fi
out=$("$BIN" eval --model "$TMP/ssm1" --data "$TMP/rev.h5" --split test --beam 2 --json 2>&1)
[[ $out == *sequence_error_rate* ]] && ok "mamba -> s5: eval decodes (beam 2)" ||
    fail "mamba -> s5 eval: $out"

run nodrop 0 $S2S --lr 5e-3 --steps 6 || fail "run without --dropout"
run drop0 0 $S2S --lr 5e-3 --steps 6 --dropout 0 || fail "run with --dropout 0"
if r=$(params_cmp "$TMP/drop0/model.h5" "$TMP/nodrop/model.h5" 0); then
    ok "--dropout 0 bitwise equal to no dropout"
else fail "--dropout 0: $r"; fi
if r=$(params_cmp "$TMP/drop0/model.h5" "$TMP/det1/model.h5" 0); then
    fail "dropout 0.2 changed nothing (the check above would prove nothing)"
fi

run ref 0 $S2S --lr 5e-3 --dropout 0.1 --steps 20 || fail "reference run"
run split 0 $S2S --lr 5e-3 --dropout 0.1 --steps 10 && run split 0 $S2S --lr 5e-3 --dropout 0.1 --steps 20 --resume auto ||
    fail "split run: $(tail -3 "$TMP/split.log")"
if r=$(params_cmp "$TMP/split/model.h5" "$TMP/ref/model.h5" 0); then
    ok "10 steps + resume to 20 bitwise equal to 20 steps"
else fail "resume: $r"; fi

# learning: reversal with a bidirectional encoder and attention
run learn 2 --data "$TMP/rev.h5" --model lstm --layers 1 --hidden 48 --embed 16 --bidirectional \
    --attention general --batch 32 --eval-batch 32 --steps 700 --lr 1e-2 --clip 5 \
    --print-every 700 --ckpt-minutes 0 || fail "reversal training: $(tail -3 "$TMP/learn.log")"
out=$("$BIN" eval --model "$TMP/learn" --data "$TMP/rev.h5" --split test --json 2>&1)
ser=$(json_field "$out" sequence_error_rate 2>/dev/null || echo 1)
if "$PY" -c "import sys; sys.exit(0 if float('$ser') < 0.2 else 1)"; then
    ok "reversal: test sequence error rate $ser < 0.2"
else fail "reversal: test sequence error rate $ser (expected < 0.2): $out"; fi
out1=$("$BIN" eval --model "$TMP/learn" --data "$TMP/rev.h5" --split test --json --beam 1 2>&1)
[[ $out1 == "$out" ]] && ok "eval --beam 1 prints what greedy does" || fail "beam 1: $out1 vs $out"
out4=$("$BIN" eval --model "$TMP/learn" --data "$TMP/rev.h5" --split test --json --beam 4 2>&1)
ser4=$(json_field "$out4" sequence_error_rate 2>/dev/null || echo 1)
"$PY" -c "import sys; sys.exit(0 if float('$ser4') < 0.2 else 1)" &&
    ok "reversal: beam 4 sequence error rate $ser4" || fail "beam 4: $out4"
printf 'abc\nhgfe\n' > "$TMP/words.txt"
if "$BIN" predict --model "$TMP/learn" --input "$TMP/words.txt" --output "$TMP/pred.tsv" \
    >/dev/null 2>&1 && grep -q $'^abc\tc b a\t' "$TMP/pred.tsv"; then
    ok "predict --input: abc -> c b a"
else fail "predict --input: $(cat "$TMP/pred.tsv" 2>/dev/null)"; fi

# captioning: the 64 pixels condition the decoder, the name of the digit is generated
run cap 0 --data "$TMP/cap.h5" --model gru --layers 1 --hidden 64 --embed 16 --batch 32 \
    --eval-batch 30 --steps 800 --lr 3e-3 --clip 5 --print-every 800 --ckpt-minutes 0 ||
    fail "captioning training: $(tail -3 "$TMP/cap.log")"
out=$("$BIN" eval --model "$TMP/cap" --data "$TMP/cap.h5" --split test --json 2>&1)
ser=$(json_field "$out" sequence_error_rate 2>/dev/null || echo 1)
"$PY" -c "import sys; sys.exit(0 if float('$ser') <= 0.1 else 1)" &&
    ok "captioning: test exact-match rate $("$PY" -c "print(1 - $ser)")" ||
    fail "captioning: sequence error rate $ser: $out"

# bad settings and inputs
expect_error() { # expect_error WHAT PATTERN CMD...: non-zero exit, stderr matches PATTERN
    local what=$1 pat=$2; shift 2
    local err rc
    err=$("$@" 2>&1 >/dev/null); rc=$?
    if [[ $rc -ne 0 && $err == *$pat* ]]; then ok "error: $what"
    else fail "error: $what (rc $rc): $err"; fi
}
T0="$BIN train --out $TMP/bad --steps 1 --hidden 8 --batch 8 --eval-batch 8"
expect_error "--bidirectional on a language model" "future is not available" \
    $T0 --data "$TMP/lm.h5" --bidirectional
expect_error "--bidirectional on captions" "--bidirectional" $T0 --data "$TMP/cap.h5" --bidirectional
expect_error "--attention without an encoder" "--attention" $T0 --data "$TMP/cap.h5" --attention general
expect_error "--bptt on seq2seq" "trains each target whole" $T0 --data "$TMP/rev.h5" --bptt 3
expect_error "--attention dot with unequal widths" "use --attention general" \
    $T0 --data "$TMP/rev.h5" --bidirectional --attention dot
expect_error "--dropout 1" "--dropout" $T0 --data "$TMP/rev.h5" --dropout 1
expect_error "--encoder without a token source" "--encoder" $T0 --data "$TMP/cap.h5" --encoder 1
"$BIN" prepare --csv "$ROOT/datasets/digits.csv" --task classify --steps 8 --features 8 \
    --output "$TMP/digits.h5" >/dev/null || fail "prepare digits"
expect_error "--bidirectional with sequences cut by --bptt" "needs each sequence in one chunk" \
    $T0 --data "$TMP/digits.h5" --bidirectional --bptt 4
expect_error "--beam 0" "--beam" "$BIN" eval --model "$TMP/learn" --data "$TMP/rev.h5" --beam 0
printf 'abc\nab!c\n' > "$TMP/bad.txt"
expect_error "predict --input: unknown symbol" "line 2: symbol '!'" \
    "$BIN" predict --model "$TMP/learn" --input "$TMP/bad.txt" --output "$TMP/bad.tsv"
expect_error "eval on another task's data" "does not fit" \
    "$BIN" eval --model "$TMP/learn" --data "$TMP/cap.h5"
printf 'ab\tb a\nabc\n' > "$TMP/bad-cols.tsv"
expect_error "prepare --pairs: one column" "line 2 has 1 column" \
    "$BIN" prepare --pairs "$TMP/bad-cols.tsv" --output "$TMP/bad.h5"

echo "seq2seq_runs: $fails failure(s)"
[[ $fails -eq 0 ]]
