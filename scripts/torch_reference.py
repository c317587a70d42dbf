#!/usr/bin/python3
"""PyTorch reference trainer for rnntrain benchmarks.

Same recipe as the C trainer (see docs/formats.md):
  * model  Net = Embedding(V,E) -> nn.RNN(tanh)/nn.LSTM/nn.GRU(E,H,L) -> Linear(H,V),
    PyTorch default init, float32, batch_first=False;
  * train  the train split cut into B streams (L = N//B, stream g = [g*L,(g+1)*L));
    each step takes the next T+1 tokens of every stream (T inputs, targets shifted
    by one), carries the detached hidden state across chunks; when c+T+1 > L the
    epoch ends: cursors go back to 0 and the state to zero.  Loss = mean
    cross-entropy over B*T, backward, clip_grad_norm_(clip), optimizer step;
  * eval   the valid split read as --eval-batch carried-state streams, chunks of T
    including the short last chunk, scoring all S*(L-1) predictions.

Speed: tokens/s of training excludes the first 3 (warm-up) steps and eval time.
GFLOP/s counts matmul flops only: per token forward
  sum_k 2*G*H*(in_k + H) + 2*H*V   (G = 1/4/3 for rnn/lstm/gru, in_0 = E, else H),
training = 3 x forward.

Run with Debian's /usr/bin/python3 (python3-torch, python3-h5py).
With --json, progress lines go to stderr and stdout holds exactly one JSON line.

Examples:
  /usr/bin/python3 scripts/torch_reference.py --data data.h5 --model lstm \
      --layers 2 --hidden 512 --batch 32 --bptt 64 --lr 2e-3 --clip 1 \
      --optim adam --steps 2000 --eval-every 200 --threads 4
  env -u OPENBLAS_CORETYPE OPENBLAS_NUM_THREADS=1 /usr/bin/python3 \
      scripts/torch_reference.py --synthetic 256 --model lstm --layers 2 \
      --hidden 512 --batch 32 --bptt 64 --steps 20 --threads 1 --json
"""

import argparse
import json
import math
import resource
import sys
import time

import numpy as np

WARMUP_STEPS = 3
GATES = {"rnn": 1, "lstm": 4, "gru": 3}


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description="PyTorch reference trainer (same recipe as rnntrain train)")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--data", metavar="DATA.h5",
                     help="rnntrain token dataset (HDF5, docs/formats.md)")
    src.add_argument("--synthetic", type=int, metavar="V",
                     help="random tokens with vocabulary V (speed runs only)")
    p.add_argument("--model", choices=sorted(GATES), default="lstm")
    p.add_argument("--layers", type=int, default=1)
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--embed", type=int, default=None,
                   help="embedding size E (default: = hidden)")
    p.add_argument("--batch", type=int, default=32, help="streams B")
    p.add_argument("--bptt", type=int, default=64, help="chunk length T")
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--clip", type=float, default=1.0,
                   help="max global grad norm (<= 0: no clipping)")
    p.add_argument("--optim", choices=["adam", "sgd", "rmsprop", "adamw"],
                   default="adam", help="PyTorch defaults for all other "
                   "hyper-parameters (AdamW weight_decay=0.01)")
    p.add_argument("--schedule", choices=["constant", "cosine"], default="constant",
                   help="learning-rate schedule, as rnntrain's --schedule")
    p.add_argument("--warmup", type=int, default=0, help="linear warm-up steps")
    p.add_argument("--min-lr", type=float, default=0.0, help="cosine: final learning rate")
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--autocast", choices=["none", "bf16"], default="none",
                   help="bf16: forward and loss under torch.autocast('cpu', "
                   "dtype=torch.bfloat16) (mixed precision; fp32 weights and optimizer)")
    p.add_argument("--eval-every", type=int, default=0,
                   help="evaluate every N steps (0: only at the end)")
    p.add_argument("--eval-batch", type=int, default=32,
                   help="eval streams S")
    p.add_argument("--log-every", type=int, default=0,
                   help="print the training loss every N steps (0: off)")
    p.add_argument("--save-init", metavar="MODEL.h5",
                   help="write the initial weights (this seed's PyTorch-default draw) as an "
                   "rnntrain model file, for `rnntrain train --init-from` (needs --data; "
                   "with --steps 0 nothing else is done)")
    p.add_argument("--json", action="store_true",
                   help="final JSON line on stdout (progress goes to stderr)")
    a = p.parse_args(argv)
    if a.embed is None:
        a.embed = a.hidden
    for name in ("layers", "hidden", "embed", "batch", "bptt", "steps",
                 "threads", "eval_batch"):
        if getattr(a, name) < 1 and not (name == "steps" and a.steps == 0 and a.save_init):
            p.error("--%s must be >= 1" % name.replace("_", "-"))
    if a.eval_every < 0:
        p.error("--eval-every must be >= 0")
    if a.save_init and not a.data:
        p.error("--save-init needs --data (the model file carries the data's vocabulary)")
    if a.synthetic is not None and a.synthetic < 2:
        p.error("--synthetic V must be >= 2")
    return a


