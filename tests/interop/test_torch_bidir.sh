#!/usr/bin/env bash
# interop_bidir: a bidirectional stack against PyTorch's own bidirectional modules.
#
#   tests/interop/test_torch_bidir.sh RNNTRAIN_BIN REPO_ROOT
#
# Trains a 2-layer bidirectional LSTM and a 1-layer bidirectional GRU classifier on the 8x8
# digits (one pixel row per step) for a few dozen steps, then loads the model file's
# parameters by name (weight_ih_l0_reverse, ...) with a strict load_state_dict into
# nn.LSTM/nn.GRU(bidirectional=True) + nn.Linear(2H, classes), and asserts that PyTorch's
# test-split cross-entropy (logits of output[:, -1], the forward pass's last step next to
# the reverse pass's output there) equals `rnntrain eval --json` within 1e-5 relative.
# Exit 77 (skipped) without torch.
set -euo pipefail

# shellcheck source=setup.sh
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh" interop_bidir "$@"
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
ok() { echo "ok:   $*"; }

"$BIN" prepare --csv "$ROOT/datasets/digits.csv" --task classify --steps 8 --features 8 \
    --output "$TMP/digits.h5" >/dev/null
for spec in "lstm 2 12" "gru 1 10"; do
    read -r kind layers hidden <<< "$spec"
    out=$TMP/$kind
    "$BIN" train --data "$TMP/digits.h5" --out "$out" --model "$kind" --layers "$layers" \
        --hidden "$hidden" --bidirectional --batch 16 --steps 40 --lr 5e-3 \
        --print-every 40 --ckpt-minutes 0 > "$out.log" 2>&1 || { fail "$kind: train"; continue; }
    ours=$("$BIN" eval --model "$out" --data "$TMP/digits.h5" --split test --json |
           "$PY" -c 'import json,sys; print(json.load(sys.stdin)["loss"])')
    theirs=$("$PY" - "$out/model.h5" "$TMP/digits.h5" "$kind" "$layers" "$hidden" <<'PYEOF'
import sys, h5py, numpy as np, torch
model, data, kind, L, H = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
with h5py.File(model, "r") as f:
    sd = {n: torch.from_numpy(f["params"][n][()]) for n in f["params"]}
with h5py.File(data, "r") as f:
    x = torch.from_numpy(f["test/inputs"][()]).float()
    y = torch.from_numpy(f["test/labels"][()]).long()
cls = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[kind]
rnn = cls(x.shape[2], H, L, batch_first=True, bidirectional=True)
head = torch.nn.Linear(2 * H, sd["head.weight"].shape[0])
rnn.load_state_dict({k[4:]: v for k, v in sd.items() if k.startswith("rnn.")}, strict=True)
head.load_state_dict({k[5:]: v for k, v in sd.items() if k.startswith("head.")}, strict=True)
assert len(sd) == len(rnn.state_dict()) + 2, "unexpected tensors: %s" % sorted(sd)
with torch.no_grad():
    out, _ = rnn(x)
    loss = torch.nn.functional.cross_entropy(head(out[:, -1]), y)
print("%.9g" % loss.item())
PYEOF
) || { fail "$kind: PyTorch evaluation"; continue; }
    if "$PY" -c "import sys; a, b = $ours, $theirs; sys.exit(0 if abs(a - b) <= 1e-5 * abs(b) else 1)"; then
        ok "$kind x$layers bidirectional: rnntrain $ours, PyTorch $theirs"
    else
        fail "$kind x$layers bidirectional: rnntrain $ours, PyTorch $theirs"
    fi
done
echo "interop_bidir: $fails failure(s)"
[[ $fails -eq 0 ]]
