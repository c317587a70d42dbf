#!/usr/bin/python3
"""Learning curves of the adding-problem runs of scripts/bench-long-range.sh.

Usage: /usr/bin/python3 scripts/plot_long_range.py OUTDIR [-o docs/long-range-adding.png]

Reads OUTDIR/adding-T{T}-{kind}/metrics.jsonl (written by `rnntrain train`) for every T
found and the five kinds rnn, lstm, gru, mamba, s5, and draws the validation MSE ("kind":
"valid" lines, field "nats", which for a regress task is the MSE) against the update step,
log scale, one panel per T, one line per kind; the 0.167 floor (predicting 1.0) and the
0.01 target are drawn as horizontal lines. Curriculum runs (adding-T{T}-{kind}-from{T0},
bench-long-range.sh's FROM_T) are drawn dashed, their steps counted from the start of
the run at T.
"""

import argparse
import glob
import json
import os
import re
import sys

import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

KINDS = ("rnn", "lstm", "gru", "mamba", "s5")
LABELS = {"rnn": "tanh RNN", "lstm": "LSTM", "gru": "GRU", "mamba": "Mamba", "s5": "S5"}
COLORS = {kind: "C%d" % i for i, kind in enumerate(KINDS)}  # one colour per kind, every panel


def read_valid(path):
    steps, mse = [], []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            rec = json.loads(line)
            if rec.get("kind") == "valid":
                steps.append(rec["step"])
                mse.append(rec["nats"])
    return steps, mse


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("outdir")
    p.add_argument("-o", "--output", default="docs/long-range-adding.png")
    a = p.parse_args()
    Ts = sorted({int(m.group(1)) for d in glob.glob(os.path.join(a.outdir, "adding-T*-*"))
                 for m in [re.search(r"adding-T(\d+)-", os.path.basename(d))] if m})
    if not Ts:
        sys.exit("plot_long_range.py: no adding-T*-KIND runs in %s" % a.outdir)
    fig, axes = plt.subplots(1, len(Ts), figsize=(6 * len(Ts), 4.2), squeeze=False)
    for ax, T in zip(axes[0], Ts):
        for kind in KINDS:
            path = os.path.join(a.outdir, "adding-T%d-%s" % (T, kind), "metrics.jsonl")
            steps, mse = read_valid(path) if os.path.exists(path) else ([], [])
            if steps:
                ax.plot(steps, mse, marker=".", color=COLORS[kind], label=LABELS[kind])
            # curriculum runs (FROM_T): dashed
            for d in sorted(glob.glob(os.path.join(a.outdir, "adding-T%d-%s-from*" % (T, kind)))):
                m = re.search(r"-from(\d+)$", d)
                mpath = os.path.join(d, "metrics.jsonl")
                if not m or not os.path.exists(mpath):
                    continue
                steps, mse = read_valid(mpath)
                if steps:
                    ax.plot(steps, mse, marker=".", ls="--", color=COLORS[kind],
                            label="%s, from its T = %s model" % (LABELS[kind], m.group(1)))
        ax.axhline(1.0 / 6.0, color="grey", ls=":", lw=1, label="predict 1.0 (1/6)")
        ax.axhline(0.01, color="black", ls="--", lw=1, label="target 0.01")
        ax.set_yscale("log")
        ax.set_xlabel("update step")
        ax.set_ylabel("validation MSE")
        ax.set_title("adding problem, T = %d" % T)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(a.output, dpi=110)
    print("wrote %s" % a.output)


if __name__ == "__main__":
    main()
