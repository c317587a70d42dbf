#!/usr/bin/python3
"""PyTorch DistributedDataParallel baseline for rnntrain's data-parallel speed (issue 4).

Launches itself with torch.multiprocessing (spawn) as N processes (default 2), each with
torch.set_num_threads(1) (--threads), joined by the gloo backend on 127.0.0.1 and a free
port.  Every rank trains the same Net as scripts/torch_reference.py
(Embedding(V,E) -> nn.RNN/LSTM/GRU(E,H,L) -> Linear(H,V), PyTorch default init, float32)
wrapped in DistributedDataParallel, with rnntrain's data-parallel stream semantics:

  * the train split is cut into N*B global streams (B = --batch-per-rank,
    L = tokens // (N*B), stream g = [g*L, (g+1)*L)); rank r takes streams
    [r*B, (r+1)*B), exactly as `rnntrain train --batch N*B` on N ranks;
  * each step takes the next T+1 tokens of every local stream, carries the detached
    hidden state across chunks; at the end of the streams cursors go back to 0 and the
    state to zero.  Loss = mean cross-entropy over the rank's B*T tokens, backward (DDP
    averages the gradients over ranks = the mean over all N*B*T tokens), clip the global
    gradient norm (--clip, default 5), Adam (--lr 2e-3).

Speed: total tokens/s = global tokens per step (N*B*T) / step time, the step times of
rank 0 summed over all steps after the first 3 (warm-up); the steps of all ranks end
together because every backward waits for the gradient all-reduce.  Per-rank figures are
in the JSON.  Matmul GFLOP/s uses torch_reference.py's formula: per token forward
sum_k 2*G*H*(in_k + H) + 2*H*V (G = 1/4/3 for rnn/lstm/gru), training = 3 x forward.

Run with Debian's /usr/bin/python3 (python3-torch; python3-h5py for --data), with
OPENBLAS_CORETYPE unset (the shell here exports Haswell, half sgemm speed).  With --json,
progress lines go to stderr and stdout holds exactly one JSON line.

Examples:
  env -u OPENBLAS_CORETYPE OPENBLAS_NUM_THREADS=1 /usr/bin/python3 scripts/torch_ddp.py \\
      --synthetic 256 --steps 20
  env -u OPENBLAS_CORETYPE OPENBLAS_NUM_THREADS=1 /usr/bin/python3 scripts/torch_ddp.py \\
      --data data.h5 --procs 2 --model lstm --layers 2 --hidden 512 \\
      --batch-per-rank 32 --bptt 64 --steps 20 --json
"""

import argparse
import datetime
import json
import math
import os
import resource
import socket
import sys
import time

import numpy as np

WARMUP_STEPS = 3
GATES = {"rnn": 1, "lstm": 4, "gru": 3}


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description="PyTorch DDP (gloo) baseline of rnntrain's data-parallel training")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--data", metavar="DATA.h5",
                     help="rnntrain token dataset (HDF5, docs/formats.md)")
    src.add_argument("--synthetic", type=int, metavar="V",
                     help="random tokens with vocabulary V (speed runs only)")
    p.add_argument("--procs", "-n", type=int, default=2, help="processes (ranks)")
    p.add_argument("--threads", type=int, default=1,
                   help="torch threads per process (default 1)")
    p.add_argument("--model", choices=sorted(GATES), default="lstm")
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--hidden", type=int, default=512)
    p.add_argument("--embed", type=int, default=None,
                   help="embedding size E (default: = hidden)")
    p.add_argument("--batch-per-rank", type=int, default=32,
                   help="streams per rank B (global streams = procs * B)")
    p.add_argument("--bptt", type=int, default=64, help="chunk length T")
    p.add_argument("--lr", type=float, default=2e-3, help="Adam learning rate")
    p.add_argument("--clip", type=float, default=5.0,
                   help="max global grad norm (<= 0: no clipping)")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--bucket-cap-mb", type=float, default=None,
                   help="DDP bucket_cap_mb (default: PyTorch's, 25)")
    p.add_argument("--bind", action="store_true",
                   help="pin rank r to CPU r mod ncpu (default: no binding)")
    p.add_argument("--port", type=int, default=0,
                   help="rendezvous port on 127.0.0.1 (default: a free one)")
    p.add_argument("--log-every", type=int, default=0,
                   help="rank 0 prints its loss every N steps (0: off)")
    p.add_argument("--json", action="store_true",
                   help="final JSON line on stdout (progress goes to stderr)")
    a = p.parse_args(argv)
    if a.embed is None:
        a.embed = a.hidden
    for name in ("procs", "threads", "layers", "hidden", "embed", "batch_per_rank",
                 "bptt", "steps"):
        if getattr(a, name) < 1:
            p.error("--%s must be >= 1" % name.replace("_", "-"))
    if a.synthetic is not None and a.synthetic < 2:
        p.error("--synthetic V must be >= 2")
    return a


