#!/usr/bin/python3
"""Fuzz the HDF5 readers of rnntrain (issue 15).

Each case copies one valid seed file (a token, sequence or seq2seq dataset, a model, a
checkpoint), applies 1-3 random mutations and runs the commands that read that kind of file
under `timeout`.  Mutations (the kind names of the summary):

  attributes  (of the root group with probability 0.5, 0.8 for attr_hugeint, else of any object)
              attr_array    an array of 2-5 values of the attribute's type
              attr_shape    one value of another shape: a 1-element array, a 2x1 array, an
                            empty (null dataspace) attribute
              attr_string   a fixed-length string ('', 'garbage', a 4 KB string, '12', ...)
              attr_float    a float (0.5, NaN, Inf, -1e300, 8.0)
              attr_hugeint  an integer that may not fit: 2^31, 2^32+8, 2^63-1, -1, 0, -2^63
                            (int64), 2^63 (uint64)
              attr_vlenstr  a variable-length string (the same text, or another)
              attr_delete   the attribute removed
  datasets    ds_extradim   one more dimension (x[..., None] or two copies stacked)
              ds_missingdim one dimension less (x[..., 0], flattened, or a scalar x[0])
              ds_zerorows   0 rows
              ds_extracol   one more column (1-D: one more element)
              ds_float      float64 (where an integer or a float32 is expected)
              ds_int8       int8 (values wrap)
              ds_uint64     uint64
              ds_string     fixed-length strings of the same shape
              ds_delete     the dataset removed
              ds_values     same shape and type, some elements set to extreme values
                            (-1, 2^31-1, 255, NaN, Inf, 1e30)
              ds_to_group   the dataset replaced by an empty group of the same name
              group_delete  a whole group removed (a split, a layer, the parameters)
  raw bytes   truncate      the file cut at a random offset
              bitflip       1-32 random bits flipped (half of them in the first 4 KB, where
                            the superblock and most metadata are)

Result classes of each command: OK (exit 0), CLEAN_ERROR (exit 1..127, a stderr line that
starts with `rnntrain` and says "error", no sanitizer text) and the failures: CRASH (a signal,
or an exit status >= 128 that is not the timeout's), HANG (timeout: 124 or 137), SANITIZER
(stderr has "AddressSanitizer", "UndefinedBehaviorSanitizer" or "runtime error";
LeakSanitizer is ignored), UNCLEAR (non-zero exit without an `rnntrain ... error` line, e.g.
an HDF5 error stack).  Every failing case is kept in WORK/failures/NNN/ (the mutated file,
the commands as a shell script, their stderr, the mutations in one line).

Deterministic for a given --seed: case i draws from random.Random("SEED:i"); --seconds only
decides how many of the cases run.  (Seed files made afresh differ from run to run in their
object-header timestamps only, and with them a checkpoint's metadata checksums: the same
mutations, the same outcomes; --seeds DIR reuses a set byte for byte.)  Exit status 0 when no case failed, 1 when some did, 2 on a
setup problem (missing binary, invalid seeds).

  fuzz_readers.py --bin BIN --work DIR [--cases N] [--seconds S] [--seed K] [--jobs J]
                  [--seeds DIR]

The seeds are read from --seeds (default WORK/seeds) and made there with BIN if missing
(tests/fuzz/run_fuzz.sh makes them itself).
"""
import argparse
import collections
import concurrent.futures
import os
import random
import re
import shlex
import shutil
import subprocess
import sys
import threading
import time

import h5py
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))

TIMEOUT = ["timeout", "-k", "2", "20"]
ENV_EXTRA = {
    "ASAN_OPTIONS": "detect_leaks=0:abort_on_error=0",
    "UBSAN_OPTIONS": "print_stacktrace=1:halt_on_error=1",
    "OMPI_ALLOW_RUN_AS_ROOT": "1",
    "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1",
    "OPENBLAS_NUM_THREADS": "1",
}

