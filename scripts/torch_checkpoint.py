#!/usr/bin/python3
"""Load an rnntrain checkpoint (or model.h5) into PyTorch and evaluate it.

    torch_checkpoint.py CHECKPOINT_OR_MODEL --data DATA.h5 [--split valid]
                        [--batch 32] [--bptt 64] [--json] [--verify]
    torch_checkpoint.py CHECKPOINT --verify            (checksums only, no evaluation)

CHECKPOINT_OR_MODEL is a checkpoint (DIR/checkpoints/ckpt-STEP.h5), a model file
(DIR/model.h5) or a training output directory (then DIR/model.h5, as `rnntrain eval`).
Both file kinds hold the parameters under /params/<PyTorch state_dict name>; they are
loaded with a strict load_state_dict into the module of docs/formats.md:

    class Net(nn.Module):
        def __init__(self, V, E, H, L, cell):      # cell in nn.RNN, nn.LSTM, nn.GRU
            super().__init__()
            self.embedding = nn.Embedding(V, E)
            self.rnn = cell(E, H, L)                  # tanh for nn.RNN; batch_first=False
            self.head = nn.Linear(H, V)

A language model whose layers are all mamba, or all s5 (of the embedding's width, with one
set of settings: the attributes of /layers/l{k}), loads the same way into the PyTorch module
of scripts/ssm_reference.py (imported from this script's directory):

    MambaLM(V, H, L, d_state, d_conv, expand, dt_rank, tied=tied_head)   backbone.* names;
        lm_head.weight only when untied (`rnntrain train --untie`)
    S5LM(V, H, L, P, conj_sym, bilinear, clip_eigs, glu)    P = d_state / 2 with conj_sym
        (attribute conj_sym 1), d_state without (2)

Tensors rnntrain stores 2-D are reshaped to the module's shapes first (the same values in
the same order): Mamba's conv1d.weight (E,K) -> (E,1,K), S5's B (P,2H) -> (P,H,2) and
C (H,2P) -> (H,P,2).  Their forward is the reference's plain time loop, carrying every
layer's state (Mamba ssm and conv, S5 x) across chunks from zero.  Mixed stacks (of kinds,
or of widths for rnn/lstm/gru) and Mamba layers with an input encoder (embed differs from
the width) are refused.

Evaluation has the semantics of `rnntrain eval` (src/cmd/eval.c): the split of N tokens is read
as S = --batch carried-state streams of L = N // S tokens each (stream g = tokens
[g*L, (g+1)*L)), from zero state, in chunks of T = --bptt steps including the short last
chunk, scoring all S*(L-1) predictions; the result is the mean cross-entropy in nats.
Float32 model, one thread (torch.set_num_threads(1)); per-token losses are accumulated in
float64 like the C code.

--verify recomputes every dataset's "checksum" attribute with a port of h5_hash
(src/h5util.c) and fails (exit 1) if any dataset is missing its checksum or does not match.
Model files carry no checksums, so --verify needs a checkpoint.  Pure Python: about
1 s per 8 MB of datasets.

Output: "valid: 1.2345 nats/token | 1.7810 bits/token | perplexity 3.437 | 9824 tokens"
or with --json one object {"split", "nats", "bits", "perplexity", "tokens", ...} (Mamba and
S5 models: "kind", "settings" and "tied_head" where the RNNs have "cell").  The reference
time loops are slower than nn.LSTM: about 0.25 s per 10k tokens for a 2x24 Mamba with
d_state 4, 0.6 s for a 2x32 one with d_state 16.
Exit status: 0 good, 1 bad input / failed verification (with a message on stderr).

As a module:
    sys.path.insert(0, "scripts"); import torch_checkpoint as tc
    net, meta = tc.load_net("run/checkpoints/ckpt-0000001000.h5")   # torch.nn.Module
    logits, state = net(x, None)          # x: (T, B) int64 token ids
    # state: PyTorch's h (or (h, c)) for Net; a list of per-layer state dicts for
    # MambaLM/S5LM (layouts in ssm_reference.py; zero when None)
"""

import argparse
import json
import math
import os
import sys

import numpy as np

FORMATS = ("rnntrain-model", "rnntrain-checkpoint")
VERSIONS = (1, 2)  # 2: the layer stack is named ("stack", layers/l{k}), state per tensor
CELLS = ("rnn", "lstm", "gru")
GATES = {"rnn": 1, "lstm": 4, "gru": 3}
SSM_KINDS = ("mamba", "s5")  # state space layers: the modules of scripts/ssm_reference.py
# the settings attributes of /layers/l{k} per kind (src/layers/layer.c layer_opt_fields)
SSM_SETTINGS = {"mamba": ("d_state", "d_conv", "expand", "dt_rank"),
                "s5": ("d_state", "blocks", "conj_sym", "bilinear", "clip_eigs", "glu")}
