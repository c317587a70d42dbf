#!/usr/bin/python3
"""Generate the PyTorch reference fixtures for rnntrain's Mamba and S5 layers.

Usage:  /usr/bin/python3 scripts/make_ssm_fixtures.py [OUTDIR]
        (OUTDIR defaults to tests/fixtures next to this script's parent.)
Needs Debian's python3-torch (1.13), python3-h5py and python3-numpy, and
scripts/ssm_reference.py (the models, written as plain time loops).

Writes ref_mamba.h5, ref_s5.h5, ref_s5_glu.h5 and ref_hippo.h5. Deterministic: fixed
seeds, float32, torch.set_num_threads(1), HDF5 object timestamps off, the earliest HDF5
file format; re-running gives byte-identical files.

Models (see ssm_reference.py for the equations and parameter names):
  ref_mamba.h5   MambaLM V=11, d_model=8, n_layer=2, d_state N=4, d_conv K=3, expand 2
                 (E=16), dt_rank R=2, tied head (logits = norm_f(x) @ embedding.T).
  ref_s5.h5      S5LM V=11, H=6, n_layer=2, state size 8 in J=2 HiPPO-N blocks of 4,
                 conj_sym (P=4 stored modes per layer), ZOH, GELU (tanh), no clip_eigs.
  ref_s5_glu.h5  the same sizes with conj_sym OFF (P=8 stored: all eigenvalues of each
                 block), bilinear, clip_eigs on, half-GLU (g = gelu(y); g*sigmoid(out2 g)).
  All: B=3 streams, T=5 steps per chunk, 3 chunks.

Weight recipe (torch.manual_seed(seed) then, in this order):
  mamba (seed 20250301): torch's default init of MambaLM's modules
      (embedding N(0,1), then multiplied by 0.5 (the tied head gives logits of std ~1.4);
      in_proj, x_proj, out_proj, dt_proj: kaiming-uniform
      U(+-1/sqrt(fan_in)); conv1d weight and bias U(+-1/sqrt(K)); dt_proj.bias
      U(+-1/sqrt(R))), then per layer:
      dt_proj.weight ~ U(-R^-0.5, R^-0.5) (as SSM.md);
      dt_proj.bias = inverse_softplus(dt), dt = exp(U(0,1)*(ln 0.5 - ln 0.01) + ln 0.01)
          clamped at 1e-4 (SSM.md's formula with dt_min 0.01, dt_max 0.5 instead of
          1e-3, 0.1, so delta*B*x is not tiny and the state decays within the chunks);
      A_log[d,n] = log(n+1) + 0.1*N(0,1);   D = 1 + 0.2*N(0,1);
      norm.weight = 1 + 0.1*N(0,1);  and finally backbone.norm_f.weight = 1 + 0.1*N(0,1).
  s5 (seed 20250302), s5_glu (seed 20250303): torch's default init of S5LM's modules
      (embedding N(0,1); head and out2 U(+-1/sqrt(H))), then per layer:
      norm.weight = 1 + 0.1*N(0,1), norm.bias = 0.1*N(0,1);
      Lambda_re, Lambda_im = HiPPO-N init (ssm_reference.s5_lambda_init(8, 2, conj_sym):
          Lambda_re = -0.5, Lambda_im from numpy eig, one block tiled twice);
      B ~ N(0,1)/sqrt(2H) (both parts), C ~ N(0,1)/sqrt(P), D ~ N(0,1),
      log_step ~ U(ln 0.05, ln 0.5);
      s5_glu only: Lambda_re[1] = +0.02 and Lambda_re[6] = -5e-5 in every layer, so that
          clip_eigs (min(Lambda_re, -1e-4)) changes the result (checked); their gradients
          are then exactly 0.
  Then the initial states, N(0,1)*0.5, per layer in the order ssm, conv (mamba) / x (s5);
  then the tokens, torch.randint(0, V, (B, 3T+1)).

File layout (time-major everywhere: row t*B+b = stream b at step t):
  /  attrs (int32 scalars)
       ref_mamba:  vocab_size, d_model, layers, batch, bptt, chunks, d_state, d_conv,
                   expand, d_inner, dt_rank, tied (1)
       ref_s5*:    vocab_size, hidden, layers, batch, bptt, chunks, P (stored modes per
                   layer), state_size (8: before conj_sym halves it), blocks, conj_sym,
                   bilinear, clip_eigs, glu, tied (0)
     attrs (strings) model ("mamba" or "s5"), recipe (one line: the weight recipe)
  /params/<name>       float32, PyTorch state_dict names and shapes (ssm_reference.py)
  /tokens              int32 (B, 3T+1); chunk k: inputs tokens[:, kT:kT+T], targets
                       tokens[:, kT+1:kT+T+1]
  /state0/l{i}/<s>     float32 initial state of layer i:
                       mamba  ssm (B, E*N) [d*N+n];  conv (B, (K-1)*E) [j*E+d], j=0 oldest
                              pre-conv input
                       s5     x (B, 2P) [Re x_0..Re x_{P-1}, Im x_0..Im x_{P-1}]
  /chunk{k}/loss       float64 scalar: mean cross-entropy (nats) over the B*T predictions
                       of chunk k, starting from the state carried (detached) from chunk
                       k-1 (/state0 for k=0); computed in float32, stored widened
  /chunk{k}/logits     float32 (T, B, V)
  /chunk{k}/grad/<name>          float32: d loss_k / d parameter (chunk k's loss alone)
  /chunk{k}/dstate0/l{i}/<s>     float32: d loss_k / d (the state chunk k started from)
  /chunk{k}/state/l{i}/<s>       float32: the state after chunk k (chunk k+1 starts here)
  ref_hippo.h5:
  /lambda_re_{Pb}_{c}, /lambda_im_{Pb}_{c}  float64 (Pb/2 if c else Pb,), for
                       (Pb, c) in (8,1), (16,1), (64,1), (8,0): the HiPPO-N eigenvalues of
                       one block (ssm_reference.hippo_n_lambda): numpy.linalg.eig of the
                       dense real S = A + p p^T, sorted by imaginary part ascending, the
                       first Pb/2 with conj_sym; lambda_re = mean(diag(S)) (= -0.5 up to
                       rounding; eig's real parts agree with it to 1e-9, asserted).

Checks (asserted before a file is kept):
  * the plain loop run chunk by chunk with the state carried equals one independent
    whole-sequence pass over all 3T steps (ssm_reference's forward_parallel: conv1d and
    a closed-form scan / complex powers of Lambda_bar, no time loop): the mean of the
    three chunk losses is the loss of the concatenation, the logits and the final states
    agree; in float32 (loss to 2e-6 relative) and in float64 (1e-12);
  * finite differences in float64 (the reference in double, central, eps 1e-6) of two
    entries of every parameter and of every state tensor, for each chunk, agree with
    float64 autograd to 1e-6 relative, and float64 autograd agrees with the stored
    float32 gradients (every entry, to 2e-4 of the largest of that tensor);
  * the file reread into a fresh model reproduces chunk 0's loss and logits bitwise.
"""