def load_tokens(path):
    """Return (V, train, valid) as int64 numpy arrays from a token HDF5 file."""
    import h5py
    with h5py.File(path, "r") as f:
        fmt = f.attrs.get("format")
        if isinstance(fmt, bytes):
            fmt = fmt.decode()
        if fmt is not None and str(fmt) != "rnntrain-tokens":
            sys.exit("%s: format attribute is %r, expected 'rnntrain-tokens'"
                     % (path, fmt))
        if "vocab_size" not in f.attrs:
            sys.exit("%s: missing root attribute vocab_size" % path)
        V = int(np.asarray(f.attrs["vocab_size"]).reshape(-1)[0])
        out = []
        for split in ("train", "valid"):
            if split not in f:
                sys.exit("%s: missing dataset /%s" % (path, split))
            ds = f[split]
            if not np.issubdtype(ds.dtype, np.integer):
                sys.exit("%s: /%s has non-integer dtype %s" % (path, split, ds.dtype))
            x = ds[()].astype(np.int64).reshape(-1)
            if x.size and (x.min() < 0 or x.max() >= V):
                sys.exit("%s: /%s has token ids outside [0, %d)" % (path, split, V))
            out.append(x)
    return V, out[0], out[1]


def save_rnntrain_model(path, net, a, V, data_path):
    """The module's current weights as an rnntrain model file (docs/formats.md, "Model
    file"): root attributes, the data's vocabulary, /params/<state_dict name> float32.
    Written to PATH.tmp and renamed, like rnntrain's own model files."""
    import os
    import h5py
    with h5py.File(data_path, "r") as f:
        kind = f.attrs.get("vocab_kind", "bytes")
        kind = kind.decode() if isinstance(kind, bytes) else str(kind)
        vocab = np.asarray(f["vocab"][()], dtype=np.int32)
    tmp = path + ".tmp"
    with h5py.File(tmp, "w", libver="latest") as f:
        for key, value in (("format", "rnntrain-model"), ("cell", a.model),
                           ("vocab_kind", kind)):
            f.attrs.create(key, value, dtype=h5py.string_dtype("ascii", len(value)))
        for key, value in (("version", 1), ("layers", a.layers), ("hidden", a.hidden),
                           ("embed", a.embed), ("vocab_size", V)):
            f.attrs.create(key, value, dtype=np.int32)
        f.attrs.create("config", "exported by torch_reference.py --save-init, seed %d" % a.seed,
                       dtype=h5py.string_dtype("ascii"))
        f.create_dataset("vocab", data=vocab)
        g = f.create_group("params")
        for name, t in net.state_dict().items():
            g.create_dataset(name, data=t.detach().numpy().astype(np.float32))
    os.replace(tmp, path)


def synthetic_tokens(V, a):
    rng = np.random.default_rng(a.seed)
    n_train = a.batch * (a.bptt * min(a.steps, 200) + 1)
    n_valid = a.eval_batch * (4 * a.bptt + 1)
    return (V, rng.integers(0, V, n_train, dtype=np.int64),
            rng.integers(0, V, n_valid, dtype=np.int64))