MASK64 = 0xFFFFFFFFFFFFFFFF


class InputError(Exception):
    """Bad input: reported as 'torch_checkpoint: error: ...' with exit status 1."""


# ---------------------------------------------------------------------------------------
# h5_hash, ported exactly from src/h5util.c:
#   h = 0x9E3779B97F4A7C15 ^ bytes
#   for each whole 8-byte word w (little-endian): h = (h ^ w) * 0xff51afd7ed558ccd; h ^= h >> 32
#   for each tail byte c:                         h = (h ^ c) * 0x100000001b3
#   h ^= h >> 29; h *= 0xc4ceb9fe1a85ec53; return h ^ (h >> 32)      (all mod 2^64)
# The C code hashes the dataset as read into memory with the native type (x86: little-endian),
# so the bytes hashed here are the values in little-endian order.

def h5_hash(data):
    """h5_hash of a bytes-like object or a numpy array (its little-endian bytes)."""
    if isinstance(data, np.ndarray):
        arr = np.ascontiguousarray(data)
        if arr.dtype.byteorder == ">" or (arr.dtype.byteorder == "=" and sys.byteorder == "big"):
            arr = arr.astype(arr.dtype.newbyteorder("<"))
        buf = memoryview(arr.reshape(-1).view(np.uint8))
    else:
        buf = memoryview(bytes(data))
    n = buf.nbytes
    h = (0x9E3779B97F4A7C15 ^ n) & MASK64
    nwords = n // 8
    words = np.frombuffer(buf, dtype="<u8", count=nwords) if nwords else np.zeros(0, "<u8")
    K = 0xFF51AFD7ED558CCD
    block = 1 << 20  # words converted to Python ints per round (bounded memory)
    for start in range(0, nwords, block):
        for w in words[start:start + block].tolist():
            h = ((h ^ w) * K) & MASK64
            h ^= h >> 32
    for c in bytes(buf[nwords * 8:]):
        h = ((h ^ c) * 0x100000001B3) & MASK64
    h ^= h >> 29
    h = (h * 0xC4CEB9FE1A85EC53) & MASK64
    return h ^ (h >> 32)


# ---------------------------------------------------------------------------------------
# HDF5 helpers

def _h5py():
    try:
        import h5py
    except ImportError as e:  # pragma: no cover
        raise InputError("cannot import h5py (%s); use Debian's /usr/bin/python3 with "
                         "python3-h5py" % e)
    return h5py


def _open(path, what):
    h5py = _h5py()
    if not os.path.exists(path):
        raise InputError("%s '%s': no such file" % (what, path))
    if os.path.isdir(path):
        raise InputError("%s '%s': is a directory" % (what, path))
    if not os.access(path, os.R_OK):
        raise InputError("%s '%s': cannot read it (permission denied)" % (what, path))
    try:
        if not h5py.is_hdf5(path):
            raise InputError("%s '%s': not an HDF5 file (truncated or overwritten?)"
                             % (what, path))
        return h5py.File(path, "r")
    except InputError:
        raise
    except Exception as e:
        raise InputError("%s '%s': HDF5 cannot open it (damaged?): %s" % (what, path, e))


def _attr_str(f, name, path, what):
    if name not in f.attrs:
        raise InputError("%s '%s': attribute '%s' is missing (not a file written by rnntrain?)"
                         % (what, path, name))
    v = f.attrs[name]
    if isinstance(v, np.ndarray) and v.shape in ((), (1,)):
        v = v.reshape(-1)[0]
    if isinstance(v, (bytes, np.bytes_)):
        v = bytes(v).decode("utf-8", "replace")
    if not isinstance(v, str):
        raise InputError("%s '%s': attribute '%s' should be a string, found %r"
                         % (what, path, name, v))
    return v.rstrip("\0")


def _attr_int(f, name, path, what):
    if name not in f.attrs:
        raise InputError("%s '%s': attribute '%s' is missing (not a file written by rnntrain?)"
                         % (what, path, name))
    v = np.asarray(f.attrs[name])
    if v.size != 1 or not np.issubdtype(v.dtype, np.integer):
        raise InputError("%s '%s': attribute '%s' should be one integer, found %r"
                         % (what, path, name, f.attrs[name]))
    return int(v.reshape(-1)[0])


