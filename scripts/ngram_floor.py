#!/usr/bin/python3
"""ngram_floor.py - interpolated Witten-Bell n-gram baseline on an rnntrain token dataset.

The issue-3 quality target is stated against "the best n-gram floor (order 4, Witten-Bell
smoothing)".  This script measures that floor on the very split the LSTM is scored on, so
the benchmark compares against a number computed from the data, not a rounded constant.

Model (interpolated Witten-Bell, Witten & Bell 1991; the form of Chen & Goodman 1998, eq. 16):
    P_0(w)     = 1 / V                                       (uniform over the vocabulary)
    P_k(w | h) = (c(h w) + T(h) * P_{k-1}(w | h')) / (c(h) + T(h))   if c(h) > 0
               = P_{k-1}(w | h')                                      otherwise
h is the k-1 tokens before w, h' drops the oldest of them, c() counts in the train split,
c(h) = number of times h is followed by a token, T(h) = number of distinct tokens seen
after h.  Order k uses k-1 tokens of history (order 1 = unigram).  Counts come from the
train split only; every token of the evaluated split is scored, its history reaching back
into the end of the split before it (the splits are contiguous pieces of one text).

Usage: /usr/bin/python3 scripts/ngram_floor.py DATA.h5 [--split valid|test] [--orders 1-6]
           [--json]
Prints nats/token for every order and the best one; --json prints one JSON object.
Needs python3-h5py and python3-numpy (Debian).  Memory: ~10 x 8 bytes per train token.
"""
import argparse
import json
import math
import sys

import h5py
import numpy as np


def die(msg):
    print(f"ngram_floor: error: {msg}", file=sys.stderr)
    sys.exit(1)


def keys_of(x, k, base):
    """key[i] = x[i-k+1 .. i] as a base-`base` number, for i = k-1 .. len(x)-1."""
    n = len(x) - k + 1
    key = np.zeros(n, dtype=np.int64)
    for j in range(k):
        key = key * base + x[j:j + n]
    return key


def lookup(sorted_keys, values, queries):
    """values[index of q in sorted_keys] or 0 where q is absent."""
    idx = np.searchsorted(sorted_keys, queries)
    idx_clipped = np.minimum(idx, len(sorted_keys) - 1)
    found = (idx < len(sorted_keys)) & (sorted_keys[idx_clipped] == queries)
    return np.where(found, values[idx_clipped], 0)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("data")
    ap.add_argument("--split", default="valid", choices=["valid", "test"])
    ap.add_argument("--orders", default="1-6", help="range of orders, e.g. 1-6 (max 7)")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()

    try:
        lo, hi = (int(v) for v in a.orders.split("-"))
    except ValueError:
        die(f"--orders: expected a range like 1-6, got '{a.orders}'")
    if not 1 <= lo <= hi <= 7:
        die(f"--orders: expected 1 <= LO <= HI <= 7, got '{a.orders}'")

    try:
        f = h5py.File(a.data, "r")
    except OSError as e:
        die(f"{a.data}: cannot open as HDF5 ({e})")
    with f:
        for name in ("vocab", "train", a.split):
            if name not in f:
                die(f"{a.data}: no dataset /{name} (not an rnntrain token dataset?)")
        V = int(f["vocab"].shape[0])
        train = f["train"][...].astype(np.int64)
        before = train if a.split == "valid" else np.concatenate(
            [train, f["valid"][...].astype(np.int64)])
        ev = f[a.split][...].astype(np.int64)
    if V > 256 and hi > 5:
        die(f"--orders: with a vocabulary of {V}, orders above 5 overflow the 64-bit keys")
    if len(train) < hi or len(ev) == 0:
        die(f"{a.data}: splits too short for order {hi}")

    # evaluated tokens with up to hi-1 tokens of history taken from the split before
    ctx = min(hi - 1, len(before))
    seq = np.concatenate([before[len(before) - ctx:], ev])
    n_ev = len(ev)

    # P_{k}(w | h) at every evaluated position, built up from order 0 (uniform)
    prob = np.full(n_ev, 1.0 / V)
    results = []
    for k in range(1, hi + 1):
        grams, gram_counts = np.unique(keys_of(train, k, V), return_counts=True)
        hist_of_gram = grams // V                 # gram -> its history key (0 for k = 1)
        hists, first = np.unique(hist_of_gram, return_index=True)
        types = np.diff(np.append(first, len(grams)))               # T(h)
        hist_counts = np.add.reduceat(gram_counts, first)           # c(h)

        q = keys_of(seq, k, V)[-n_ev:]            # the k-gram ending at each evaluated token
        c_hw = lookup(grams, gram_counts, q).astype(np.float64)
        c_h = lookup(hists, hist_counts, q // V).astype(np.float64)
        t_h = lookup(hists, types, q // V).astype(np.float64)
        seen = c_h > 0
        prob = np.where(seen, (c_hw + t_h * prob) / np.where(seen, c_h + t_h, 1.0), prob)
        if k >= lo:
            nats = float(-np.mean(np.log(prob)))
            results.append({"order": k, "nats": nats, "bits": nats / math.log(2),
                            "grams": int(len(grams))})

    best = min(results, key=lambda r: r["nats"])
    out = {"data": a.data, "split": a.split, "tokens": n_ev, "train_tokens": int(len(train)),
           "vocab": V, "smoothing": "interpolated Witten-Bell", "orders": results,
           "best": best}
    if a.json:
        print(json.dumps(out))
        return
    print(f"{a.data}: interpolated Witten-Bell n-grams, counts from train "
          f"({len(train)} tokens), scored on {a.split} ({n_ev} tokens), vocabulary {V}")
    print(f"{'order':>5} {'nats/token':>11} {'bits/token':>11} {'distinct n-grams':>17}")
    for r in results:
        print(f"{r['order']:>5} {r['nats']:>11.4f} {r['bits']:>11.4f} {r['grams']:>17}")
    print(f"best: order {best['order']}, {best['nats']:.4f} nats/token")


if __name__ == "__main__":
    main()