import os
import sys

import h5py
import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ssm_reference as R  # noqa: E402

V, B, T, CHUNKS = 11, 3, 5, 3
MAMBA = dict(d_model=8, n_layer=2, d_state=4, d_conv=3, expand=2, dt_rank=2)
S5 = dict(H=6, n_layer=2, state_size=8, blocks=2)
HIPPO_CASES = [(8, 1), (16, 1), (64, 1), (8, 0)]
FD_EPS = 1e-6


# ----------------------------------------------------------------------------- models

def make_mamba(seed):
    torch.manual_seed(seed)
    m = R.MambaLM(V, MAMBA["d_model"], MAMBA["n_layer"], d_state=MAMBA["d_state"],
                  d_conv=MAMBA["d_conv"], expand=MAMBA["expand"], dt_rank=MAMBA["dt_rank"],
                  tied=True)
    with torch.no_grad():
        m.backbone.embedding.weight.mul_(0.5)
        for layer in m.backbone.layers:
            mx = layer.mixer
            Rk, E, N = mx.dt_rank, mx.d_inner, mx.d_state
            std = Rk ** -0.5
            mx.dt_proj.weight.uniform_(-std, std)
            lo, hi = np.log(0.01), np.log(0.5)
            dt = torch.exp(torch.rand(E) * (hi - lo) + lo).clamp(min=1e-4)
            mx.dt_proj.bias.copy_(R.inverse_softplus(dt))
            mx.A_log.copy_(torch.log(torch.arange(1, N + 1, dtype=torch.float32)).repeat(E, 1)
                           + 0.1 * torch.randn(E, N))
            mx.D.copy_(1.0 + 0.2 * torch.randn(E))
            layer.norm.weight.copy_(1.0 + 0.1 * torch.randn(MAMBA["d_model"]))
        m.backbone.norm_f.weight.copy_(1.0 + 0.1 * torch.randn(MAMBA["d_model"]))
    states = []
    for mx in m.mixers():
        states.append({k: torch.randn(B, w) * 0.5 for k, w in mx.state_widths().items()})
    return m, states