def _read_vocab(f, V, path, what):
    if "vocab" not in f or not hasattr(f["vocab"], "shape"):
        raise InputError("%s '%s': dataset '/vocab' is missing" % (what, path))
    ds = f["vocab"]
    if ds.shape != (V,) or not np.issubdtype(ds.dtype, np.integer):
        raise InputError("%s '%s': '/vocab' should be %d integers, found shape %s dtype %s"
                         % (what, path, V, ds.shape, ds.dtype))
    return ds[()].astype(np.int64)


def resolve_model_path(p):
    """A directory means DIR/model.h5 (as `rnntrain eval --model DIR`)."""
    if os.path.isdir(p):
        m = os.path.join(p, "model.h5")
        if not os.path.exists(m):
            raise InputError("model '%s': a directory without model.h5 (pass a checkpoint "
                             "file, e.g. %s/checkpoints/ckpt-STEP.h5)" % (p, p.rstrip("/")))
        return m
    if not os.path.exists(p):
        raise InputError("model '%s': no such file or directory" % p)
    return p


# ---------------------------------------------------------------------------------------
# Checksums

def verify_checksums(path):
    """Verify every dataset's checksum. Returns (n_verified, [problems])."""
    f = _open(path, "checkpoint")
    problems = []
    count = [0]
    with f:
        fmt = _attr_str(f, "format", path, "checkpoint")
        if fmt != "rnntrain-checkpoint":
            if fmt == "rnntrain-model":
                raise InputError("'%s' is a model file (format 'rnntrain-model'): model files "
                                 "carry no checksums; --verify needs a checkpoint "
                                 "(format 'rnntrain-checkpoint')" % path)
            raise InputError("'%s': format is '%s', expected 'rnntrain-checkpoint'"
                             % (path, fmt))
        version = _attr_int(f, "version", path, "checkpoint")
        if version not in VERSIONS:
            problems.append("checkpoint format version %d, this script reads versions %s"
                            % (version, " and ".join(map(str, VERSIONS))))
        h5py = _h5py()

        def visit(name, obj):
            if not isinstance(obj, h5py.Dataset):
                return
            count[0] += 1
            if "checksum" not in obj.attrs:
                problems.append("dataset '%s' has no checksum" % name)
                return
            want = int(np.asarray(obj.attrs["checksum"]).reshape(-1)[0]) & MASK64
            try:
                data = obj[()]
            except Exception as e:
                problems.append("dataset '%s' cannot be read (truncated file?): %s" % (name, e))
                return
            have = h5_hash(np.asarray(data))
            if have != want:
                problems.append("dataset '%s' fails its checksum (stored %016x, computed %016x;"
                                " corrupted)" % (name, want, have))

        try:
            f.visititems(visit)
        except Exception as e:
            problems.append("the file's structure cannot be read (truncated or corrupted): %s"
                            % e)
        if count[0] == 0 and not problems:
            problems.append("it holds no datasets")
    return count[0], problems


# ---------------------------------------------------------------------------------------
# Model

def build_net(cell, V, E, H, L):
    import torch.nn as nn

    cells = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}

    class Net(nn.Module):
        def __init__(self, V, E, H, L, cell):
            super().__init__()
            self.embedding = nn.Embedding(V, E)
            self.rnn = cell(E, H, L)
            self.head = nn.Linear(H, V)

        def forward(self, x, state=None):
            y, state = self.rnn(self.embedding(x), state)
            return self.head(y), state

    return Net(V, E, H, L, cells[cell])


def expected_params(cell, V, E, H, L):
    """state_dict names and shapes of Net (docs/formats.md), in state_dict order."""
    G = GATES[cell]
    out = [("embedding.weight", (V, E))]
    for k in range(L):
        inp = E if k == 0 else H
        out += [("rnn.weight_ih_l%d" % k, (G * H, inp)), ("rnn.weight_hh_l%d" % k, (G * H, H)),
                ("rnn.bias_ih_l%d" % k, (G * H,)), ("rnn.bias_hh_l%d" % k, (G * H,))]
    return out + [("head.weight", (V, H)), ("head.bias", (V,))]


# ---------------------------------------------------------------------------------------
# State space language models (all layers mamba, or all s5): scripts/ssm_reference.py

def _ssm_reference():
    """scripts/ssm_reference.py, imported from this script's directory (imports torch)."""
    here = os.path.dirname(os.path.abspath(__file__))
    if here not in sys.path:
        sys.path.insert(0, here)
    try:
        import ssm_reference
    except ImportError as e:
        raise InputError("cannot import ssm_reference.py from '%s' (the PyTorch modules of "
                         "Mamba and S5 models): %s" % (here, e))
    return ssm_reference


