#!/usr/bin/python3
"""Write the adding problem as an rnntrain sequence dataset (task regress).

Usage: /usr/bin/python3 datasets/adding.py [--T 200] [--seed 1] [--train 20000]
           [--valid 1000] [--test 1000] OUTPUT.h5

The adding problem (Hochreiter & Schmidhuber 1997, "Long short-term memory", experiment
4; in the form of Arjovsky, Shah & Bengio 2016, "Unitary evolution recurrent neural
networks"): each sequence has T steps of 2 features,
  feature 0  a value drawn uniformly from [0, 1) (numpy float32 draws),
  feature 1  a marker, 1 at exactly two steps and 0 elsewhere: one step drawn uniformly
             from the first half [0, T//2), the other from the second half [T//2, T);
the target (one value per sequence, read at the last step) is the sum of the two marked
values, in [0, 2). Predicting 1.0 whatever the input scores an MSE of 1/6 = 0.167 (the
variance of the sum of two U[0,1) values); a model has to remember the marked values
over up to T steps to do better.

Output (docs/tasks.md, "Schema"; validated by src/data/seq.c when rnntrain opens it):
  /  attrs  format "rnntrain-sequences", version 1, task "regress", inputs "features",
            steps T, features 2, outputs 1, norm_mean 0.0, norm_std 1.0 (the targets are
            stored unnormalised), and for the record: seed, generator (a description
            of this recipe); integers int64, reals float64, strings fixed-length ASCII
  /train, /valid, /test
     inputs   float32 (N, T, 2)   [value, marker] per step
     targets  float32 (N, 1)      the sum of the two marked values (of the float32 values)

Deterministic per seed: numpy's PCG64 generator, one independent stream per split from
numpy.random.SeedSequence(seed).spawn(3), drawn in blocks of 4096 sequences (per block: the
values (n, T), then the first marker (n), then the second (n)). A split's content depends
only on the seed, T and its own size (so --train does not change the test split), and
the first n sequences of a larger split are the same n sequences.

Writes OUTPUT.partial.PID and renames it to OUTPUT when complete (an interrupted run
leaves no OUTPUT). Prints the sizes and, on the test split, the MSE of predicting 1.0
and of predicting the train split's mean target.
"""

import argparse
import os
import signal
import sys

import numpy as np

BLOCK = 4096
SPLITS = ("train", "valid", "test")


def parse_args(argv):
    p = argparse.ArgumentParser(
        prog="adding.py",
        description="Write the adding problem (Hochreiter & Schmidhuber 1997; Arjovsky et "
                    "al. 2016) as an rnntrain sequence dataset (task regress).")
    p.add_argument("--T", type=int, default=200, help="steps per sequence (>= 2, default 200)")
    p.add_argument("--seed", type=int, default=1, help="random seed (>= 0, default 1)")
    p.add_argument("--train", type=int, default=20000, help="train sequences (>= 1, default 20000)")
    p.add_argument("--valid", type=int, default=1000, help="valid sequences (>= 0, default 1000)")
    p.add_argument("--test", type=int, default=1000, help="test sequences (>= 0, default 1000)")
    p.add_argument("output", metavar="OUTPUT.h5", help="the HDF5 file to write")
    a = p.parse_args(argv)
    if a.T < 2:
        p.error("--T must be at least 2 (one marker in each half), got %d" % a.T)
    if a.T > 1000000:
        p.error("--T must be at most 1000000 (rnntrain's limit), got %d" % a.T)
    if a.seed < 0:
        p.error("--seed must be >= 0, got %d" % a.seed)
    if a.train < 1:
        p.error("--train must be at least 1 (rnntrain needs a train split), got %d" % a.train)
    for name in ("valid", "test"):
        if getattr(a, name) < 0:
            p.error("--%s must be >= 0, got %d" % (name, getattr(a, name)))
    out_dir = os.path.dirname(os.path.abspath(a.output))
    if not os.path.isdir(out_dir):
        p.error("output directory does not exist: %s" % out_dir)
    if os.path.isdir(a.output):
        p.error("OUTPUT is a directory: %s" % a.output)
    return a