def make_s5(seed, conj_sym, bilinear, clip_eigs, glu):
    torch.manual_seed(seed)
    H, L = S5["H"], S5["n_layer"]
    P = S5["state_size"] // 2 if conj_sym else S5["state_size"]
    m = R.S5LM(V, H, L, P, conj_sym=conj_sym, bilinear=bilinear, clip_eigs=clip_eigs,
               glu=glu)
    lre, lim = R.s5_lambda_init(S5["state_size"], S5["blocks"], conj_sym)
    assert lre.shape == (P,)
    with torch.no_grad():
        for layer in m.layers:
            layer.norm.weight.copy_(1.0 + 0.1 * torch.randn(H))
            layer.norm.bias.copy_(0.1 * torch.randn(H))
            s = layer.seq
            s.Lambda_re.copy_(torch.from_numpy(lre))
            s.Lambda_im.copy_(torch.from_numpy(lim))
            s.B.copy_(torch.randn(P, H, 2) / np.sqrt(2.0 * H))
            s.C.copy_(torch.randn(H, P, 2) / np.sqrt(P))
            s.D.copy_(torch.randn(H))
            s.log_step.copy_(torch.rand(P, 1) * (np.log(0.5) - np.log(0.05)) + np.log(0.05))
            if clip_eigs:
                s.Lambda_re[1] = 0.02
                s.Lambda_re[6] = -5e-5
    states = [{"x": torch.randn(B, 2 * P) * 0.5} for _ in range(L)]
    return m, states


# ----------------------------------------------------------------------------- running

def chunk_io(tokens, k):
    """(inputs, targets) of chunk k, (T,B) int64 time-major; tokens (B, 3T+1)."""
    x = tokens[:, k * T:k * T + T]
    y = tokens[:, k * T + 1:k * T + T + 1]
    return x.t().contiguous(), y.t().contiguous()


def run_chunks(model, tokens, states0):
    """Chunk by chunk with the state carried (detached): per chunk the loss, logits,
    parameter gradients, gradients w.r.t. the starting state and the final state."""
    out = []
    carried = R.clone_states(states0)
    for k in range(CHUNKS):
        x, y = chunk_io(tokens, k)
        st = R.clone_states(carried, requires_grad=True)
        model.zero_grad(set_to_none=True)
        logits, st_end = model(x, st)
        loss = R.lm_loss(logits, y)
        loss.backward()
        grads = {n: (p.grad.detach().clone() if p.grad is not None
                     else torch.zeros_like(p)) for n, p in model.named_parameters()}
        dstate = [{n: v.grad.detach().clone() for n, v in s.items()} for s in st]
        carried = R.detach_states(st_end)
        out.append(dict(loss=loss.detach(), logits=logits.detach(), grads=grads,
                        dstate=dstate, state=R.clone_states(carried), start=st))
    return out


def whole_sequence(model, tokens, states0):
    """One pass over all CHUNKS*T steps with the independent parallel form."""
    x = tokens[:, :CHUNKS * T].t().contiguous()
    y = tokens[:, 1:CHUNKS * T + 1].t().contiguous()
    with torch.no_grad():
        logits, st = model.forward_parallel(x, R.clone_states(states0))
        return R.lm_loss(logits, y), logits, st