def s5_modes(settings):
    """P, the stored modes of an S5 layer: d_state (the state size before conjugate halving)
    halved with conj_sym (1 on, 2 off)."""
    return settings["d_state"] // 2 if settings["conj_sym"] == 1 else settings["d_state"]


def build_ssm_net(meta):
    """MambaLM or S5LM of ssm_reference.py for meta (read_model_file); forward(x, None) starts
    from the zero state, as Net's does (evaluate())."""
    ref = _ssm_reference()
    kind, o = meta["kind"], meta["settings"]
    V, H, L = meta["vocab_size"], meta["hidden"], meta["layers"]
    base = ref.MambaLM if kind == "mamba" else ref.S5LM

    class SSMNet(base):
        def forward(self, tokens, states=None):  # states: one dict per layer, None = zero
            if states is None:
                states = self.zero_states(tokens.shape[1])
            return super().forward(tokens, states)

    if kind == "mamba":
        return SSMNet(V, H, L, d_state=o["d_state"], d_conv=o["d_conv"], expand=o["expand"],
                      dt_rank=o["dt_rank"], tied=meta["tied_head"])
    return SSMNet(V, H, L, s5_modes(o), conj_sym=o["conj_sym"] == 1,
                  bilinear=bool(o["bilinear"]), clip_eigs=bool(o["clip_eigs"]),
                  glu=bool(o["glu"]))


def expected_ssm_params(meta):
    """(name, stored shape, module shape) of MambaLM or S5LM (ssm_reference.py): rnntrain
    stores Mamba's conv1d.weight (E,1,K) as (E,K), S5's B (P,H,2) as (P,2H) and C (H,P,2) as
    (H,2P), the same values in the same order."""
    kind, o = meta["kind"], meta["settings"]
    V, H, L = meta["vocab_size"], meta["hidden"], meta["layers"]
    out = []
    if kind == "mamba":
        N, K, R = o["d_state"], o["d_conv"], o["dt_rank"]
        E = o["expand"] * H
        out.append(("backbone.embedding.weight", (V, H)))
        for i in range(L):
            m = "backbone.layers.%d.mixer." % i
            out += [("backbone.layers.%d.norm.weight" % i, (H,)),
                    (m + "in_proj.weight", (2 * E, H)), (m + "conv1d.weight", (E, K), (E, 1, K)),
                    (m + "conv1d.bias", (E,)), (m + "x_proj.weight", (R + 2 * N, E)),
                    (m + "dt_proj.weight", (E, R)), (m + "dt_proj.bias", (E,)),
                    (m + "A_log", (E, N)), (m + "D", (E,)), (m + "out_proj.weight", (H, E))]
        out.append(("backbone.norm_f.weight", (H,)))
        if not meta["tied_head"]:
            out.append(("lm_head.weight", (V, H)))
    else:
        P = s5_modes(o)
        out.append(("embedding.weight", (V, H)))
        for i in range(L):
            q = "layers.%d." % i
            out += [(q + "norm.weight", (H,)), (q + "norm.bias", (H,)),
                    (q + "seq.Lambda_re", (P,)), (q + "seq.Lambda_im", (P,)),
                    (q + "seq.B", (P, 2 * H), (P, H, 2)), (q + "seq.C", (H, 2 * P), (H, P, 2)),
                    (q + "seq.D", (H,)), (q + "seq.log_step", (P, 1))]
            if o["glu"]:
                out += [(q + "out2.weight", (H, H)), (q + "out2.bias", (H,))]
        out += [("head.weight", (V, H)), ("head.bias", (V,))]
    return [e if len(e) == 3 else e + (e[1],) for e in out]


def _ssm_module_text(meta):
    """'a mamba 2x24 (d_state 4, d_conv 4, expand 2, dt_rank 2, tied head; embed 24,
    vocab 256) MambaLM' for messages."""
    o = meta["settings"]
    sets = ", ".join("%s %d" % (k, o[k]) for k in SSM_SETTINGS[meta["kind"]])
    if meta["kind"] == "mamba":
        sets += ", tied head" if meta["tied_head"] else ", own head"
    return "a %s %dx%d (%s; embed %d, vocab %d) %s" % (
        meta["kind"], meta["layers"], meta["hidden"], sets, meta["embed"], meta["vocab_size"],
        "MambaLM" if meta["kind"] == "mamba" else "S5LM")


