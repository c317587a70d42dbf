#!/usr/bin/python3
"""Plot rnntrain metrics files (JSON lines) to a PNG.

Usage:
  /usr/bin/python3 scripts/plot_metrics.py METRICS.jsonl [MORE.jsonl ...] -o OUT.png

Each line of a metrics file is a JSON object:
  {"kind": "train", "step", "epoch", "tokens", "loss" (nats), "bits", "lr",
   "grad_norm", "tokens_per_s", "elapsed"}
  {"kind": "valid", "step", "tokens", "nats", "bits", "perplexity"}
Blank lines and objects of any other kind are ignored.

Top axis: training loss (solid) and validation nats/token (dashed, markers) vs
tokens, one colour per input file, labelled by file name. Bottom (small) axis: lr.
Errors (missing file, bad JSON, missing keys, a file with no points) are reported
as FILE:LINE: message and exit with status 1.
"""

import argparse
import json
import math
import os
import sys


class MetricsError(Exception):
    pass


def _num(obj, key, path, lineno):
    if key not in obj:
        raise MetricsError("%s:%d: %s record has no %r key"
                           % (path, lineno, obj.get("kind"), key))
    v = obj[key]
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        if v is None:
            return math.nan
        raise MetricsError("%s:%d: key %r is not a number: %r" % (path, lineno, key, v))
    return float(v)


def read_metrics(path):
    """Return dict with lists train_tokens, train_loss, lr_tokens, lr, valid_tokens, valid_nats."""
    d = {"train_tokens": [], "train_loss": [], "lr_tokens": [], "lr": [],
         "valid_tokens": [], "valid_nats": []}
    try:
        f = open(path, "r", encoding="utf-8")
    except OSError as e:
        raise MetricsError("%s: cannot open: %s" % (path, e.strerror or e))
    with f:
        lineno = 0
        try:
            for lineno, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line.strip())
                except json.JSONDecodeError as e:
                    raise MetricsError("%s:%d: bad JSON at column %d: %s"
                                       % (path, lineno, e.colno, e.msg))
                if not isinstance(obj, dict):
                    raise MetricsError("%s:%d: expected a JSON object, got %s"
                                       % (path, lineno, type(obj).__name__))
                kind = obj.get("kind")
                if kind == "train":
                    t = _num(obj, "tokens", path, lineno)
                    d["train_tokens"].append(t)
                    d["train_loss"].append(_num(obj, "loss", path, lineno))
                    if "lr" in obj:
                        d["lr_tokens"].append(t)
                        d["lr"].append(_num(obj, "lr", path, lineno))
                elif kind == "valid":
                    d["valid_tokens"].append(_num(obj, "tokens", path, lineno))
                    d["valid_nats"].append(_num(obj, "nats", path, lineno))
        except UnicodeDecodeError as e:
            raise MetricsError("%s:%d: not UTF-8 text: %s" % (path, lineno + 1, e))
    if not d["train_tokens"] and not d["valid_tokens"]:
        raise MetricsError("%s: no points (no \"kind\": \"train\" or \"valid\" records)"
                           % path)
    return d


def labels_for(paths):
    """File names, or the paths as given when two files share a name."""
    names = [os.path.basename(p) for p in paths]
    if len(set(names)) == len(names):
        return names
    return list(paths)


def main(argv=None):
    p = argparse.ArgumentParser(description="Plot rnntrain metrics (JSON lines).")
    p.add_argument("files", nargs="+", metavar="METRICS.jsonl")
    p.add_argument("-o", "--output", required=True, metavar="OUT.png")
    p.add_argument("--title", default=None)
    a = p.parse_args(argv)

    try:
        runs = [read_metrics(f) for f in a.files]
    except MetricsError as e:
        print("plot_metrics: error: %s" % e, file=sys.stderr)
        return 1

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax, axlr) = plt.subplots(
        2, 1, sharex=True, figsize=(9, 6.5),
        gridspec_kw={"height_ratios": [3, 1], "hspace": 0.08})
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    any_lr = False
    for i, (lab, d) in enumerate(zip(labels_for(a.files), runs)):
        c = colors[i % len(colors)]
        if d["train_tokens"]:
            ax.plot(d["train_tokens"], d["train_loss"], color=c, lw=1.0, alpha=0.8,
                    label="%s train loss" % lab)
        if d["valid_tokens"]:
            ax.plot(d["valid_tokens"], d["valid_nats"], color=c, lw=1.6, ls="--",
                    marker="o", ms=3.5, label="%s valid" % lab)
        if d["lr"]:
            any_lr = True
            axlr.plot(d["lr_tokens"], d["lr"], color=c, lw=1.2, label=lab)
    ax.set_ylabel("nats / token")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(a.title or "rnntrain: training loss and validation")
    axlr.set_ylabel("lr")
    axlr.set_xlabel("tokens")
    axlr.grid(True, alpha=0.3)
    axlr.ticklabel_format(axis="y", style="sci", scilimits=(-2, 3))
    if not any_lr:
        axlr.text(0.5, 0.5, "no lr values", transform=axlr.transAxes,
                  ha="center", va="center", color="gray")
    try:
        fig.savefig(a.output, dpi=120, bbox_inches="tight")
    except (OSError, ValueError) as e:
        print("plot_metrics: error: cannot write %s: %s" % (a.output, e), file=sys.stderr)
        return 1
    print("wrote %s (%d file(s))" % (a.output, len(a.files)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