# seed name -> (kind, task, file in the seed directory, the valid dataset it goes with)
SEEDS = {
    "lm-data": ("dataset", "lm", "lm.h5", "lm.h5"),
    "seq-data": ("dataset", "seq", "seq.h5", "seq.h5"),
    "s2s-data": ("dataset", "s2s", "s2s.h5", "s2s.h5"),
    "lm-model": ("model", "lm", "lm-model.h5", "lm.h5"),
    "seq-model": ("model", "seq", "seq-model.h5", "seq.h5"),
    "s2s-model": ("model", "s2s", "s2s-model.h5", "s2s.h5"),
    "lm-ckpt": ("checkpoint", "lm", "lm-ckpt.h5", "lm.h5"),
    "seq-ckpt": ("checkpoint", "seq", "seq-ckpt.h5", "seq.h5"),
    "s2s-ckpt": ("checkpoint", "s2s", "s2s-ckpt.h5", "s2s.h5"),
}
TRAIN_OPTS = ["--hidden", "8", "--batch", "4", "--bptt", "8", "--eval-batch", "4"]

H5_KINDS = ["attr_array", "attr_shape", "attr_string", "attr_float", "attr_hugeint",
            "attr_vlenstr", "attr_delete",
            "ds_extradim", "ds_missingdim", "ds_zerorows", "ds_extracol", "ds_float", "ds_int8",
            "ds_uint64", "ds_string", "ds_delete", "ds_values", "ds_to_group", "group_delete"]
RAW_KINDS = ["truncate", "bitflip"]
# attribute and dataset mutations drawn more often than the raw ones (those mostly end at
# HDF5's own checks: every one of them is a "not an HDF5 file" or "damaged" case)
KIND_WEIGHTS = {k: 1.0 for k in H5_KINDS}
KIND_WEIGHTS.update({"attr_hugeint": 2.0, "attr_array": 1.5, "ds_values": 1.5,
                     "truncate": 2.0, "bitflip": 3.0})

FAILURES = ("CRASH", "HANG", "SANITIZER", "UNCLEAR")
CLASSES = ("OK", "CLEAN_ERROR") + FAILURES


def env():
    e = dict(os.environ)
    e.update(ENV_EXTRA)
    return e


# ---------------------------------------------------------------------------------------
# seeds

def seed_commands(binary, d):
    """The shell-free commands that make the seeds in directory d (cwd = d)."""
    text = os.path.join(REPO, "datasets", "moby-dick.txt")
    digits = os.path.join(REPO, "datasets", "digits.csv")
    with open(text, "rb") as f:
        open(os.path.join(d, "moby.txt"), "wb").write(f.read(20000))
    with open(digits) as f:
        lines = f.readlines()[:200]
    open(os.path.join(d, "digits.csv"), "w").write("".join(lines))
    words = ["cat", "dog", "bird", "fish", "horse", "mouse", "sheep", "goat", "cow", "pig",
             "duck", "hen", "frog", "toad", "wolf", "bear", "lion", "deer", "seal", "moth"]
    open(os.path.join(d, "pairs.tsv"), "w").write(
        "".join("%s\t%s\n" % (w, " ".join(w)) for w in words))
    b = [binary]
    tr = ["--hidden", "8", "--batch", "4", "--bptt", "8", "--steps", "2", "--ckpt-every", "2"]
    return [
        b + ["prepare", "--input", "moby.txt", "--output", "lm.h5"],
        b + ["prepare", "--csv", "digits.csv", "--task", "classify", "--steps", "8",
             "--features", "8", "--output", "seq.h5"],
        b + ["prepare", "--pairs", "pairs.tsv", "--source", "chars", "--target", "symbols",
             "--output", "s2s.h5"],
        b + ["train", "--data", "lm.h5", "--out", "run-lm"] + tr,
        b + ["train", "--data", "seq.h5", "--out", "run-seq"] + tr,
        b + ["train", "--data", "s2s.h5", "--out", "run-s2s"] + tr,
    ]


def make_seeds(binary, d):
    os.makedirs(d, exist_ok=True)
    for cmd in seed_commands(binary, d):
        r = subprocess.run(cmd, cwd=d, env=env(), stdout=subprocess.DEVNULL,
                           stderr=subprocess.PIPE, text=True, errors="replace")
        if r.returncode != 0:
            sys.exit("fuzz_readers: making the seeds failed: %s\n%s" % (" ".join(cmd), r.stderr))
    for t in ("lm", "seq", "s2s"):
        shutil.copyfile(os.path.join(d, "run-%s" % t, "model.h5"),
                        os.path.join(d, "%s-model.h5" % t))
        shutil.copyfile(os.path.join(d, "run-%s" % t, "checkpoints", "ckpt-0000000002.h5"),
                        os.path.join(d, "%s-ckpt.h5" % t))