def _read_ssm_stack(f, path, what):
    """The layers of a version-2 file without 'cell': one state space kind and width (with
    embed = that width) and one set of settings, as MambaLM/S5LM are. Returns (kind, L, H,
    settings); any other stack is refused."""
    stack = _attr_str(f, "stack", path, what)
    kinds, widths = [], []
    for item in stack.split(","):
        k, _, w = item.partition(":")
        kinds.append(k.strip())
        widths.append(int(w) if w.strip().isdigit() else -1)
    distinct = list(dict.fromkeys(kinds))
    if not any(k in SSM_KINDS for k in kinds):
        raise InputError("%s '%s': a stack of layers of different kinds or widths (%s); "
                         "this script loads one nn.RNN/LSTM/GRU module (all layers of one "
                         "kind and width) only" % (what, path, stack))
    if len(distinct) > 1:
        raise InputError("%s '%s': a stack of layers of different kinds, %s (%s); this "
                         "script loads stacks of one kind only (rnn, lstm or gru of one width, "
                         "or all mamba, or all s5)"
                         % (what, path, ", ".join(distinct[:-1]) + " and " + distinct[-1], stack))
    kind = kinds[0]
    L = _attr_int(f, "layers", path, what)
    if L != len(kinds) or not 1 <= L <= 64:
        raise InputError("%s '%s': 'layers' is %d but 'stack' lists %d layers (%s)"
                         % (what, path, L, len(kinds), stack))
    E = _attr_int(f, "embed", path, what)
    if len(set(widths)) > 1 or widths[0] != E or not 1 <= E <= 65536:
        raise InputError("%s '%s': a %s stack %s with embed %d: this script loads %s models "
                         "whose layers all have the embedding's width (rnntrain adds an "
                         "encoder.weight/bias projection otherwise, which %s has not)"
                         % (what, path, kind, stack, E, kind,
                            "MambaLM" if kind == "mamba" else "S5LM"))
    h5py = _h5py()
    settings = None
    for k in range(L):
        name = "layers/l%d" % k
        if name not in f or not isinstance(f[name], h5py.Group):
            raise InputError("%s '%s': group '/%s' (the settings of a %s layer) is missing"
                             % (what, path, name, kind))
        g = f[name]
        gwhat = "%s '%s': /%s" % (what, path, name)
        for a in ("kind", "width", "input_width") + SSM_SETTINGS[kind]:
            if a not in g.attrs:
                raise InputError("%s has no attribute '%s' (a setting of its %s layer)"
                                 % (gwhat, a, kind))
        if _attr_str(g, "kind", path, what) != kind or _attr_int(g, "width", path, what) != E \
                or _attr_int(g, "input_width", path, what) != E:
            raise InputError("%s: kind '%s', width %d, input_width %d; 'stack' says %s:%d "
                             "(input %d)" % (gwhat, _attr_str(g, "kind", path, what),
                                             _attr_int(g, "width", path, what),
                                             _attr_int(g, "input_width", path, what), kind, E, E))
        o = {a: _attr_int(g, a, path, what) for a in SSM_SETTINGS[kind]}
        bad = [a for a in o if o[a] < (0 if a in ("bilinear", "clip_eigs", "glu") else 1)
               or o[a] > (1 << 20)]
        if kind == "s5":
            bad += [a for a in ("bilinear", "clip_eigs", "glu") if o[a] > 1]
            bad += ["conj_sym"] if o["conj_sym"] not in (1, 2) else []
            if not bad and o["conj_sym"] == 1 and o["d_state"] % 2:
                bad.append("d_state")
        if bad:
            raise InputError("%s: bad setting %s (%s layer: %s)"
                             % (gwhat, ", ".join("%s=%d" % (a, o[a]) for a in bad), kind,
                                ", ".join("%s=%d" % kv for kv in o.items())))
        if settings is None:
            settings = o
        elif o != settings:
            diff = [a for a in o if o[a] != settings[a]]
            raise InputError("%s: settings %s differ from layer 0's (%s); %s takes one set "
                             "for all layers" % (gwhat, ", ".join("%s=%d" % (a, o[a])
                                                                  for a in diff),
                                                 ", ".join("%s=%d" % (a, settings[a])
                                                           for a in diff),
                                                 "MambaLM" if kind == "mamba" else "S5LM"))
    return kind, L, E, settings