def check_whole(model, tokens, states0, res, rtol_loss, atol, tag):
    loss_w, logits_w, st_w = whole_sequence(model, tokens, states0)
    mean_chunks = sum(r["loss"].double() for r in res) / CHUNKS
    rel = abs(loss_w.double().item() - mean_chunks.item()) / abs(mean_chunks.item())
    assert rel <= rtol_loss, "%s: chunked loss %r vs whole-sequence %r" % (
        tag, mean_chunks.item(), loss_w.item())
    cat = torch.cat([r["logits"] for r in res], 0)
    dl = (cat - logits_w).abs().max().item()
    assert dl <= atol * max(1.0, logits_w.abs().max().item()), "%s: logits differ by %g" % (
        tag, dl)
    ds = 0.0
    for a, b in zip(res[-1]["state"], st_w):
        for n in a:
            d = (a[n] - b[n]).abs().max().item()
            ds = max(ds, d)
            assert d <= atol * max(1.0, b[n].abs().max().item()), "%s: final %s differs by %g" % (
                tag, n, d)
    return rel, dl, ds


def fd_check(model64, tokens, res32, names, rng):
    """Central differences in float64 of two entries of every parameter and state tensor,
    per chunk, against float64 autograd; float64 autograd against the float32 grads."""
    params = dict(model64.named_parameters())
    worst_fd, worst_32 = 0.0, 0.0
    for k in range(CHUNKS):
        x, y = chunk_io(tokens, k)
        start = [{n: v.detach().double() for n, v in s.items()} for s in res32[k]["start"]]
        st = R.clone_states(start, requires_grad=True)
        model64.zero_grad(set_to_none=True)
        logits, _ = model64(x, st)
        R.lm_loss(logits, y).backward()
        g64 = {n: (p.grad.detach().clone() if p.grad is not None else torch.zeros_like(p))
               for n, p in params.items()}
        ds64 = [{n: v.grad.detach().clone() for n, v in s.items()} for s in st]

        def loss_at():
            with torch.no_grad():
                lg, _ = model64(x, R.clone_states(start))
                return R.lm_loss(lg, y).item()

        probes = []
        for n in names:
            probes.append(("param", n, None))
        for i, s in enumerate(start):
            for n in s:
                probes.append(("state", n, i))
        for kind, n, i in probes:
            if kind == "param":
                tgt, ag, g32 = params[n].data, g64[n], res32[k]["grads"][n]
            else:
                tgt, ag, g32 = start[i][n], ds64[i][n], res32[k]["dstate"][i][n]
            flat, agf = tgt.view(-1), ag.reshape(-1)
            picks = sorted({int(agf.abs().argmax()), int(rng.randint(flat.numel()))})
            for j in picks:
                old = flat[j].item()
                flat[j] = old + FD_EPS
                lp = loss_at()
                flat[j] = old - FD_EPS
                lm = loss_at()
                flat[j] = old
                fd = (lp - lm) / (2 * FD_EPS)
                err = abs(fd - agf[j].item())
                assert err <= 1e-8 + 1e-6 * abs(agf[j].item()), (
                    "chunk %d %s %s[%d]: finite difference %r vs autograd %r" % (
                        k, kind, n, j, fd, agf[j].item()))
                worst_fd = max(worst_fd, err)
            scale = ag.abs().max().item()
            d32 = (g32.double() - ag).abs().max().item()
            assert d32 <= 2e-4 * max(scale, 1e-6), (
                "chunk %d %s %s: float32 gradient differs from float64 by %g (max %g)" % (
                    k, kind, n, d32, scale))
            worst_32 = max(worst_32, d32 / max(scale, 1e-12))
    return worst_fd, worst_32


# ----------------------------------------------------------------------------- writing

def ds(group, name, arr, dtype):
    group.create_dataset(name, data=np.asarray(arr, dtype=dtype), track_times=False)


def str_attr(obj, name, s):
    b = s.encode("ascii")
    obj.attrs.create(name, np.bytes_(b), dtype=h5py.string_dtype("ascii", len(b)))


def write_states(group, states):
    for i, s in enumerate(states):
        g = group.create_group("l%d" % i)
        for n, v in s.items():
            ds(g, n, v.detach().numpy(), np.float32)


def write_fixture(path, attrs, model_kind, recipe, model, tokens, states0, res):
    tmp = path + ".tmp"
    with h5py.File(tmp, "w", libver="earliest", track_order=False) as f:
        for k, v in attrs:
            f.attrs.create(k, np.int32(v), dtype=np.int32)
        str_attr(f, "model", model_kind)
        str_attr(f, "recipe", recipe)
        pg = f.create_group("params")
        for n, p in model.state_dict().items():
            ds(pg, n, p.detach().numpy(), np.float32)
        ds(f, "tokens", tokens.numpy(), np.int32)
        write_states(f.create_group("state0"), states0)
        for k, r in enumerate(res):
            c = f.create_group("chunk%d" % k)
            c.create_dataset("loss", data=np.float64(r["loss"].item()), dtype=np.float64,
                             track_times=False)
            ds(c, "logits", r["logits"].numpy(), np.float32)
            gg = c.create_group("grad")
            for n in model.state_dict():
                ds(gg, n, r["grads"][n].numpy(), np.float32)
            write_states(c.create_group("dstate0"), r["dstate"])
            write_states(c.create_group("state"), r["state"])
    os.replace(tmp, path)