def load_train(path):
    """Return (V, train) from a token HDF5 file (int64 numpy array)."""
    import h5py
    with h5py.File(path, "r") as f:
        fmt = f.attrs.get("format")
        if isinstance(fmt, bytes):
            fmt = fmt.decode()
        if fmt is not None and str(fmt) != "rnntrain-tokens":
            raise SystemExit("%s: format attribute is %r, expected 'rnntrain-tokens'"
                             % (path, fmt))
        if "vocab_size" not in f.attrs:
            raise SystemExit("%s: missing root attribute vocab_size" % path)
        V = int(np.asarray(f.attrs["vocab_size"]).reshape(-1)[0])
        if "train" not in f:
            raise SystemExit("%s: missing dataset /train" % path)
        ds = f["train"]
        if not np.issubdtype(ds.dtype, np.integer):
            raise SystemExit("%s: /train has non-integer dtype %s" % (path, ds.dtype))
        x = ds[()].astype(np.int64).reshape(-1)
    if x.size and (x.min() < 0 or x.max() >= V):
        raise SystemExit("%s: /train has token ids outside [0, %d)" % (path, V))
    return V, x


def synthetic_train(V, a):
    rng = np.random.default_rng(a.seed)
    n = a.procs * a.batch_per_rank * (a.bptt * min(a.steps, 200) + 1)
    return V, rng.integers(0, V, n, dtype=np.int64)


def forward_flops_per_token(cell, L, H, E, V):
    G = GATES[cell]
    f = 0
    for k in range(L):
        inp = E if k == 0 else H
        f += 2 * G * H * (inp + H)
    return f + 2 * H * V