def read_model_file(path_in):
    """Read and check a checkpoint or model file (or DIR/model.h5) with h5py only.

    Returns (meta, params): meta holds path, format, version, cell, layers, hidden, embed,
    vocab_size, vocab_kind, vocab (numpy int64), and for checkpoints step, epoch, skipped,
    global_streams, bptt, ranks, optim, optim_step; params maps state_dict names to float32
    numpy arrays of the expected shapes.  A Mamba or S5 model has kind (mamba, s5) instead
    of cell, settings (the /layers/l{k} attributes) and tied_head; its params have the
    stored shapes (make_net reshapes them)."""
    path = resolve_model_path(path_in)
    what = "model file"
    f = _open(path, what)
    with f:
        fmt = _attr_str(f, "format", path, what)
        if fmt not in FORMATS:
            raise InputError("%s '%s': format is '%s', expected 'rnntrain-model' or "
                             "'rnntrain-checkpoint'" % (what, path, fmt))
        what = "checkpoint" if fmt == "rnntrain-checkpoint" else "model file"
        version = _attr_int(f, "version", path, what)
        if version not in VERSIONS:
            raise InputError("%s '%s': format version %d, this script reads versions %s"
                             % (what, path, version, " and ".join(map(str, VERSIONS))))
        ssm = None
        if "cell" not in f.attrs and "stack" in f.attrs:
            ssm = _read_ssm_stack(f, path, what)  # refuses every other stack without 'cell'
            cell, L, H, settings = ssm
            E, V = (_attr_int(f, k, path, what) for k in ("embed", "vocab_size"))
            if not 2 <= V <= 0x110000:
                raise InputError("%s '%s': bad shape vocab_size=%d" % (what, path, V))
        else:
            cell = _attr_str(f, "cell", path, what)
            if cell not in CELLS:
                raise InputError("%s '%s': cell '%s', expected rnn, lstm or gru"
                                 % (what, path, cell))
            L, H, E, V = (_attr_int(f, k, path, what)
                          for k in ("layers", "hidden", "embed", "vocab_size"))
            if not (1 <= L <= 64 and 1 <= H <= 65536 and 1 <= E <= 65536
                    and 2 <= V <= 0x110000):
                raise InputError("%s '%s': bad shape layers=%d hidden=%d embed=%d vocab_size=%d"
                                 % (what, path, L, H, E, V))
        # sequence-task models (float features in, conditioning, another input vocabulary)
        # have other parameters and no vocabulary: not the language-model Net
        inputs = _attr_str(f, "inputs", path, what) if "inputs" in f.attrs else "tokens"
        C = _attr_int(f, "cond", path, what) if "cond" in f.attrs else 0
        in_vocab = _attr_int(f, "in_vocab", path, what) if "in_vocab" in f.attrs else 0
        if inputs != "tokens" or C != 0 or in_vocab not in (0, V):
            raise InputError("%s '%s': a sequence-task model (inputs=%s, cond=%d, in_vocab=%d);"
                             " this script loads language models (token inputs, no "
                             "conditioning) only" % (what, path, inputs, C, in_vocab))
        meta = {"path": path, "format": fmt, "version": version, "cell": cell, "layers": L,
                "hidden": H, "embed": E, "vocab_size": V,
                "vocab_kind": _attr_str(f, "vocab_kind", path, what),
                "vocab": _read_vocab(f, V, path, what)}
        if ssm is not None:
            del meta["cell"]
            # absent tied_head: tied, as src/io/model_io.c reads it (S5 heads are never tied)
            tied = _attr_int(f, "tied_head", path, what) if "tied_head" in f.attrs else \
                int(cell == "mamba")
            if tied not in (0, 1) or (tied and cell != "mamba"):
                raise InputError("%s '%s': attribute 'tied_head' is %d, expected %s for a %s "
                                 "model" % (what, path, tied, "0 or 1" if cell == "mamba"
                                            else "0", cell))
            meta.update(kind=cell, settings=settings, tied_head=bool(tied))
        if fmt == "rnntrain-checkpoint":
            for k in ("step", "epoch", "skipped", "global_streams", "bptt", "ranks",
                      "optim_step"):
                if k in f.attrs:
                    meta[k] = _attr_int(f, k, path, what)
            if "optim" in f.attrs:
                meta["optim"] = _attr_str(f, "optim", path, what)
        h5py = _h5py()
        if "params" not in f or not isinstance(f["params"], h5py.Group):
            raise InputError("%s '%s': group '/params' is missing" % (what, path))
        g = f["params"]
        if ssm is None:
            expected = expected_params(cell, V, E, H, L)
            module = "a %s %dx%d (embed %d, vocab %d) Net" % (cell, L, H, E, V)
        else:
            expected = [(n, stored) for n, stored, _ in expected_ssm_params(meta)]
            module = _ssm_module_text(meta)
        names = [n for n, _ in expected]
        missing = [n for n in names if n not in g]
        unexpected = sorted(k for k in g.keys() if k not in names)
        if missing or unexpected:
            raise InputError(
                "%s '%s': /params does not match %s: missing %s; unexpected %s"
                % (what, path, module, missing or "none", unexpected or "none"))
        params = {}
        for n, shape in expected:
            ds = g[n]
            if not isinstance(ds, h5py.Dataset):
                raise InputError("%s '%s': '/params/%s' is not a dataset" % (what, path, n))
            if tuple(ds.shape) != shape:
                raise InputError("%s '%s': dataset '/params/%s' should have shape %s, found %s"
                                 % (what, path, n, shape, tuple(ds.shape)))
            if not np.issubdtype(ds.dtype, np.floating):
                raise InputError("%s '%s': dataset '/params/%s' should hold floats, found %s"
                                 % (what, path, n, ds.dtype))
            try:
                params[n] = np.ascontiguousarray(ds[()], dtype=np.float32)
            except Exception as e:
                raise InputError("%s '%s': reading '/params/%s' failed (damaged file?): %s"
                                 % (what, path, n, e))
    meta["params"] = int(sum(a.size for a in params.values()))
    return meta, params