def commands(binary, seed, f, seeddir, outdir):
    """(label, argv) of the commands that read file f, a mutation of seed."""
    kind, task, _, data = SEEDS[seed]
    data = os.path.join(seeddir, data)
    b = [binary]
    if kind == "dataset":
        return [("train", b + ["train", "--data", f, "--out", os.path.join(outdir, "o"),
                               "--steps", "1"] + TRAIN_OPTS),
                ("info", b + ["info", f])]
    if kind == "model":
        cmds = [("eval", b + ["eval", "--model", f, "--data", data]),
                ("info", b + ["info", f])]
        if task == "lm":
            cmds.append(("sample", b + ["sample", "--model", f, "--length", "20"]))
        else:
            cmds.append(("predict", b + ["predict", "--model", f, "--data", data, "--output",
                                         os.path.join(outdir, "p.csv")]))
        return cmds
    return [("resume", b + ["train", "--data", data, "--out", os.path.join(outdir, "o"),
                            "--steps", "3"] + TRAIN_OPTS + ["--resume", f]),
            ("info", b + ["info", f])]


# ---------------------------------------------------------------------------------------
# mutations

def objects(h):
    """(attrs, datasets, groups) of an open file: attrs as (object path, name)."""
    attrs, dsets, groups = [("/", k) for k in h.attrs.keys()], [], []

    def visit(name, obj):
        attrs.extend(("/" + name, k) for k in obj.attrs.keys())
        (dsets if isinstance(obj, h5py.Dataset) else groups).append("/" + name)
    h.visititems(visit)
    return attrs, dsets, groups


def fixed_str(s):
    if isinstance(s, str):
        s = s.encode()
    return np.array(s, dtype="S%d" % max(1, len(s)))


def attr_value(rng, kind, old):
    """The new value of an attribute (None: delete it) and its description."""
    old_arr = np.asarray(old)
    if kind == "attr_delete":
        return None, "deleted"
    if kind == "attr_array":
        n = rng.randint(2, 5)
        if old_arr.dtype.kind in "SUO":
            # the original text first (a reader that ignores the shape reads it), in a width
            # of its own or one a fixed buffer may not hold n times
            first = old_arr.reshape(-1)[0] if old_arr.size else b"x"
            first = first.encode() if isinstance(first, str) else bytes(first)
            width = max(len(first), rng.choice([8, 63, 200]))
            v = np.array([first] + [b"lstm:8", b"x", b"garbage", b"tokens"][:n - 1],
                         dtype="S%d" % width)
        elif old_arr.dtype.kind == "f":
            v = np.array([rng.choice([0.0, 1.0, 8.0, -1.0]) for _ in range(n)], dtype="f8")
        else:
            first = old_arr.reshape(-1)[0] if old_arr.size else 1
            v = np.array([first] + [rng.choice([0, 1, 8, 2**31]) for _ in range(n - 1)],
                         dtype=old_arr.dtype if old_arr.dtype.kind in "iu" else "i8")
        return v, "array %s" % v.tolist()
    if kind == "attr_shape":
        c = rng.choice(["one", "2x1", "empty"])
        base = old_arr.reshape(-1)[0] if old_arr.size else np.int64(1)
        if old_arr.dtype.kind in "SO":
            base = fixed_str(bytes(base) if not isinstance(base, str) else base)
        if c == "one":
            v = np.array([base])
        elif c == "2x1":
            v = np.array([[base], [base]])
        else:
            dt = old_arr.dtype if old_arr.dtype.kind in "iuf" else np.dtype("S4")
            v = h5py.Empty(dt)
            return v, "empty (null dataspace) %s" % dt
        return v, "shape %s of %r" % (v.shape, base)
    if kind == "attr_string":
        s = rng.choice([b"", b"garbage", b"A" * 4096, b"12", b"lstm:0", b"-1", b"lstm:8,gru:8",
                        b"nan", b"\xff\xfe"])
        if s == b"":
            # a fixed-length string of size 1 holding the terminator only
            return np.array(b"", dtype="S1"), "string ''"
        return fixed_str(s), "string %r" % (s if len(s) < 20 else s[:8] + b"...(%d)" % len(s))
    if kind == "attr_float":
        x = rng.choice([0.5, float("nan"), float("inf"), -1e300, 8.0])
        return np.float64(x), "float %r" % x
    if kind == "attr_hugeint":
        c = rng.choice(["2^31", "2^32+8", "2^63-1", "-1", "0", "-2^63", "u2^63"])
        v = {"2^31": np.int64(2**31), "2^32+8": np.int64(2**32 + 8),
             "2^63-1": np.int64(2**63 - 1), "-1": np.int64(-1), "0": np.int64(0),
             "-2^63": np.int64(-2**63), "u2^63": np.uint64(2**63)}[c]
        return v, "int %s" % c
    if kind == "attr_vlenstr":
        if old_arr.dtype.kind in "SO" and old_arr.size == 1 and rng.random() < 0.6:
            s = old_arr.reshape(-1)[0]
            s = s.decode("utf-8", "replace") if isinstance(s, bytes) else str(s)
        else:
            s = rng.choice(["garbage", "8", "", "lstm:8,lstm:8", "x" * 300])
        return np.array(s, dtype=h5py.string_dtype()), "vlen string %r" % s[:20]
    raise AssertionError(kind)


