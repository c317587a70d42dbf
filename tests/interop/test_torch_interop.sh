#!/usr/bin/env bash
# interop_torch: rnntrain checkpoints and model files load into PyTorch and score the same.
#
#   tests/interop/test_torch_interop.sh RNNTRAIN_BIN REPO_ROOT
#
# For rnn, lstm and gru: prepare ~200 KB of datasets/moby-dick.txt, train a small 2-layer
# model a few dozen steps (checkpoint every 15 steps + the final one), then assert that
#   * scripts/torch_checkpoint.py (strict load_state_dict into the PyTorch Net) gives the
#     same validation loss as `rnntrain eval --json` within 1e-4 relative, on a checkpoint
#     and on the model directory, with the same --batch/--bptt (not the training ones, and
#     chosen so that the last chunk is short);
#   * --verify (the Python port of h5_hash) passes on the checkpoint, and fails (non-zero
#     exit) on a copy with one bit flipped inside a parameter dataset's data; `rnntrain
#     info` rejects that copy too.
# Shapes vary per cell (odd hidden/embed sizes give datasets whose byte size is not a
# multiple of 8, exercising h5_hash's tail bytes; gru uses a chars vocabulary).
# State space language models the same way (loaded into MambaLM/S5LM of
# scripts/ssm_reference.py): Mamba 2x24 with --d-state 4, tied head (checkpoint, verified,
# and model directory) and --untie (model directory); S5 (default, and no-conj-sym +
# bilinear + clip-eigs + GLU). Then a Mamba
# model without /params/backbone.layers.0.mixer.A_log is refused by `rnntrain eval` (exit 3)
# and by the script (exit 1), both naming A_log; the script also names a missing setting
# attribute, a wrong shape and the kinds of a mixed stack.
# Exit 77 (skipped) if /usr/bin/python3 (or $INTEROP_PYTHON) cannot import torch and h5py.
# The PyTorch evaluations run in one process (compare_evals.py: torch imports take seconds)
# plus one through the command line; about 20 s on an idle 2-core machine.
set -euo pipefail

# shellcheck source=setup.sh
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh" interop_torch "$@"
SCRIPT=$ROOT/scripts/torch_checkpoint.py
TOL=1e-4
[[ -f $SCRIPT ]] || { echo "FAIL: $SCRIPT is missing"; exit 1; }

fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
ok() { echo "ok:   $*"; }

head -c 200000 "$ROOT/datasets/moby-dick.txt" > "$TMP/text.txt"
"$BIN" prepare --input "$TMP/text.txt" --output "$TMP/bytes.h5" >/dev/null
"$BIN" prepare --input "$TMP/text.txt" --output "$TMP/chars.h5" --vocab chars >/dev/null

# torch is slow to import (seconds), so the PyTorch side of all comparisons runs in one
# process at the end: tests/interop/compare_evals.py calls torch_checkpoint.main(argv) with
# the same arguments the command line would get, for every line of $TMP/evals.txt.
: > "$TMP/evals.txt"

# cell data layers hidden embed train_batch train_bptt steps eval_batch eval_bptt
CASES=(
    "rnn  bytes 2 33 17 16 32 30 13 29"
    "lstm bytes 2 48 32 16 32 30 32 64"
    "gru  chars 2 40 21 8  24 30 24 50"
)