def make_net(meta, params):
    """Net (or MambaLM/S5LM) with the parameters loaded by a strict load_state_dict (eval
    mode)."""
    import torch

    if "kind" in meta:
        net = build_ssm_net(meta)
        shapes = {n: module for n, _, module in expected_ssm_params(meta)}
        sd = {n: torch.from_numpy(a.reshape(shapes[n])) for n, a in params.items()}
    else:
        net = build_net(meta["cell"], meta["vocab_size"], meta["embed"], meta["hidden"],
                        meta["layers"])
        sd = {n: torch.from_numpy(a) for n, a in params.items()}
    try:
        net.load_state_dict(sd, strict=True)
    except RuntimeError as e:
        raise InputError("'%s': load_state_dict failed: %s" % (meta["path"], e))
    net.eval()
    return net


def load_net(path_in):
    """Load a checkpoint or model file (or output directory) into Net: returns (net, meta)."""
    meta, params = read_model_file(path_in)
    return make_net(meta, params), meta


# ---------------------------------------------------------------------------------------
# Data and evaluation

def load_split(path, split, model_meta):
    what = "data file"
    f = _open(path, what)
    with f:
        fmt = _attr_str(f, "format", path, what)
        if fmt != "rnntrain-tokens":
            raise InputError("%s '%s': format is '%s', expected 'rnntrain-tokens' (make one "
                             "with 'rnntrain prepare')" % (what, path, fmt))
        version = _attr_int(f, "version", path, what)
        if version != 1:
            raise InputError("%s '%s': format version %d, this script reads version 1"
                             % (what, path, version))
        kind = _attr_str(f, "vocab_kind", path, what)
        V = _attr_int(f, "vocab_size", path, what)
        vocab = _read_vocab(f, V, path, what)
        same = (V == model_meta["vocab_size"] and kind == model_meta["vocab_kind"]
                and np.array_equal(vocab, model_meta["vocab"]))
        if not same:
            raise InputError("model '%s' (vocabulary: %d %s) does not match data file '%s' "
                             "(vocabulary: %d %s)" % (model_meta["path"],
                                                      model_meta["vocab_size"],
                                                      model_meta["vocab_kind"], path, V, kind))
        if split not in f or not hasattr(f[split], "shape"):
            raise InputError("%s '%s': dataset '/%s' is missing" % (what, path, split))
        ds = f[split]
        if len(ds.shape) != 1:
            raise InputError("%s '%s': dataset '/%s' should be 1-D, found shape %s"
                             % (what, path, split, ds.shape))
        if not np.issubdtype(ds.dtype, np.integer):
            raise InputError("%s '%s': dataset '/%s' should hold integer token ids, found %s"
                             % (what, path, split, ds.dtype))
        x = ds[()].astype(np.int64)
    if x.size and (x.min() < 0 or x.max() >= V):
        bad = int(np.nonzero((x < 0) | (x >= V))[0][0])
        raise InputError("%s '%s': split '%s' token %d is %d, outside the vocabulary [0, %d)"
                         % (what, path, split, bad, int(x[bad]), V))
    return x


def check_streams(N, S, data_path, split):
    """Tokens per stream, L = N // S; at least 2 are needed for one prediction."""
    L = N // S
    if L < 2:
        raise InputError("data file '%s': split '%s' has %d tokens; cut into %d streams that "
                         "is %d per stream, fewer than the 2 needed (use a smaller --batch)"
                         % (data_path, split, N, S, L))
    return L