def ds_value(rng, kind, x):
    """The new contents of a dataset (None: delete it) and a description."""
    if kind == "ds_delete":
        return None, "deleted"
    if kind == "ds_extradim":
        if rng.random() < 0.5:
            return x[..., None], "extra dim -> %s" % (x[..., None].shape,)
        y = np.stack([x, x], axis=-1)
        return y, "extra dim (stacked) -> %s" % (y.shape,)
    if kind == "ds_missingdim":
        if x.ndim >= 2:
            if rng.random() < 0.5:
                y = x[..., 0]
                return y, "missing dim x[...,0] -> %s" % (y.shape,)
            y = x.reshape(-1)
            return y, "missing dim (flattened) -> %s" % (y.shape,)
        y = np.asarray(x.reshape(-1)[0] if x.size else 0)
        return y, "missing dim -> scalar"
    if kind == "ds_zerorows":
        y = x[:0] if x.ndim >= 1 else np.zeros((0,), x.dtype)
        return y, "0 rows -> %s" % (y.shape,)
    if kind == "ds_extracol":
        if x.ndim == 0:
            y = np.stack([x, x])
        else:
            y = np.concatenate([x, x[..., -1:] if x.shape[-1] else
                                np.zeros(x.shape[:-1] + (1,), x.dtype)], axis=-1)
        return y, "one more column -> %s" % (y.shape,)
    if kind == "ds_float":
        return x.astype("f8"), "float64 (was %s)" % x.dtype
    if kind == "ds_int8":
        with np.errstate(all="ignore"):
            return np.nan_to_num(x).astype("i1"), "int8 (was %s)" % x.dtype
    if kind == "ds_uint64":
        with np.errstate(all="ignore"):
            return np.abs(np.nan_to_num(x)).astype("u8"), "uint64 (was %s)" % x.dtype
    if kind == "ds_string":
        return x.astype("S8") if x.dtype.kind != "S" else x, "strings S8 (was %s)" % x.dtype
    if kind == "ds_values":
        y = np.array(x, copy=True)
        if y.size == 0:
            return y, "values: empty, unchanged"
        flat = y.reshape(-1)
        n = rng.randint(1, min(4, flat.size))
        where = sorted(rng.sample(range(flat.size), n))
        if y.dtype.kind == "f":
            vals = [rng.choice([float("nan"), float("inf"), -float("inf"), 1e30, -1e30])
                    for _ in where]
        elif y.dtype.kind in "iu":
            info = np.iinfo(y.dtype)
            cands = [v for v in (-1, 2**31 - 1, -2**31, 255, 256, 1000, 2**16)
                     if info.min <= v <= info.max]
            vals = [rng.choice(cands) for _ in where]
        else:
            return y, "values: non-numeric, unchanged"
        for i, v in zip(where, vals):
            flat[i] = v
        return y, "values %s at %s" % (vals, where)
    raise AssertionError(kind)