def reread_check(path, build):
    with h5py.File(path, "r") as f:
        sd = {n: torch.from_numpy(f["params"][n][()]) for n in f["params"]}
        m = build()
        m.load_state_dict(sd)
        tok = torch.from_numpy(f["tokens"][()]).long()
        st = [{n: torch.from_numpy(f["state0"][l][n][()]) for n in f["state0"][l]}
              for l in sorted(f["state0"])]
        x, y = chunk_io(tok, 0)
        with torch.no_grad():
            lg, _ = m(x, st)
            loss = R.lm_loss(lg, y).item()
        assert loss == float(f["chunk0"]["loss"][()]), "reread: loss differs"
        assert np.array_equal(lg.numpy(), f["chunk0"]["logits"][()]), "reread: logits differ"


def make_one(name, outdir, build, model, states0, attrs, model_kind, recipe, extra_check=None):
    tokens = torch.randint(0, V, (B, CHUNKS * T + 1), dtype=torch.int64)
    names = list(model.state_dict().keys())
    res = run_chunks(model, tokens, states0)
    rel32, dl32, ds32 = check_whole(model, tokens, states0, res, 2e-6, 2e-5, name + " f32")
    m64 = build().double()
    m64.load_state_dict({n: v.double() for n, v in model.state_dict().items()})
    s64 = R.clone_states(states0, dtype=torch.float64)
    res64 = run_chunks(m64, tokens, s64)
    rel64, dl64, ds64 = check_whole(m64, tokens, s64, res64, 1e-12, 1e-11, name + " f64")
    l32 = [r["loss"].item() for r in res]
    l64 = [r["loss"].item() for r in res64]
    fd, g32 = fd_check(m64, tokens, res, names, np.random.RandomState(7))
    if extra_check:
        extra_check(model, tokens, states0, res)
    path = os.path.join(outdir, name + ".h5")
    write_fixture(path, attrs, model_kind, recipe, model, tokens, states0, res)
    reread_check(path, build)
    print("%-10s final state mean|.|: %s" % (name, activity(model, tokens, states0)))
    print("%-10s loss %s (float64 %s)  whole-seq: f32 rel %.1e, f64 rel %.1e (logits %.1e, "
          "state %.1e)  fd-autograd <= %.1e  f32 grads rel <= %.1e  %d bytes" % (
              name, " ".join("%.7f" % v for v in l32), " ".join("%.7f" % v for v in l64),
              rel32, rel64, dl64, ds64, fd, g32, os.path.getsize(path)))
    return res


def activity(model, tokens, states0):
    """Mean |.| of each layer's output and of its final states (the activations are not
    tiny), printed for the record."""
    x, _ = chunk_io(tokens, 0)
    parts = []
    with torch.no_grad():
        _, st = model(x, R.clone_states(states0))
    for i, s in enumerate(st):
        parts.append("l%d " % i + " ".join("%s %.3f" % (n, v.abs().mean().item())
                                            for n, v in s.items()))
    return "; ".join(parts)


def mamba_fixture(outdir):
    model, states0 = make_mamba(20250301)
    build = lambda: R.MambaLM(V, MAMBA["d_model"], MAMBA["n_layer"],  # noqa: E731
                              d_state=MAMBA["d_state"], d_conv=MAMBA["d_conv"],
                              expand=MAMBA["expand"], dt_rank=MAMBA["dt_rank"], tied=True)
    E = MAMBA["expand"] * MAMBA["d_model"]
    attrs = [("vocab_size", V), ("d_model", MAMBA["d_model"]), ("layers", MAMBA["n_layer"]),
             ("batch", B), ("bptt", T), ("chunks", CHUNKS), ("d_state", MAMBA["d_state"]),
             ("d_conv", MAMBA["d_conv"]), ("expand", MAMBA["expand"]), ("d_inner", E),
             ("dt_rank", MAMBA["dt_rank"]), ("tied", 1)]
    recipe = ("seed 20250301; torch default init, embedding *0.5; per layer dt_proj.weight U(+-R^-0.5), "
              "dt_proj.bias inverse_softplus(exp(U(ln 0.01, ln 0.5))), A_log log(n+1)+0.1N, "
              "D 1+0.2N, norm.weight 1+0.1N; norm_f.weight 1+0.1N; tokens randint; "
              "state0 0.5N")
    make_one("ref_mamba", outdir, build, model, states0, attrs, "mamba", recipe)