def evaluate(net, tokens, S, T, V, data_path="", split="valid"):
    """Mean nats over S*(L-1) predictions, as src/cmd/eval.c. Returns (nats_sum, count)."""
    import torch
    import torch.nn.functional as F

    L = check_streams(tokens.size, S, data_path, split)
    streams = torch.from_numpy(np.ascontiguousarray(tokens[:S * L].reshape(S, L).T))  # (L,S)
    total = 0.0
    count = 0
    state = None  # zero initial state
    with torch.no_grad():
        c = 0
        while c < L - 1:
            n = min(T, L - 1 - c)
            x = streams[c:c + n]
            y = streams[c + 1:c + n + 1]
            logits, state = net(x, state)
            logp = F.log_softmax(logits.reshape(-1, V).double(), dim=1)
            total += float(-logp.gather(1, y.reshape(-1, 1)).sum())
            count += n * S
            c += n
    return total, count


# ---------------------------------------------------------------------------------------

class _Parser(argparse.ArgumentParser):
    def error(self, message):  # bad arguments are bad input too: exit 1, not argparse's 2
        self.print_usage(sys.stderr)
        print("%s: error: %s" % (self.prog, message), file=sys.stderr)
        sys.exit(1)


def parse_args(argv):
    p = _Parser(
        prog="torch_checkpoint.py",
        description="Load an rnntrain checkpoint or model into PyTorch and evaluate a split "
                    "with the semantics of `rnntrain eval`; optionally verify checksums.")
    p.add_argument("model", metavar="CHECKPOINT_OR_MODEL",
                   help="checkpoint ckpt-STEP.h5, model.h5, or a training output directory")
    p.add_argument("--data", metavar="DATA.h5",
                   help="token dataset (rnntrain prepare); optional with --verify")
    p.add_argument("--split", default="valid", choices=["valid", "test", "train"],
                   help="split to score (default valid)")
    p.add_argument("--batch", type=int, default=32, metavar="S",
                   help="carried-state streams the split is read as (default 32)")
    p.add_argument("--bptt", type=int, default=64, metavar="T",
                   help="chunk length (default 64)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--verify", action="store_true",
                   help="verify every dataset's checksum (checkpoints only) first; exit 1 if "
                        "any fails")
    a = p.parse_args(argv)
    if a.batch < 1:
        p.error("--batch must be >= 1")
    if a.bptt < 1:
        p.error("--bptt must be >= 1")
    if a.data is None and not a.verify:
        p.error("--data DATA.h5 is required (unless only --verify)")
    return a


def run(a):
    result = {}
    if a.verify:
        path = resolve_model_path(a.model)
        n, problems = verify_checksums(path)
        if problems:
            raise InputError("checkpoint '%s' fails verification: %s"
                             % (path, "; ".join(problems)))
        result["checksums_verified"] = n
        if not a.json:
            print("%s: checksums of all %d datasets verified" % (path, n), flush=True)
        if a.data is None:
            if a.json:
                print(json.dumps({"path": path, "checksums_verified": n}))
            return 0

    # every check on the files comes first: torch is imported (seconds) only when they pass
    meta, params = read_model_file(a.model)
    tokens = load_split(a.data, a.split, meta)
    check_streams(tokens.size, a.batch, a.data, a.split)
    import torch
    torch.set_num_threads(1)
    net = make_net(meta, params)
    total, count = evaluate(net, tokens, a.batch, a.bptt, meta["vocab_size"], a.data, a.split)
    nats = total / count
    bits = nats / math.log(2.0)
    ppl = math.exp(nats) if nats < 700 else float("inf")
    if a.json:
        out = {"split": a.split, "nats": nats, "bits": bits, "perplexity": ppl,
               "tokens": count, "path": meta["path"], "format": meta["format"]}
        if "kind" in meta:  # mamba, s5: the kind, its settings and the head
            out.update(kind=meta["kind"], settings=meta["settings"],
                       tied_head=meta["tied_head"])
        else:
            out["cell"] = meta["cell"]
        out.update({"layers": meta["layers"], "hidden": meta["hidden"],
                    "embed": meta["embed"], "vocab_size": meta["vocab_size"],
                    "params": meta["params"], "batch": a.batch, "bptt": a.bptt})
        if "step" in meta:
            out["step"] = meta["step"]
        out.update(result)
        print(json.dumps(out))
    else:
        print("%s: %.4f nats/token | %.4f bits/token | perplexity %.3f | %d tokens"
              % (a.split, nats, bits, ppl, count))
    return 0


def main(argv=None):
    a = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        return run(a)
    except InputError as e:
        print("torch_checkpoint: error: %s" % e, file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