def forward_flops_per_token(cell, L, H, E, V):
    G = GATES[cell]
    f = 0
    for k in range(L):
        inp = E if k == 0 else H
        f += 2 * G * H * (inp + H)
    return f + 2 * H * V


def main(argv=None):
    a = parse_args(argv)
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    log_stream = sys.stderr if a.json else sys.stdout

    def log(msg):
        print(msg, file=log_stream, flush=True)

    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)

    if a.data:
        V, train, valid = load_tokens(a.data)
    else:
        V, train, valid = synthetic_tokens(a.synthetic, a)

    # ---- streams --------------------------------------------------------
    B, T = a.batch, a.bptt
    Ltr = train.size // B
    if Ltr < T + 1:
        sys.exit("train split too short: %d tokens give %d per stream, need >= T+1 = %d"
                 % (train.size, Ltr, T + 1))
    train_streams = torch.from_numpy(
        np.ascontiguousarray(train[:B * Ltr].reshape(B, Ltr).T))   # (Ltr, B)
    S = a.eval_batch
    Lva = valid.size // S
    if Lva < 2:
        sys.exit("valid split too short: %d tokens give %d per stream for %d streams"
                 % (valid.size, Lva, S))
    valid_streams = torch.from_numpy(
        np.ascontiguousarray(valid[:S * Lva].reshape(S, Lva).T))   # (Lva, S)

    # ---- model ----------------------------------------------------------
    cells = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}

    class Net(nn.Module):
        def __init__(self, V, E, H, L, cell):
            super().__init__()
            self.embedding = nn.Embedding(V, E)
            self.rnn = cell(E, H, L)
            self.head = nn.Linear(H, V)

        def forward(self, x, state):
            y, state = self.rnn(self.embedding(x), state)
            return self.head(y), state

    net = Net(V, a.embed, a.hidden, a.layers, cells[a.model])
    nparams = sum(p.numel() for p in net.parameters())
    if a.save_init:
        save_rnntrain_model(a.save_init, net, a, V, a.data)
        log("initial weights written to %s" % a.save_init)
        if a.steps == 0:
            return

    if a.optim == "adam":
        opt = torch.optim.Adam(net.parameters(), lr=a.lr)
    elif a.optim == "adamw":
        opt = torch.optim.AdamW(net.parameters(), lr=a.lr)
    elif a.optim == "sgd":
        opt = torch.optim.SGD(net.parameters(), lr=a.lr)
    else:
        opt = torch.optim.RMSprop(net.parameters(), lr=a.lr)

    def zero_state(n):
        h = torch.zeros(a.layers, n, a.hidden)
        return (h, torch.zeros_like(h)) if a.model == "lstm" else h

    def detach(s):
        return tuple(x.detach() for x in s) if isinstance(s, tuple) else s.detach()

    def evaluate():
        net.eval()
        total = 0.0
        with torch.no_grad():
            state = zero_state(S)
            c = 0
            while c + 1 < Lva:                  # includes the short last chunk
                n = min(T, Lva - 1 - c)
                x = valid_streams[c:c + n]
                y = valid_streams[c + 1:c + n + 1]
                logits, state = net(x, state)
                total += F.cross_entropy(logits.reshape(-1, V), y.reshape(-1),
                                         reduction="sum").item()
                c += n
        net.train()
        return total / (S * (Lva - 1))

    fwd = forward_flops_per_token(a.model, a.layers, a.hidden, a.embed, V)
    log("torch %s, %d thread(s); V=%d %s E=%d H=%d L=%d params=%d; B=%d T=%d; "
        "train %d tok (%d/stream), valid %d tok (%d/stream x %d)"
        % (torch.__version__, torch.get_num_threads(), V, a.model, a.embed,
           a.hidden, a.layers, nparams, B, T, train.size, Ltr, valid.size, Lva, S))

    # ---- training -------------------------------------------------------
    params = list(net.parameters())

    def lr_at(i):
        """rnntrain's sched_lr (src/train/optim.c) for 0-based update i."""
        if a.warmup > 0 and i < a.warmup:
            return a.lr * (i + 1) / a.warmup
        if a.schedule == "constant":
            return a.lr
        span = a.steps - a.warmup
        if span <= 0:
            return a.min_lr
        frac = min(1.0, (i - a.warmup) / span)
        return a.min_lr + 0.5 * (a.lr - a.min_lr) * (1.0 + math.cos(math.pi * frac))
    state = zero_state(B)
    cursor = 0
    epoch = 0
    step_times = []
    evals = []
    train_losses = []
    loss_v = float("nan")
    net.train()
    for step in range(1, a.steps + 1):
        t0 = time.perf_counter()
        if cursor + T + 1 > Ltr:                # epoch end
            cursor = 0
            epoch += 1
            state = zero_state(B)
        chunk = train_streams[cursor:cursor + T + 1]
        cursor += T
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=a.autocast == "bf16"):
            logits, state = net(chunk[:-1], state)
            state = detach(state)
            loss = F.cross_entropy(logits.reshape(-1, V).float(), chunk[1:].reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if a.clip > 0:
            gnorm = float(torch.nn.utils.clip_grad_norm_(params, a.clip))
        else:
            gnorm = float("nan")
        for group in opt.param_groups:
            group["lr"] = lr_at(step - 1)
        opt.step()
        loss_v = loss.item()
        train_losses.append(loss_v)
        step_times.append(time.perf_counter() - t0)

        if a.log_every and step % a.log_every == 0:
            log("step %d epoch %d loss %.4f nats (%.4f bits) grad_norm %.4f %.1f ms"
                % (step, epoch, loss_v, loss_v / math.log(2), gnorm,
                   1e3 * step_times[-1]))
        if (a.eval_every and step % a.eval_every == 0) or step == a.steps:
            nats = evaluate()
            evals.append({"step": step, "tokens": step * B * T, "nats": nats})
            log("eval step %d tokens %d: train loss %.4f, valid %.4f nats/token "
                "%.4f bits/token ppl %.3f"
                % (step, step * B * T, loss_v, nats, nats / math.log(2),
                   math.exp(min(nats, 700))))

    # ---- speed ----------------------------------------------------------
    timed = step_times[WARMUP_STEPS:] if len(step_times) > WARMUP_STEPS else step_times
    if len(step_times) <= WARMUP_STEPS:
        log("warning: only %d steps, warm-up not excluded from speed" % len(step_times))
    tps = len(timed) * B * T / sum(timed)
    gflops = 3 * fwd * tps / 1e9
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux
    valid_nats = evals[-1]["nats"]
    log("train speed: %.1f tokens/s, %.2f GFLOP/s (matmul, %d steps timed, "
        "%.1f ms/step); peak RSS %.1f MB"
        % (tps, gflops, len(timed), 1e3 * sum(timed) / len(timed), rss_mb))
    log("final valid: %.4f nats/token, %.4f bits/token"
        % (valid_nats, valid_nats / math.log(2)))
    if a.json:
        print(json.dumps({
            "tokens_per_s": tps,
            "gflops": gflops,
            "peak_rss_mb": rss_mb,
            "valid_nats": valid_nats,
            "valid_bits": valid_nats / math.log(2),
            "final_train_loss": loss_v,
            "train_losses": train_losses,
            "evals": evals,
            "config": {"model": a.model, "layers": a.layers, "hidden": a.hidden,
                       "embed": a.embed, "vocab_size": V, "batch": B, "bptt": T,
                       "lr": a.lr, "clip": a.clip, "optim": a.optim,
                       "schedule": a.schedule, "warmup": a.warmup, "min_lr": a.min_lr,
                       "steps": a.steps, "seed": a.seed, "threads": a.threads,
                       "eval_batch": S, "params": nparams,
                       "data": a.data or "synthetic",
                       "torch": torch.__version__},
        }), flush=True)


if __name__ == "__main__":
    main()