def s5_fixture(outdir, name, seed, conj_sym, bilinear, clip_eigs, glu):
    model, states0 = make_s5(seed, conj_sym, bilinear, clip_eigs, glu)
    P = model.P
    build = lambda: R.S5LM(V, S5["H"], S5["n_layer"], P, conj_sym=conj_sym,  # noqa: E731
                           bilinear=bilinear, clip_eigs=clip_eigs, glu=glu)
    attrs = [("vocab_size", V), ("hidden", S5["H"]), ("layers", S5["n_layer"]), ("batch", B),
             ("bptt", T), ("chunks", CHUNKS), ("P", P), ("state_size", S5["state_size"]),
             ("blocks", S5["blocks"]), ("conj_sym", int(conj_sym)),
             ("bilinear", int(bilinear)), ("clip_eigs", int(clip_eigs)), ("glu", int(glu)),
             ("tied", 0)]
    recipe = ("seed %d; torch default init; per layer norm.weight 1+0.1N, norm.bias 0.1N, "
              "Lambda HiPPO-N (8 in 2 blocks%s), B N/sqrt(2H), C N/sqrt(P), D N, "
              "log_step U(ln 0.05, ln 0.5)%s; tokens randint; state0 0.5N" % (
                  seed, ", conj_sym" if conj_sym else ", all modes",
                  "; Lambda_re[1]=0.02, Lambda_re[6]=-5e-5" if clip_eigs else ""))

    def clip_matters(model, tokens, states0, res):
        # clip_eigs must change the result of this fixture (else it would test nothing)
        other = build()
        other.load_state_dict(model.state_dict())
        for layer in other.layers:
            layer.seq.clip_eigs = False
        x, y = chunk_io(tokens, 0)
        with torch.no_grad():
            lg, _ = other(x, R.clone_states(states0))
        d = abs(R.lm_loss(lg, y).item() - res[0]["loss"].item())
        assert d > 1e-4, "clip_eigs changes chunk 0's loss by only %g" % d

    make_one(name, outdir, build, model, states0, attrs, "s5", recipe,
             clip_matters if clip_eigs else None)


def hippo_fixture(outdir):
    path = os.path.join(outdir, "ref_hippo.h5")
    tmp = path + ".tmp"
    with h5py.File(tmp, "w", libver="earliest", track_order=False) as f:
        for Pb, c in HIPPO_CASES:
            lam = R.hippo_n_lambda(Pb, bool(c))
            assert lam.shape == (Pb // 2 if c else Pb,)
            assert np.all(np.diff(lam.imag) > 0)
            if c:
                assert np.all(lam.imag < 0)
            ds(f, "lambda_re_%d_%d" % (Pb, c), lam.real, np.float64)
            ds(f, "lambda_im_%d_%d" % (Pb, c), lam.imag, np.float64)
    os.replace(tmp, path)
    print("ref_hippo  %s  %d bytes" % (", ".join("Pb=%d conj_sym=%d" % pc for pc in HIPPO_CASES),
                                        os.path.getsize(path)))


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    outdir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        os.path.dirname(here), "tests", "fixtures")
    os.makedirs(outdir, exist_ok=True)
    torch.set_num_threads(1)
    torch.set_default_dtype(torch.float32)
    torch.use_deterministic_algorithms(True)
    mamba_fixture(outdir)
    s5_fixture(outdir, "ref_s5", 20250302, conj_sym=True, bilinear=False, clip_eigs=False,
               glu=False)
    s5_fixture(outdir, "ref_s5_glu", 20250303, conj_sym=False, bilinear=True, clip_eigs=True,
               glu=True)
    hippo_fixture(outdir)


if __name__ == "__main__":
    main()