for c in "${CASES[@]}"; do
    read -r cell data L H E B T steps EB ET <<<"$c"
    out=$TMP/run-$cell
    if ! "$BIN" train --data "$TMP/$data.h5" --out "$out" --model "$cell" --layers "$L" \
        --hidden "$H" --embed "$E" --batch "$B" --bptt "$T" --steps "$steps" \
        --ckpt-every 15 --print-every "$steps" --eval-batch 8 >"$out.log" 2>&1; then
        fail "$cell: rnntrain train failed:"; cat "$out.log"; continue
    fi
    ckpt=$(ls "$out"/checkpoints/ckpt-*.h5 | sort | tail -1)
    mid=$(ls "$out"/checkpoints/ckpt-*.h5 | sort | head -1)
    [[ $ckpt == */ckpt-00000000$steps.h5 ]] || fail "$cell: final checkpoint missing ($ckpt)"

    for target in "$mid" "$ckpt" "$out"; do
        r=$("$BIN" eval --model "$target" --data "$TMP/$data.h5" --batch "$EB" --bptt "$ET" \
            --json) || { fail "$cell: rnntrain eval on $target failed"; continue; }
        verify=""
        [[ -f $target ]] && verify=--verify   # checkpoints: verify and evaluate in one go
        printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$cell ${target#"$TMP"/}" "$target" \
            "$TMP/$data.h5" "$EB" "$ET" "$verify" "$r" >> "$TMP/evals.txt"
    done
    LAST_CKPT=$ckpt LAST_DATA=$TMP/$data.h5 LAST_EB=$EB LAST_ET=$ET

    # --verify alone passes on the checkpoint ...
    if "$PY" "$SCRIPT" "$ckpt" --verify >"$TMP/v.out" 2>&1; then
        ok "$cell: --verify passes on $(basename "$ckpt")"
    else
        fail "$cell: --verify fails on an intact checkpoint:"; cat "$TMP/v.out"
    fi
    # ... and fails on a copy with one bit flipped inside a parameter's data
    bad=$TMP/flipped-$cell.h5
    cp "$ckpt" "$bad"
    "$PY" - "$bad" "rnn.weight_hh_l1" <<'PYEOF'
import sys, h5py
path, name = sys.argv[1], sys.argv[2]
with h5py.File(path, "r") as f:
    ds = f["params/" + name]
    off, size = ds.id.get_offset(), ds.id.get_storage_size()
assert off is not None and size > 0, "dataset has no contiguous storage"
pos = off + size // 2 + 1
with open(path, "r+b") as g:
    g.seek(pos)
    b = g.read(1)
    g.seek(pos)
    g.write(bytes([b[0] ^ 0x10]))
print("flipped bit 4 of byte %d (dataset %s at offset %d, %d bytes)" % (pos, name, off, size))
PYEOF
    if "$PY" "$SCRIPT" "$bad" --verify >"$TMP/v.out" 2>&1; then
        fail "$cell: --verify passes on a checkpoint with a flipped bit"
    elif grep -q "params/rnn.weight_hh_l1' fails its checksum" "$TMP/v.out"; then
        ok "$cell: --verify fails on the flipped copy: $(cat "$TMP/v.out")"
    else
        fail "$cell: --verify failed on the flipped copy without naming the dataset:"
        cat "$TMP/v.out"
    fi
    # the flipped copy must not be evaluated either when --verify is given
    if "$PY" "$SCRIPT" "$bad" --verify --data "$TMP/$data.h5" --json >/dev/null 2>&1; then
        fail "$cell: --verify --data evaluated a corrupted checkpoint"
    fi
    if "$BIN" info "$bad" >/dev/null 2>&1; then
        fail "$cell: rnntrain info accepts the flipped copy (C and Python disagree)"
    fi
done

# State space language models: all layers mamba (or all s5), evaluated by the reference's time
# loops (slower than nn.LSTM), so fewer targets: the final checkpoint (with --verify) and/or
# the model directory. A 30-step model remembers little across chunks: --bptt 7 gives the
# state carry many chunk boundaries (zeroing the carried conv state moves the tied model's
# loss by 2e-3 relative, the ssm state by 1.5e-4, both above TOL; at --bptt 29 by 7e-4 and
# 9e-5).
# label data layers width eval_batch eval_bptt targets(ckpt,dir) train flags...
SSM_CASES=(
    "mamba       bytes 2 24 13 7  ckpt,dir --model mamba --d-state 4"
    "mamba-untie bytes 2 24 13 29 dir      --model mamba --d-state 4 --untie"
)
SSM_CASES+=(
    "s5          chars 2 16 24 7  ckpt,dir --model s5 --d-state 8"
    "s5-variant  bytes 2 16 13 29 dir      --model s5 --d-state 6 --no-conj-sym --bilinear --clip-eigs --s5-glu"
)
for c in "${SSM_CASES[@]}"; do
    read -r label data L H EB ET targets flags <<<"$c"
    out=$TMP/run-$label
    # shellcheck disable=SC2086  # flags: several options
    if ! "$BIN" train --data "$TMP/$data.h5" --out "$out" --layers "$L" --hidden "$H" \
        --batch 16 --bptt 32 --steps 30 --ckpt-every 15 --print-every 30 --eval-batch 8 \
        $flags >"$out.log" 2>&1; then
        fail "$label: rnntrain train failed:"; cat "$out.log"; continue
    fi
    list=()
    [[ $targets == *ckpt* ]] && list+=("$out/checkpoints/ckpt-0000000030.h5")
    [[ $targets == *dir* ]] && list+=("$out")
    for target in "${list[@]}"; do
        r=$("$BIN" eval --model "$target" --data "$TMP/$data.h5" --batch "$EB" --bptt "$ET" \
            --json) || { fail "$label: rnntrain eval on $target failed"; continue; }
        verify=""
        [[ -f $target ]] && verify=--verify
        printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$label ${target#"$TMP"/}" "$target" \
            "$TMP/$data.h5" "$EB" "$ET" "$verify" "$r" >> "$TMP/evals.txt"
    done
done

# The PyTorch side: every checkpoint/model above, same --batch/--bptt, within TOL relative
"$PY" "$ROOT/tests/interop/compare_evals.py" "$SCRIPT" "$TOL" "$TMP/evals.txt" \
    || fails=$((fails + 1))
# and once through the command line as users run it (the last gru checkpoint)
r=$("$BIN" eval --model "$LAST_CKPT" --data "$LAST_DATA" --batch "$LAST_EB" --bptt "$LAST_ET" --json)
if t=$("$PY" "$SCRIPT" "$LAST_CKPT" --data "$LAST_DATA" --batch "$LAST_EB" --bptt "$LAST_ET" \
    --json --verify); then
    printf 'cli %s\t-\t-\t-\t-\t-\t%s\t%s\n' "${LAST_CKPT#"$TMP"/}" "$r" "$t" > "$TMP/cli.txt"
    "$PY" "$ROOT/tests/interop/compare_evals.py" "$SCRIPT" "$TOL" "$TMP/cli.txt" \
        || fails=$((fails + 1))
else
    fail "torch_checkpoint.py (command line) on $LAST_CKPT failed"
fi

# Clear errors, exit 1, on bad input
expect_error() { # label pattern args...
    local label=$1 pattern=$2; shift 2
    local rc=0
    "$PY" "$SCRIPT" "$@" >"$TMP/e.out" 2>&1 || rc=$?
    if [[ $rc -eq 1 ]] && grep -q -- "$pattern" "$TMP/e.out"; then
        ok "error ($label): $(tail -1 "$TMP/e.out")"
    else
        fail "error ($label): exit $rc, expected 1 and '$pattern':"; cat "$TMP/e.out"
    fi
}
expect_error "missing file" "no such file" "$TMP/nope.h5" --data "$TMP/bytes.h5"
expect_error "data as model" "expected 'rnntrain-model' or 'rnntrain-checkpoint'" \
    "$TMP/bytes.h5" --data "$TMP/bytes.h5"
expect_error "vocabulary mismatch" "does not match data file" \
    "$TMP/run-lstm" --data "$TMP/chars.h5"
expect_error "model file has no checksums" "carry no checksums" "$TMP/run-lstm" --verify
head -c 4000 "$TMP/run-lstm/model.h5" > "$TMP/truncated.h5"
expect_error "truncated file" "truncated.h5" "$TMP/truncated.h5" --data "$TMP/bytes.h5"

# Mamba files the loaders must refuse, naming what is wrong; the tied model has no lm_head,
# the untied one has (h5py only: no torch import)
MAMBA=$TMP/run-mamba/model.h5
if [[ -f $MAMBA && -f $TMP/run-mamba-untie/model.h5 ]]; then
    "$BIN" train --data "$TMP/bytes.h5" --out "$TMP/run-mixed" --layers mamba:24,lstm:24 \
        --steps 0 >/dev/null 2>&1 || fail "mixed stack: rnntrain train --steps 0 failed"
    for k in no-alog no-setting bad-shape; do cp "$MAMBA" "$TMP/mamba-$k.h5"; done
    "$PY" - "$TMP" <<'PYEOF' || fail "mamba: the tied/untied heads or the damaged copies"
import sys, h5py
tmp = sys.argv[1]
for run, want in (("run-mamba", False), ("run-mamba-untie", True)):
    with h5py.File("%s/%s/model.h5" % (tmp, run), "r") as f:
        have = "lm_head.weight" in f["params"]
        assert have == want and int(f.attrs["tied_head"]) == (not want), (run, have)
with h5py.File(tmp + "/mamba-no-alog.h5", "r+") as f:
    del f["params/backbone.layers.0.mixer.A_log"]
with h5py.File(tmp + "/mamba-no-setting.h5", "r+") as f:
    del f["layers/l1"].attrs["d_conv"]
with h5py.File(tmp + "/mamba-bad-shape.h5", "r+") as f:
    w = f["params/backbone.layers.1.mixer.x_proj.weight"][()]
    del f["params/backbone.layers.1.mixer.x_proj.weight"]
    f["params/backbone.layers.1.mixer.x_proj.weight"] = w[1:]
PYEOF
    rc=0
    "$BIN" eval --model "$TMP/mamba-no-alog.h5" --data "$TMP/bytes.h5" >"$TMP/e.out" 2>&1 || rc=$?
    if [[ $rc -eq 3 ]] && grep -q "backbone.layers.0.mixer.A_log" "$TMP/e.out"; then
        ok "rnntrain eval refuses the copy without A_log (exit 3): $(tail -1 "$TMP/e.out")"
    else
        fail "rnntrain eval without A_log: exit $rc, expected 3 naming A_log:"; cat "$TMP/e.out"
    fi
    expect_error "mamba without A_log" "missing \['backbone.layers.0.mixer.A_log'\]" \
        "$TMP/mamba-no-alog.h5" --data "$TMP/bytes.h5"
    expect_error "mamba setting missing" "/layers/l1 has no attribute 'd_conv'" \
        "$TMP/mamba-no-setting.h5" --data "$TMP/bytes.h5"
    expect_error "mamba shape mismatch" \
        "'/params/backbone.layers.1.mixer.x_proj.weight' should have shape (10, 48), found (9, 48)" \
        "$TMP/mamba-bad-shape.h5" --data "$TMP/bytes.h5"
    expect_error "mixed stack" "different kinds, mamba and lstm (mamba:24,lstm:24)" \
        "$TMP/run-mixed" --data "$TMP/bytes.h5"
fi

if (( fails > 0 )); then
    echo "interop_torch: $fails failure(s)"
    exit 1
fi
echo "interop_torch: all passed"