def openblas_corename():
    """OpenBLAS core name as seen by this process (torch and numpy share Debian's)."""
    import ctypes
    import ctypes.util
    names = [ctypes.util.find_library("openblas"), "libopenblas.so.0"]
    for name in names:
        if not name:
            continue
        try:
            lib = ctypes.CDLL(name)
            lib.openblas_get_corename.restype = ctypes.c_char_p
            return lib.openblas_get_corename().decode()
        except (OSError, AttributeError):
            continue
    return "unknown"


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def worker(rank, a, port, queue):
    import torch
    import torch.distributed as dist
    import torch.nn as nn
    import torch.nn.functional as F
    from torch.nn.parallel import DistributedDataParallel as DDP

    N = a.procs
    log_stream = sys.stderr if a.json else sys.stdout

    def log(msg):
        if rank == 0:
            print(msg, file=log_stream, flush=True)

    if a.bind:
        cpus = sorted(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {cpus[rank % len(cpus)]})
    torch.set_num_threads(a.threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:
        pass
    torch.manual_seed(a.seed)
    dist.init_process_group("gloo", init_method="tcp://127.0.0.1:%d" % port,
                            rank=rank, world_size=N,
                            timeout=datetime.timedelta(seconds=300))
    try:
        if a.data:
            V, train = load_train(a.data)
        else:
            V, train = synthetic_train(a.synthetic, a)

        # ---- streams: global N*B, this rank's [r*B, (r+1)*B) -------------------------
        B, T = a.batch_per_rank, a.bptt
        Bg = N * B
        Ltr = train.size // Bg
        if Ltr < T + 1:
            raise SystemExit("train split too short: %d tokens give %d per stream for %d "
                             "streams, need >= T+1 = %d" % (train.size, Ltr, Bg, T + 1))
        mine = train[:Bg * Ltr].reshape(Bg, Ltr)[rank * B:(rank + 1) * B]
        streams = torch.from_numpy(np.ascontiguousarray(mine.T))       # (Ltr, B)

        # ---- model --------------------------------------------------------------------
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
        ddp_kw = {}
        if a.bucket_cap_mb is not None:
            ddp_kw["bucket_cap_mb"] = a.bucket_cap_mb
        model = DDP(net, **ddp_kw)           # broadcasts rank 0's parameters
        params = list(model.parameters())
        opt = torch.optim.Adam(params, lr=a.lr)

        def zero_state():
            h = torch.zeros(a.layers, B, a.hidden)
            return (h, torch.zeros_like(h)) if a.model == "lstm" else h

        def detach(s):
            return tuple(x.detach() for x in s) if isinstance(s, tuple) else s.detach()

        fwd = forward_flops_per_token(a.model, a.layers, a.hidden, a.embed, V)
        log("torch %s, %d process(es) x %d thread(s), gloo on 127.0.0.1:%d, OpenBLAS core %s; "
            "V=%d %s E=%d H=%d L=%d params=%d; B=%d per rank (%d global) T=%d; "
            "train %d tok (%d/stream)"
            % (torch.__version__, N, torch.get_num_threads(), port, openblas_corename(),
               V, a.model, a.embed, a.hidden, a.layers, nparams, B, Bg, T, train.size, Ltr))

        # ---- training -----------------------------------------------------------------
        state = zero_state()
        cursor = 0
        epoch = 0
        step_times = []
        loss_v = float("nan")
        gnorm = float("nan")
        model.train()
        dist.barrier()
        for step in range(1, a.steps + 1):
            t0 = time.perf_counter()
            if cursor + T + 1 > Ltr:           # end of the streams
                cursor = 0
                epoch += 1
                state = zero_state()
            chunk = streams[cursor:cursor + T + 1]
            cursor += T
            logits, state = model(chunk[:-1], state)
            state = detach(state)
            loss = F.cross_entropy(logits.reshape(-1, V), chunk[1:].reshape(-1))
            opt.zero_grad(set_to_none=True)
            loss.backward()                     # DDP all-reduces (averages) gradients
            if a.clip > 0:
                gnorm = float(torch.nn.utils.clip_grad_norm_(params, a.clip))
            opt.step()
            loss_v = loss.item()
            step_times.append(time.perf_counter() - t0)
            if a.log_every and step % a.log_every == 0:
                log("step %d epoch %d rank-0 loss %.4f grad_norm %.4f %.1f ms"
                    % (step, epoch, loss_v, gnorm, 1e3 * step_times[-1]))

        # ---- gather ---------------------------------------------------------------------
        timed = step_times[WARMUP_STEPS:] if len(step_times) > WARMUP_STEPS else step_times
        if len(step_times) <= WARMUP_STEPS:
            log("warning: only %d steps, warm-up not excluded from speed" % len(step_times))
        rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
        mine_t = torch.tensor([[sum(timed), float(len(timed)), loss_v, rss_mb]],
                              dtype=torch.float64)
        allt = [torch.zeros_like(mine_t) for _ in range(N)]
        dist.all_gather(allt, mine_t)
        if rank == 0:
            rows = torch.cat(allt).tolist()
            tok_step = Bg * T
            per_rank = [{"rank": i, "timed_s": r[0], "steps_timed": int(r[1]),
                         "tokens_per_s": r[1] * tok_step / r[0] if r[0] > 0 else 0.0,
                         "loss": r[2], "peak_rss_mb": r[3]} for i, r in enumerate(rows)]
            tps = per_rank[0]["tokens_per_s"]
            gflops = 3 * fwd * tps / 1e9
            mean_loss = sum(r[2] for r in rows) / N
            ms_step = 1e3 * rows[0][0] / max(rows[0][1], 1)
            log("per rank: " + ", ".join("rank %d %.1f tok/s %.1f MB" %
                                         (r["rank"], r["tokens_per_s"], r["peak_rss_mb"])
                                         for r in per_rank))
            log("DDP train speed: %.1f tokens/s total (%d ranks), %.2f GFLOP/s matmul total, "
                "%.1f ms/step, %d steps timed; final loss (mean over ranks) %.4f"
                % (tps, N, gflops, ms_step, len(timed), mean_loss))
            queue.put({
                "tokens_per_s": tps,
                "gflops": gflops,
                "ms_per_step": ms_step,
                "steps_timed": len(timed),
                "tokens_per_step": tok_step,
                "final_train_loss": mean_loss,
                "per_rank": per_rank,
                "openblas_core": openblas_corename(),
                "config": {"procs": N, "threads": a.threads, "model": a.model,
                           "layers": a.layers, "hidden": a.hidden, "embed": a.embed,
                           "vocab_size": V, "batch_per_rank": B, "global_batch": Bg,
                           "bptt": T, "lr": a.lr, "clip": a.clip, "optim": "adam",
                           "steps": a.steps, "seed": a.seed, "params": nparams,
                           "bucket_cap_mb": a.bucket_cap_mb, "bind": a.bind,
                           "backend": "gloo", "data": a.data or "synthetic",
                           "torch": torch.__version__},
            })
        dist.barrier()
    finally:
        dist.destroy_process_group()


def main(argv=None):
    a = parse_args(argv)
    import torch.multiprocessing as mp
    port = a.port or free_port()
    ctx = mp.get_context("spawn")
    queue = ctx.SimpleQueue()
    mp.spawn(worker, args=(a, port, queue), nprocs=a.procs, join=True)
    if queue.empty():
        sys.exit("torch_ddp: rank 0 reported no result")
    res = queue.get()
    if a.json:
        print(json.dumps(res), flush=True)


if __name__ == "__main__":
    main()