def make_block(rng, n, T):
    """n sequences: inputs float32 (n, T, 2), targets float32 (n, 1)."""
    values = rng.random((n, T), dtype=np.float32)
    half = T // 2
    first = rng.integers(0, half, size=n)
    second = rng.integers(half, T, size=n)
    x = np.zeros((n, T, 2), dtype=np.float32)
    x[:, :, 0] = values
    rows = np.arange(n)
    x[rows, first, 1] = 1.0
    x[rows, second, 1] = 1.0
    y = (values[rows, first].astype(np.float64) + values[rows, second].astype(np.float64))
    return x, y.astype(np.float32).reshape(n, 1)


def str_attr(h5py, obj, name, s):
    b = s.encode("ascii")
    obj.attrs.create(name, np.bytes_(b), dtype=h5py.string_dtype("ascii", len(b)))


def write(a, path):
    import h5py  # imported here so that --help and argument errors work without h5py
    seeds = np.random.SeedSequence(a.seed).spawn(len(SPLITS))
    sizes = {"train": a.train, "valid": a.valid, "test": a.test}
    stats = {}
    with h5py.File(path, "w") as f:
        str_attr(h5py, f, "format", "rnntrain-sequences")
        f.attrs.create("version", np.int64(1), dtype=np.int64)
        str_attr(h5py, f, "task", "regress")
        str_attr(h5py, f, "inputs", "features")
        f.attrs.create("steps", np.int64(a.T), dtype=np.int64)
        f.attrs.create("features", np.int64(2), dtype=np.int64)
        f.attrs.create("outputs", np.int64(1), dtype=np.int64)
        f.attrs.create("norm_mean", np.float64(0.0), dtype=np.float64)
        f.attrs.create("norm_std", np.float64(1.0), dtype=np.float64)
        f.attrs.create("seed", np.int64(a.seed), dtype=np.int64)
        str_attr(h5py, f, "generator",
                 "adding problem (Hochreiter & Schmidhuber 1997; Arjovsky et al. 2016): "
                 "datasets/adding.py --T %d --seed %d; features [U(0,1) value, marker "
                 "at one step of [0,T/2) and one of [T/2,T)], target = sum of the two "
                 "marked values" % (a.T, a.seed))
        for s, name in enumerate(SPLITS):
            n = sizes[name]
            g = f.create_group(name)
            dx = g.create_dataset("inputs", shape=(n, a.T, 2), dtype=np.float32)
            dy = g.create_dataset("targets", shape=(n, 1), dtype=np.float32)
            rng = np.random.Generator(np.random.PCG64(seeds[s]))
            ssum = 0.0
            se1 = 0.0
            for lo in range(0, n, BLOCK):
                m = min(BLOCK, n - lo)
                x, y = make_block(rng, m, a.T)
                dx[lo:lo + m] = x
                dy[lo:lo + m] = y
                ssum += float(y.astype(np.float64).sum())
                se1 += float(((y.astype(np.float64) - 1.0) ** 2).sum())
            stats[name] = (n, ssum, se1)
    return stats


def main(argv=None):
    a = parse_args(sys.argv[1:] if argv is None else argv)
    partial = "%s.partial.%d" % (a.output, os.getpid())
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # clean up on kill too
    try:
        stats = write(a, partial)
        os.replace(partial, a.output)
    except BaseException:
        if os.path.exists(partial):
            os.unlink(partial)
        raise
    n_tr, sum_tr, _ = stats["train"]
    mean_tr = sum_tr / n_tr
    print("%s: regress dataset | %d train, %d valid, %d test sequences of %d steps x 2 "
          "features, 1 output (seed %d, %d bytes)" % (
              a.output, a.train, a.valid, a.test, a.T, a.seed, os.path.getsize(a.output)))
    n_te, sum_te, se1_te = stats["test"]
    if n_te:
        # MSE of the constant c on the test split: E[(y-c)^2] = E[(y-1)^2] - 2(c-1)(E[y]-1)
        # + (c-1)^2
        mse_mean = (se1_te - 2 * (mean_tr - 1.0) * (sum_te - n_te) +
                    n_te * (mean_tr - 1.0) ** 2) / n_te
        print("test split: mean target %.4f; MSE of predicting 1.0 = %.4f (1/6 = 0.1667); "
              "of predicting the train mean %.4f = %.4f" % (
                  sum_te / n_te, se1_te / n_te, mean_tr, mse_mean))
    else:
        print("test split is empty: no baseline MSE")


if __name__ == "__main__":
    main()