def apply_h5(rng, path, kind):
    """Apply one attribute/dataset mutation; returns its description or None (not applicable)."""
    with h5py.File(path, "r+") as h:
        attrs, dsets, groups = objects(h)
        if kind.startswith("attr_"):
            if not attrs:
                return None
            # the file's own attributes (sizes, a checkpoint's step, epoch, cursor) more often
            # than those of its objects (most are checksums)
            root = [a for a in attrs if a[0] == "/"]
            p_root = 0.8 if kind == "attr_hugeint" else 0.5
            obj, name = rng.choice(root if root and rng.random() < p_root else attrs)
            o = h[obj]
            v, what = attr_value(rng, kind, o.attrs[name])
            del o.attrs[name]
            if v is not None:
                o.attrs[name] = v
            return "%s %s@%s := %s" % (kind, obj, name, what)
        if kind == "group_delete":
            groups = [g for g in groups if g != "/"]
            if not groups:
                return None
            g = rng.choice(groups)
            del h[g]
            return "%s %s" % (kind, g)
        if not dsets:
            return None
        d = rng.choice(dsets)
        if kind == "ds_to_group":
            del h[d]
            h.create_group(d)
            return "%s %s" % (kind, d)
        ds = h[d]
        x = ds[()]
        if isinstance(x, bytes) or (isinstance(x, np.ndarray) and x.dtype.kind == "O"):
            x = np.asarray(x, dtype="S")
        x = np.asarray(x)
        keep = dict(ds.attrs.items())
        y, what = ds_value(rng, kind, x)
        del h[d]
        if y is not None:
            nd = h.create_dataset(d, data=y)
            for k, v in keep.items():
                nd.attrs[k] = v
        return "%s %s: %s" % (kind, d, what)


def apply_raw(rng, path, kind):
    size = os.path.getsize(path)
    if kind == "truncate":
        off = rng.randrange(0, size)
        with open(path, "r+b") as f:
            f.truncate(off)
        return "truncate at %d of %d" % (off, size)
    n = rng.randint(1, 32)
    data = bytearray(open(path, "rb").read())
    bits = []
    for _ in range(n):
        off = rng.randrange(0, min(size, 4096)) if rng.random() < 0.5 else rng.randrange(0, size)
        bit = rng.randrange(8)
        data[off] ^= 1 << bit
        bits.append("%d.%d" % (off, bit))
    open(path, "wb").write(bytes(data))
    return "bitflip %d bits at %s" % (n, ",".join(bits))


def mutate(rng, path, kinds=None):
    """1-3 mutations, the attribute and dataset ones first (h5py opens the file), the raw
    ones after, a truncation last. Returns [(kind, description)]."""
    kinds = kinds or list(KIND_WEIGHTS)
    weights = [KIND_WEIGHTS[k] for k in kinds]
    chosen = rng.choices(kinds, weights, k=rng.randint(1, 3))
    chosen.sort(key=lambda k: (k in RAW_KINDS, k == "truncate"))
    if chosen.count("truncate") > 1:
        chosen = [k for k in chosen if k != "truncate"] + ["truncate"]
    done = []
    for k in chosen:
        if k in RAW_KINDS:
            done.append((k, apply_raw(rng, path, k)))
            continue
        try:
            what = apply_h5(rng, path, k)
        except Exception as e:  # a mutation h5py refuses: note it, go on
            what = "%s (not applied: %s: %s)" % (k, type(e).__name__, str(e)[:80])
            k = k + "!"
        if what is not None:
            done.append((k, what))
    return done


# ---------------------------------------------------------------------------------------
# running and classifying

SAN_MARKERS = ("AddressSanitizer", "UndefinedBehaviorSanitizer", "runtime error")


def classify(rc, err):
    lines = err.splitlines()
    san = [l for l in lines if any(m in l for m in SAN_MARKERS)]
    if san:
        return "SANITIZER"
    if rc in (124, 137):
        return "HANG"
    if rc < 0 or rc >= 128:
        return "CRASH"
    if rc == 0:
        return "OK"
    if any(l.startswith("rnntrain") and "error" in l for l in lines):
        return "CLEAN_ERROR"
    return "UNCLEAR"


def run(argv, cwd):
    """(exit status, stderr, the end of stdout); a signal is a negative status."""
    r = subprocess.run(TIMEOUT + argv, cwd=cwd, env=env(), stdin=subprocess.DEVNULL,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    err = r.stderr.decode("utf-8", "replace")
    out = r.stdout[-4096:].decode("utf-8", "replace")
    return r.returncode, err, out


FRAME = re.compile(r"^\s*#\d+ 0x[0-9a-f]+ in (\S+) (.*)$")


def frames(err):
    """(function, where) of the stack frames of a sanitizer report, libsanitizer's left out."""
    out = []
    for l in err.splitlines():
        m = FRAME.match(l)
        if m and "libsanitizer" not in m.group(2):
            where = m.group(2)
            if "/src/" in where:
                where = "src/" + where.split("/src/", 1)[1]
            else:
                where = os.path.basename(where.split()[0].strip("()")).split("+")[0]
            out.append((m.group(1), where))
    return out


def signature(r):
    """A one-line guess at the root cause of a failing command, for grouping: the sanitizer's
    error kind, the innermost frame and the innermost frame in src/, or the first line of
    stderr with names and numbers elided."""
    err = r.get("full") or r["err"]
    lines = err.splitlines()
    if r["class"] == "SANITIZER":
        ub = next((l for l in lines if "runtime error" in l), None)
        if ub:
            where, _, what = ub.partition(": runtime error: ")
            where = "src/" + where.split("/src/", 1)[1] if "/src/" in where else where
            return "UBSAN %s at %s" % (re.sub(r"-?\d{3,}|0x[0-9a-f]+", "#", what)[:90], where)
        summ = next((l for l in lines if l.startswith("SUMMARY:")), "")
        kind = summ.split(":")[2].split()[0] if summ.count(":") >= 2 else "?"
        fr = frames(err)
        top = "%s (%s)" % fr[0] if fr else "?"
        src = next(("%s %s" % f for f in fr if f[1].startswith("src/")), "no frame in src/")
        extra = "; with allocator_may_return_null=1: %s" % r["as_null"] if "as_null" in r else ""
        return "ASAN %s in %s <- %s%s" % (kind, top, src, extra)
    if r["class"] == "HANG":
        return "HANG %s" % r["label"]
    if r["class"] == "CRASH":
        fr = [f for f in frames(err) if f[1].startswith("src/")]
        return "CRASH exit %d %s | %s" % (r["rc"], r["label"],
                                          "%s %s" % fr[0] if fr else (lines[:1] or [""])[0])
    first = next((l for l in lines if l.strip()), "")
    if not first:
        last = (r["out"].strip().splitlines() or ["(nothing)"])[-1]
        first = "no stderr; stdout ends: " + last.strip()
    return "UNCLEAR %s exit %d: %s" % (r["label"], r["rc"],
                                       re.sub(r"'[^']*'|\d+", "#", first)[:150])


def first_lines(err, n=6):
    """The lines of stderr worth a summary: sanitizer report and frames in src/, else the
    first lines."""
    lines = err.splitlines()
    pick = [l for l in lines if (any(m in l for m in SAN_MARKERS) or "/src/" in l
                                 or l.startswith("rnntrain")) and "libsanitizer" not in l]
    return (pick or lines)[:n]


def run_case(args, i, seednames, seeddir, work):
    rng = random.Random("%d:%d" % (args.seed, i))
    seed = rng.choice(seednames)
    casedir = os.path.join(work, "cases", "%04d" % i)
    shutil.rmtree(casedir, ignore_errors=True)
    os.makedirs(casedir)
    f = os.path.join(casedir, SEEDS[seed][2])
    shutil.copyfile(os.path.join(seeddir, SEEDS[seed][2]), f)
    muts = mutate(rng, f, args.kinds)
    results = []
    for label, argv in commands(args.bin, seed, f, seeddir, casedir):
        t0 = time.monotonic()
        rc, err, out = run(argv, casedir)
        results.append({"label": label, "argv": argv, "rc": rc, "err": err, "out": out,
                        "class": classify(rc, err), "secs": time.monotonic() - t0,
                        "hdf5_diag": "HDF5-DIAG" in err})
    return {"i": i, "seed": seed, "file": f, "dir": casedir, "muts": muts, "results": results}


ALLOC_ERRORS = ("out-of-memory", "allocation-size-too-big", "calloc-overflow",
                "malloc-exceeds", "requested allocation size")


def rerun(argv, cwd, extra):
    e = env()
    e["ASAN_OPTIONS"] = e["ASAN_OPTIONS"] + ":" + extra
    r = subprocess.run(TIMEOUT + argv, cwd=cwd, env=e, stdin=subprocess.DEVNULL,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return r.returncode, r.stderr.decode("utf-8", "replace")


def save_failure(work, n, case, seeddir):
    """Keep a failing case in WORK/failures/NNN: the mutated file, the valid dataset it was
    run with, commands.sh (runs them from there), each command's stderr and stdout's end.
    A sanitizer report is run again with fast_unwind_on_malloc=0 (LABEL.stderr-full: the
    frames past the HDF5 library), an allocation failure also with allocator_may_return_null=1
    (what a build without ASan would do: r["as_null"])."""
    d = os.path.join(work, "failures", "%03d" % n)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    name = os.path.basename(case["file"])
    shutil.copyfile(case["file"], os.path.join(d, name))
    data = SEEDS[case["seed"]][3]
    if data != name:
        shutil.copyfile(os.path.join(seeddir, data), os.path.join(d, data))
    desc = "case %d seed %s: %s" % (case["i"], case["seed"], "; ".join(w for _, w in case["muts"]))
    open(os.path.join(d, "mutations.txt"), "w").write(desc + "\n")

    def local(a):
        if a == case["file"]:
            return name
        if a == os.path.join(seeddir, data):
            return data
        return a.replace(case["dir"] + "/", "")
    with open(os.path.join(d, "commands.sh"), "w") as sh:
        sh.write("#!/bin/sh\n# %s\n# run from this directory: sh commands.sh\n" % desc)
        sh.write("cd \"$(dirname \"$0\")\"\n")
        for k, v in ENV_EXTRA.items():
            sh.write("export %s=%s\n" % (k, v))
        for r in case["results"]:
            argv = [local(a) for a in r["argv"]]
            sh.write("# %s: %s (exit %d)\n%s\n" % (r["label"], r["class"], r["rc"],
                                                   " ".join(shlex.quote(a) for a in TIMEOUT + argv)))
    for r in case["results"]:
        open(os.path.join(d, "%s.stderr" % r["label"]), "w").write(r["err"])
        open(os.path.join(d, "%s.stdout-tail" % r["label"]), "w").write(r["out"])
        if r["class"] != "SANITIZER":
            continue
        argv = [local(a) for a in r["argv"]]
        _, full = rerun(argv, d, "fast_unwind_on_malloc=0")
        r["full"] = full
        open(os.path.join(d, "%s.stderr-full" % r["label"]), "w").write(full)
        if any(m in r["err"] for m in ALLOC_ERRORS):
            rc, err = rerun(argv, d, "allocator_may_return_null=1")
            # its warning names AddressSanitizer: not a report
            quiet = "\n".join(l for l in err.splitlines()
                              if "WARNING: AddressSanitizer failed to allocate" not in l)
            r["as_null"] = "%s (exit %d)" % (classify(rc, quiet), rc)
            open(os.path.join(d, "%s.stderr-as-null" % r["label"]), "w").write(err)
        shutil.rmtree(os.path.join(d, "o"), ignore_errors=True)
    return d


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bin", required=True, help="the rnntrain binary (an ASan/UBSan build)")
    ap.add_argument("--work", required=True, help="work directory (cases, failures)")
    ap.add_argument("--cases", type=int, default=300)
    ap.add_argument("--seconds", type=float, default=240,
                    help="no case starts after this many seconds (default 240)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--jobs", type=int, default=1, help="cases run at once (default 1)")
    ap.add_argument("--seeds", help="directory of the seed files (default WORK/seeds)")
    ap.add_argument("--only", help="comma-separated seed names to fuzz (default all: %s)"
                    % ",".join(SEEDS))
    ap.add_argument("--kinds", help="comma-separated mutation kinds to draw from (default all)")
    ap.add_argument("--keep", action="store_true", help="keep the passing cases' directories")
    args = ap.parse_args()

    args.bin = os.path.abspath(args.bin)
    if not os.access(args.bin, os.X_OK):
        print("fuzz_readers: %s is not an executable" % args.bin, file=sys.stderr)
        return 2
    work = os.path.abspath(args.work)
    os.makedirs(work, exist_ok=True)
    shutil.rmtree(os.path.join(work, "failures"), ignore_errors=True)
    seeddir = os.path.abspath(args.seeds or os.path.join(work, "seeds"))
    if not all(os.path.exists(os.path.join(seeddir, s[2])) for s in SEEDS.values()):
        make_seeds(args.bin, seeddir)
    seednames = list(SEEDS) if not args.only else args.only.split(",")
    if args.kinds:
        args.kinds = args.kinds.split(",")
        unknown = [k for k in args.kinds if k not in KIND_WEIGHTS]
        if unknown:
            print("fuzz_readers: unknown mutation kind %s (known: %s)"
                  % (",".join(unknown), ",".join(KIND_WEIGHTS)), file=sys.stderr)
            return 2
    for s in seednames:
        if s not in SEEDS:
            print("fuzz_readers: unknown seed %s" % s, file=sys.stderr)
            return 2

    # the unmutated seeds must pass every command: else the fuzz results mean nothing
    base = os.path.join(work, "cases", "baseline")
    for s in seednames:
        shutil.rmtree(base, ignore_errors=True)
        os.makedirs(base)
        f = os.path.join(seeddir, SEEDS[s][2])
        for label, argv in commands(args.bin, s, f, seeddir, base):
            rc, err, _ = run(argv, base)
            if classify(rc, err) != "OK":
                print("fuzz_readers: the unmutated seed %s fails %s (exit %d):\n%s"
                      % (s, label, rc, err), file=sys.stderr)
                return 2
    shutil.rmtree(base, ignore_errors=True)

    t0 = time.monotonic()
    deadline = t0 + args.seconds
    lock = threading.Lock()
    cases = {}

    def job(i):
        if time.monotonic() > deadline:
            return None
        c = run_case(args, i, seednames, seeddir, work)
        with lock:
            cases[i] = c
        return c

    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, args.jobs)) as ex:
        for c in ex.map(job, range(args.cases)):
            if c is None:
                continue
            if not args.keep and not any(r["class"] in FAILURES for r in c["results"]):
                shutil.rmtree(c["dir"], ignore_errors=True)
    elapsed = time.monotonic() - t0

    per_class = collections.Counter()
    per_kind = collections.defaultdict(collections.Counter)
    per_seed = collections.defaultdict(collections.Counter)
    per_cmd = collections.defaultdict(collections.Counter)
    diag = 0
    sigs = collections.defaultdict(list)
    nfail = 0
    ordered = [cases[i] for i in sorted(cases)]
    for c in ordered:
        for r in c["results"]:
            per_class[r["class"]] += 1
            per_cmd["%s %s" % (c["seed"], r["label"])][r["class"]] += 1
            diag += r["hdf5_diag"]
        worst = next((k for k in FAILURES if any(r["class"] == k for r in c["results"])), None)
        worst = worst or ("CLEAN_ERROR" if any(r["class"] == "CLEAN_ERROR" for r in c["results"])
                          else "OK")
        for k, _ in c["muts"]:
            per_kind[k][worst] += 1
        per_seed[c["seed"]][worst] += 1
        if worst in FAILURES:
            nfail += 1
            d = save_failure(work, nfail, c, seeddir)
            print("FAIL %s case %d (%s): %s" % (os.path.relpath(d, work), c["i"], c["seed"],
                                                "; ".join(w for _, w in c["muts"])))
            for r in c["results"]:
                if r["class"] in FAILURES:
                    sigs[signature(r)].append("%03d" % nfail)
                    print("    %s: %s (exit %d): %s" % (r["label"], r["class"], r["rc"],
                                                     signature(r)))
                    for l in first_lines(r.get("full") or r["err"]):
                        print("      | " + l[:200])
            if not args.keep:
                shutil.rmtree(c["dir"], ignore_errors=True)

    def row(counter):
        return " ".join("%s %d" % (k, counter[k]) for k in CLASSES if counter[k])

    print("\n%d cases (%d commands) in %.1f s, seed %d%s" % (
        len(ordered), sum(per_class.values()), elapsed, args.seed,
        "" if len(ordered) == args.cases else " (--seconds reached: %d of %d cases)"
        % (len(ordered), args.cases)))
    print("commands by class: %s" % row(per_class))
    if diag:
        print("commands with an HDF5-DIAG error stack on stderr: %d" % diag)
    print("cases by seed (worst class of the case):")
    for s in sorted(per_seed):
        print("  %-10s %s" % (s, row(per_seed[s])))
    print("cases by mutation kind (worst class of the case; '!' = h5py could not apply it):")
    for k in sorted(per_kind):
        print("  %-14s %s" % (k, row(per_kind[k])))
    print("commands by seed and command:")
    for k in sorted(per_cmd):
        print("  %-18s %s" % (k, row(per_cmd[k])))
    if sigs:
        print("failing commands grouped by a guess at the root cause (failure directories):")
        for k in sorted(sigs, key=lambda k: -len(sigs[k])):
            print("  %3d  %s\n        %s" % (len(sigs[k]), k, " ".join(sigs[k][:12])
                                           + (" ..." if len(sigs[k]) > 12 else "")))
    print("failing cases: %d%s" % (nfail, " (in %s)" % os.path.join(work, "failures")
                                   if nfail else ""))
    return 1 if nfail else 0


if __name__ == "__main__":
    sys.exit(main())
