#!/usr/bin/python3
"""PyTorch training of Mamba, S5 and nn.LSTM language models on an rnntrain dataset, in
the fastest form found on CPU (1 thread): the PyTorch side of scripts/bench-ssm.sh and
scripts/bench-ssm-quality.sh.

Run with Debian's /usr/bin/python3 (python3-torch 1.13, python3-h5py, python3-numpy).

Models (parameter names and shapes are those of scripts/ssm_reference.py, whose modules
are subclassed here; only the forward pass is rewritten):
  mamba  MambaLM (tied head, final RMSNorm), initialised as mamba_ssm / rnntrain
         (docs/state-space.md): embedding N(0, 0.02), Linear/conv PyTorch defaults,
         dt_proj.weight U(+-R^-1/2), dt_proj.bias = inverse softplus of
         dt = exp(U(ln 1e-3, ln 1e-1)) (>= 1e-4), A_log = log(n+1), D = 1,
         out_proj.weight / sqrt(n_layer);
  s5     S5LM (prenorm LayerNorm, GELU-tanh, Linear head), initialised as the S5 reference
         (shared/SSM.md): HiPPO-N Lambda and eigenvectors V from numpy.linalg.eigh of -iS
         per block (--ssm-blocks), B = V^-1 B0 (B0 truncated lecun-normal, std 1/sqrt(H)),
         C = C0 V (C0 complex, each part truncated normal std 1/sqrt(P_base)), D N(0,1),
         log_step U(ln 1e-3, ln 1e-1); conj_sym, ZOH (the reference's naive coefficient);
  lstm   torch_reference.py's Net: Embedding -> nn.LSTM -> Linear (PyTorch default init).
--init-from MODEL.h5 starts Mamba/S5 from an rnntrain model file instead (e.g. written by
`rnntrain train --steps 0`), through scripts/torch_checkpoint.py, so that rnntrain and
PyTorch start from the same weights.

Training recipe = rnntrain's and torch_reference.py's (whose load_tokens this imports):
the train split cut into B streams, T-token chunks with the state carried (detached)
across chunks, zero state at the epoch end; mean cross-entropy, clip_grad_norm_(clip),
Adam. Validation: the whole valid split as --eval-batch carried streams, the short last
chunk included. tokens/s excludes the first 3 steps and the validations.

How it is vectorised (every variant computes the same function; --check verifies):
  * every projection is ONE matmul over the chunk's T*B rows (Mamba in_proj, x_proj,
    dt_proj, out_proj; S5 B_bar u and C x; the heads); the Mamba causal conv is K shifted
    multiply-adds over the whole (T,B,E) tensor with the carried K-1 inputs in front;
  * Mamba scan: exp(delta A) and delta B x are built for the whole chunk as (T,B,E,N)
    tensors with batched element-wise ops; only h_t = a_t * h_{t-1} + b_t runs step by step,
    over (B,E,N) at once; y = C.h is one batched matmul over the T*B rows afterwards.
    The selected variant ('fn') wraps the recurrence in a torch.autograd.Function: forward
    writes h_t into one preallocated (T,B,E,N) tensor in place (no autograd graph per step),
    backward runs the reverse recurrence g_t = gy_t + a_{t+1} g_{t+1} in place likewise and
    forms the a/b/C gradients with whole-chunk ops; both loops are torch.jit.script-ed;
  * S5: B_bar u for the whole chunk is one GEMM (T*B, H) x (H, 2P); the recurrence
    x_t = Lbar x_{t-1} + (B_bar u)_t runs step by step over (B, P) in real arithmetic (the
    selected variant 'loop'; 'jit' is the same loop torch.jit.script-ed, 'conv' has no time
    loop: x_t = Lbar^(t+1) x_0 + sum_{s<=t} Lbar^(t-s) B_bar u_s as one batched matmul with
    the (P, 2T, 2T) real block-Toeplitz matrix of the powers of Lbar, from its polar form);
    C x is one GEMM over the chunk afterwards.
  * glibc malloc is told to keep freed memory (tune_malloc): 4-5x for the Mamba chunk
    tensors (a (64,32,512,16) multiply 44 -> 9 ms; Mamba 2x256 'fn' 891 -> 4394 tok/s).
Variants tried (--variant), tokens/s, 1 thread, AMD EPYC (Zen 4, family 25 model 17),
OpenBLAS Cooperlake, B=32 T=64, Moby Dick, 8-23 steps of this script (first 3 untimed),
2026-12-03 on a shared, busy 2-core VM (rates moved by 2x between repeats; the order held):
  mamba 2x256  'fn'    4394  the autograd.Function above (the default)
               'loop'  1615  (T,B,E,N) a and b built by autograd ops, autograd step loop
               'jit'   1739  the same loop torch.jit.script-ed
               'pscan'  417  log-depth Hillis-Steele scan (6 full-size levels for T=64)
               'ref'    628  ssm_reference.py's plain loop (everything per step)
               (before tune_malloc: 'fn' 891, 'loop' 87: indexing a[t] instead of unbind
               made the backward add T full-size zero tensors)
  s5 2x256     'loop'  22690 / 16526 / 13278 (three repeats, interleaved)  (the default)
               'jit'   21090 / 16115 / 13612
               'conv'  16343 / 10428 /  9987
               'ref'    3911 (one run, earlier, busier)
  lstm 2x256   nn.LSTM (torch_reference.py's Net), the only variant.
The same figures and the later bench runs are in docs/ssm-benchmarks.md.

--check: builds small models, copies the same weights into ssm_reference.py's loop models,
and compares loss, every parameter gradient and the carried states over 3 chunks (state
carried, nonzero start) for every variant; exits 1 if any differs beyond 2e-5 relative.

Examples:
  /usr/bin/python3 scripts/torch_ssm_bench.py --check
  env -u OPENBLAS_CORETYPE OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 /usr/bin/python3 \\
      scripts/torch_ssm_bench.py --data out/moby.h5 --model mamba --layers 2 --hidden 256 \\
      --steps 512 --json
"""

import argparse
import json
import math
import os
import resource
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

WARMUP_STEPS = 3
VARIANTS = {"mamba": ("fn", "loop", "jit", "pscan", "ref"), "s5": ("loop", "jit", "conv", "ref"),
            "lstm": ("nn",)}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", metavar="DATA.h5", help="rnntrain token dataset")
    p.add_argument("--model", choices=sorted(VARIANTS), default="mamba")
    p.add_argument("--variant", default=None,
                   help="implementation (mamba: fn|loop|jit|pscan|ref, s5: loop|jit|conv|ref); "
                        "default the fastest")
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--d-state", type=int, default=0,
                   help="mamba: N (16); s5: P before conjugate halving (0 = hidden)")
    p.add_argument("--d-conv", type=int, default=4)
    p.add_argument("--expand", type=int, default=2)
    p.add_argument("--dt-rank", type=int, default=0, help="0 = ceil(hidden/16)")
    p.add_argument("--ssm-blocks", type=int, default=1, help="s5: HiPPO-N blocks")
    p.add_argument("--init-from", metavar="MODEL.h5",
                   help="mamba/s5: start from an rnntrain model file's weights")
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--ssm-lr", type=float, default=0.0,
                   help="s5: learning rate of Lambda_re, Lambda_im, B and log_step (their own "
                        "Adam parameter group, as rnntrain's --ssm-lr); 0 = --lr")
    p.add_argument("--clip", type=float, default=5.0, help="<= 0: no clipping")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--bptt", type=int, default=64)
    p.add_argument("--eval-every", type=int, default=0, help="0: only at the end")
    p.add_argument("--eval-batch", type=int, default=32)
    p.add_argument("--no-eval", action="store_true", help="skip the final validation")
    p.add_argument("--log-every", type=int, default=0)
    p.add_argument("--seed", type=int, default=1234)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--json", action="store_true",
                   help="one JSON line on stdout; progress to stderr")
    p.add_argument("--no-malloc-tune", action="store_true",
                   help="leave glibc malloc's defaults (see tune_malloc)")
    p.add_argument("--check", action="store_true",
                   help="compare every variant with ssm_reference.py's loops and exit")
    a = p.parse_args(argv)
    if not a.check and not a.data:
        p.error("--data is required (unless --check)")
    if a.variant is None:
        a.variant = VARIANTS[a.model][0]
    if a.variant not in VARIANTS[a.model]:
        p.error("--variant for %s: one of %s" % (a.model, "|".join(VARIANTS[a.model])))
    return a


# ============================================================================ malloc

def tune_malloc():
    """Keep freed memory in the process (glibc mallopt M_MMAP_MAX = 0, M_TRIM_THRESHOLD
    huge). The whole-chunk (T,B,E,N) tensors are 67 MB (Mamba 2x256), above glibc's largest
    dynamic mmap threshold (32 MB), so without this every such tensor is a fresh mmap whose
    16k pages fault in on first touch: a (T,B,E,N) multiply took 44 ms instead of 8-10 ms.
    Returns True when both calls succeeded."""
    import ctypes
    try:
        libc = ctypes.CDLL("libc.so.6")
        M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4
        return bool(libc.mallopt(M_MMAP_MAX, 0)) and \
            bool(libc.mallopt(M_TRIM_THRESHOLD, 2 ** 31 - 1))
    except OSError:
        return False


# ============================================================================ fast models

def build_fast(torch):
    """Define the fast modules (needs torch imported); returns a namespace dict."""
    import torch.nn as nn
    import torch.nn.functional as F
    import ssm_reference as R

    # ---- Mamba scan: h_t = a_t h_{t-1} + b_t over (B,E,N), whole chunk (T,B,E,N) -------
    @torch.jit.script
    def scan_fwd(a, b, h0, hs):
        # hs[t] = a[t] * hs[t-1] + b[t], in place into the preallocated hs
        h = h0
        for t in range(a.shape[0]):
            h = torch.addcmul(b[t], a[t], h, out=hs[t])
        return hs

    @torch.jit.script
    def scan_bwd(a, g):
        # g: dL/dh_t from the outputs; in place into the total dL/dh_t = g_t + a_{t+1} g_{t+1}
        for t in range(a.shape[0] - 2, -1, -1):
            g[t].addcmul_(a[t + 1], g[t + 1])
        return g

    class SelectiveScan(torch.autograd.Function):
        """ys[t,b,e] = sum_n C[t,b,n] h_t[b,e,n], h_t = exp(delta A) h_{t-1} + delta x B, for
        the whole chunk; in-place buffers and jit loops, gradients written out by hand:
          G_t = gy_t C_t + a_{t+1} G_{t+1};  Q = G a h_{t-1};  dC = gy.h;  dB = (delta x).G;
          d delta = sum_n Q A + x (G.B);  dx = delta (G.B);  dA = sum_{t,b} delta Q;
          dh0 = a_0 G_0."""

        @staticmethod
        def forward(ctx, delta, A, Bm, Cm, x, h0):
            T, Bsz, E = delta.shape
            N = A.shape[1]
            TB = T * Bsz
            a = torch.mul(delta.unsqueeze(-1), A)                 # (T,B,E,N)
            a.exp_()
            dx = delta * x
            b = torch.bmm(dx.view(TB, E, 1), Bm.reshape(TB, 1, N)).view(T, Bsz, E, N)
            hs = scan_fwd(a, b, h0, b)                            # in place over b
            ys = torch.bmm(hs.view(TB, E, N), Cm.reshape(TB, N, 1)).view(T, Bsz, E)
            ctx.save_for_backward(delta, A, Bm, Cm, x, h0, a, hs)
            return ys, hs[-1].clone()

        @staticmethod
        def backward(ctx, gy, ghT):
            delta, A, Bm, Cm, x, h0, a, hs = ctx.saved_tensors
            T, Bsz, E = delta.shape
            N = A.shape[1]
            TB = T * Bsz
            G = torch.bmm(gy.reshape(TB, E, 1), Cm.reshape(TB, 1, N)).view(T, Bsz, E, N)
            G[-1].add_(ghT)
            G = scan_bwd(a, G)
            dC = torch.bmm(gy.reshape(TB, 1, E), hs.view(TB, E, N)).view(T, Bsz, N)
            GB = torch.bmm(G.view(TB, E, N), Bm.reshape(TB, N, 1)).view(T, Bsz, E)
            dB = torch.bmm((delta * x).view(TB, 1, E), G.view(TB, E, N)).view(T, Bsz, N)
            dh0 = G[0] * a[0]
            Q = G.mul_(a)                                         # G a, in place
            Q[1:].mul_(hs[:-1])
            Q[0].mul_(h0)
            d_delta = (Q * A).sum(-1) + x * GB
            dA = Q.mul_(delta.unsqueeze(-1)).sum((0, 1))
            return d_delta, dA, dB, dC, delta * GB, dh0

    @torch.jit.script
    def scan_fwd_step(a, b, h0):
        # the same step loop with autograd through it; unbind (not a[t]) so that the
        # backward stacks the step gradients instead of adding T full-size zero tensors
        h = h0
        hs = []
        for at, bt in zip(a.unbind(0), b.unbind(0)):
            h = at * h + bt
            hs.append(h)
        return torch.stack(hs, 0)

    def scan_loop(a, b, h0):
        hs = []
        h = h0
        for at, bt in zip(a.unbind(0), b.unbind(0)):
            h = torch.addcmul(bt, at, h)
            hs.append(h)
        return torch.stack(hs, 0)

    def scan_pscan(a, b, h0):
        # Hillis-Steele: after level k every (a_t, b_t) composes steps t-2^k+1..t
        b = torch.cat([(b[0] + a[0] * h0).unsqueeze(0), b[1:]], 0)
        T = a.shape[0]
        k = 1
        while k < T:
            b = torch.cat([b[:k], a[k:] * b[:-k] + b[k:]], 0)
            a = torch.cat([a[:k], a[k:] * a[:-k]], 0)
            k *= 2
        return b

    SCANS = {"loop": scan_loop, "jit": scan_fwd_step, "pscan": scan_pscan}

    def rms(x, w):
        return x * torch.rsqrt((x * x).mean(-1, keepdim=True) + 1e-5) * w

    class FastMambaLM(R.MambaLM):
        variant = "fn"

        def mixer_forward(self, mx, u, state):
            T, Bsz, _ = u.shape
            E, N, K, Rk = mx.d_inner, mx.d_state, mx.d_conv, mx.dt_rank
            xz = F.linear(u, mx.in_proj.weight)                    # (T,B,2E), one GEMM
            x, z = xz[..., :E], xz[..., E:]
            w = mx.conv1d.weight[:, 0, :]                          # (E,K)
            prev = state["conv"].reshape(Bsz, K - 1, E).transpose(0, 1)   # (K-1,B,E)
            xall = torch.cat([prev, x], 0)                         # (T+K-1,B,E)
            conv = mx.conv1d.bias + xall[K - 1:] * w[:, K - 1]
            for j in range(K - 1):
                conv = conv + xall[j:j + T] * w[:, j]
            xc = F.silu(conv)
            dbc = F.linear(xc, mx.x_proj.weight)                   # (T,B,R+2N)
            dt, Bm, Cm = dbc[..., :Rk], dbc[..., Rk:Rk + N], dbc[..., Rk + N:]
            delta = F.softplus(F.linear(dt, mx.dt_proj.weight, mx.dt_proj.bias))  # (T,B,E)
            A = -torch.exp(mx.A_log)                               # (E,N)
            h0 = state["ssm"].reshape(Bsz, E, N)
            if self.variant == "fn":
                ys, hT = SelectiveScan.apply(delta, A, Bm, Cm, xc, h0)
            else:
                a = torch.exp(delta.unsqueeze(-1) * A)             # (T,B,E,N)
                b = (delta * xc).unsqueeze(-1) * Bm.unsqueeze(2)   # (T,B,E,N)
                hs = SCANS[self.variant](a, b, h0)                 # (T,B,E,N)
                ys, hT = torch.matmul(hs, Cm.unsqueeze(-1)).squeeze(-1), hs[-1]
            y = ys + mx.D * xc                                     # (T,B,E)
            out = F.linear(y * F.silu(z), mx.out_proj.weight)
            new = {"ssm": hT.reshape(Bsz, E * N),
                   "conv": xall[T:].transpose(0, 1).reshape(Bsz, (K - 1) * E)}
            return out, new

        def forward(self, tokens, states):
            if self.variant == "ref":
                return super().forward(tokens, states)
            x = F.embedding(tokens, self.backbone.embedding.weight)
            new_states = []
            for layer, st in zip(self.backbone.layers, states):
                y, st2 = self.mixer_forward(layer.mixer, rms(x, layer.norm.weight), st)
                x = x + y
                new_states.append(st2)
            y = rms(x, self.backbone.norm_f.weight)
            W = self.backbone.embedding.weight if self.tied else self.lm_head.weight
            return F.linear(y, W), new_states

    # ---- S5 ----------------------------------------------------------------------------
    @torch.jit.script
    def s5_loop_jit(lb_re, lb_im, bu, x0r, x0i):
        P = lb_re.shape[0]
        xr, xi = x0r, x0i
        outs = []
        for but in bu.unbind(0):
            br, bi = but[:, :P], but[:, P:]
            xr, xi = lb_re * xr - lb_im * xi + br, lb_re * xi + lb_im * xr + bi
            outs.append(torch.cat([xr, xi], 1))
        return torch.stack(outs, 0)

    class FastS5LM(R.S5LM):
        variant = "loop"

        def ssm_forward(self, s, u, state):
            T, Bsz, H = u.shape
            P = s.P
            lb_re, lb_im, bb_re, bb_im = s.discretize()            # (P), (P,H)
            fac = 2.0 if s.conj_sym else 1.0
            bu = F.linear(u, torch.cat([bb_re, bb_im], 0))         # (T,B,2P), one GEMM
            x0r, x0i = state["x"][:, :P], state["x"][:, P:]
            if self.variant == "jit":
                xs = s5_loop_jit(lb_re, lb_im, bu, x0r, x0i)              # (T,B,2P)
            elif self.variant == "loop":
                xr, xi = x0r, x0i
                xs_r, xs_i = [], []
                for but in bu.unbind(0):
                    br, bi = but[:, :P], but[:, P:]
                    xr, xi = lb_re * xr - lb_im * xi + br, lb_re * xi + lb_im * xr + bi
                    xs_r.append(xr)
                    xs_i.append(xi)
                xs = torch.cat([torch.stack(xs_r, 0), torch.stack(xs_i, 0)], -1)  # (T,B,2P)
            else:
                # powers Lbar^k, k = 0..T, from the polar form
                logmag = 0.5 * torch.log(lb_re * lb_re + lb_im * lb_im)          # (P)
                ang = torch.atan2(lb_im, lb_re)
                k = torch.arange(T + 1, dtype=u.dtype).unsqueeze(1)             # (T+1,1)
                mag = torch.exp(k * logmag)
                pr, pi = mag * torch.cos(k * ang), mag * torch.sin(k * ang)     # (T+1,P)
                # Toeplitz: M[p, t, s] = Lbar^(t-s) for t >= s, else 0
                tt = torch.arange(T)
                lag = tt.view(T, 1) - tt.view(1, T)
                causal = (lag >= 0).to(u.dtype)
                idx = lag.clamp(min=0)
                Mr = (pr[idx] * causal.unsqueeze(-1)).permute(2, 0, 1)          # (P,T,T)
                Mi = (pi[idx] * causal.unsqueeze(-1)).permute(2, 0, 1)
                # real block form [[Mr, -Mi], [Mi, Mr]] (P, 2T, 2T) x [bur; bui] (P, 2T, B)
                M = torch.cat([torch.cat([Mr, -Mi], 2), torch.cat([Mi, Mr], 2)], 1)
                bup = torch.cat([bu[..., :P], bu[..., P:]], 0).permute(2, 0, 1)  # (P,2T,B)
                xp = torch.bmm(M, bup)                                           # (P,2T,B)
                xr = xp[:, :T].permute(1, 2, 0) + (pr[1:].unsqueeze(1) * x0r - pi[1:].unsqueeze(1) * x0i)
                xi = xp[:, T:].permute(1, 2, 0) + (pr[1:].unsqueeze(1) * x0i + pi[1:].unsqueeze(1) * x0r)
                xs = torch.cat([xr, xi], -1)                                     # (T,B,2P)
            cw = torch.cat([s.C[..., 0], -s.C[..., 1]], 1)                      # (H,2P)
            y = fac * F.linear(xs, cw) + s.D * u
            return y, {"x": xs[-1]}

        def forward(self, tokens, states):
            if self.variant == "ref":
                return super().forward(tokens, states)
            x = F.embedding(tokens, self.embedding.weight)
            new_states = []
            for layer, st in zip(self.layers, states):
                y, st2 = self.ssm_forward(layer.seq, layer.norm(x), st)
                x = x + layer._act(y)
                new_states.append(st2)
            return self.head(x), new_states

    class LSTMNet(nn.Module):
        """torch_reference.py's Net for LSTM (same names: embedding, rnn, head)."""

        def __init__(self, V, H, L):
            super().__init__()
            self.embedding = nn.Embedding(V, H)
            self.rnn = nn.LSTM(H, H, L)
            self.head = nn.Linear(H, V)
            self.L, self.H = L, H

        def zero_states(self, B):
            h = torch.zeros(self.L, B, self.H)
            return (h, torch.zeros_like(h))

        def forward(self, x, state):
            y, state = self.rnn(self.embedding(x), state)
            return self.head(y), state

    return {"R": R, "FastMambaLM": FastMambaLM, "FastS5LM": FastS5LM, "LSTMNet": LSTMNet}


# ============================================================================ init

def init_mamba(torch, m):
    """mamba_ssm / rnntrain initialisation (docs/state-space.md) on a MambaLM."""
    import ssm_reference as R
    with torch.no_grad():
        m.backbone.embedding.weight.normal_(0.0, 0.02)
        L = len(m.backbone.layers)
        for layer in m.backbone.layers:
            mx = layer.mixer
            Rk, E = mx.dt_rank, mx.d_inner
            mx.dt_proj.weight.uniform_(-Rk ** -0.5, Rk ** -0.5)
            lo, hi = math.log(1e-3), math.log(1e-1)
            dt = torch.exp(torch.rand(E) * (hi - lo) + lo).clamp(min=1e-4)
            mx.dt_proj.bias.copy_(R.inverse_softplus(dt))
            mx.out_proj.weight.div_(math.sqrt(L))


def init_s5(torch, m, P_base, blocks, seed):
    """S5 reference initialisation (shared/SSM.md) on an S5LM with conj_sym."""
    import ssm_reference as R
    rng = np.random.default_rng(seed)
    Pb = P_base // blocks
    S = R.hippo_normal_part(Pb)
    Kskew = S - np.diag(np.diag(S))         # S = -1/2 I + Kskew; -i Kskew is Hermitian
    lam_im, Vv = np.linalg.eigh(-1j * Kskew)   # its eigenvalues are Im(lambda)
    order = np.argsort(lam_im, kind="stable")
    lam_im, Vv = lam_im[order], Vv[:, order]
    keep = Pb // 2
    lam_im, Vv = lam_im[:keep], Vv[:, :keep]               # conj_sym: negative imag parts
    Vinv = Vv.conj().T                                     # (keep, Pb), V unitary
    H = m.H

    def trunc(shape, std):
        x = rng.standard_normal(shape)
        while True:
            bad = np.abs(x) > 2.0
            if not bad.any():
                return x * std
            x[bad] = rng.standard_normal(int(bad.sum()))

    with torch.no_grad():
        for layer in m.layers:
            s = layer.seq
            Bt = np.zeros((blocks * keep, H), complex)
            Ct = np.zeros((H, blocks * keep), complex)
            for j in range(blocks):
                B0 = trunc((Pb, H), 1.0 / math.sqrt(H))
                C0 = trunc((H, Pb), 1.0 / math.sqrt(P_base)) + 1j * trunc((H, Pb), 1.0 / math.sqrt(P_base))
                Bt[j * keep:(j + 1) * keep] = Vinv @ B0
                Ct[:, j * keep:(j + 1) * keep] = C0 @ Vv
            s.Lambda_re.fill_(-0.5)
            s.Lambda_im.copy_(torch.from_numpy(np.tile(lam_im, blocks)).float())
            s.B.copy_(torch.from_numpy(np.stack([Bt.real, Bt.imag], -1)).float())
            s.C.copy_(torch.from_numpy(np.stack([Ct.real, Ct.imag], -1)).float())
            s.D.copy_(torch.from_numpy(rng.standard_normal(H)).float())
            s.log_step.copy_(torch.from_numpy(
                rng.uniform(math.log(1e-3), math.log(1e-1), (s.P, 1))).float())


def make_model(torch, ns, a, V):
    if a.model == "lstm":
        return ns["LSTMNet"](V, a.hidden, a.layers)
    if a.model == "mamba":
        N = a.d_state or 16
        m = ns["FastMambaLM"](V, a.hidden, a.layers, d_state=N, d_conv=a.d_conv,
                              expand=a.expand, dt_rank=a.dt_rank or None, tied=True)
        init_mamba(torch, m)
    else:
        P_base = a.d_state or a.hidden
        m = ns["FastS5LM"](V, a.hidden, a.layers, P_base // 2)
        init_s5(torch, m, P_base, a.ssm_blocks, a.seed)
    m.variant = a.variant
    if a.init_from:
        import torch_checkpoint as TC
        meta, params = TC.read_model_file(a.init_from)
        shapes = {n: mod for n, _, mod in TC.expected_ssm_params(meta)}
        sd = {n: torch.from_numpy(p.reshape(shapes[n])) for n, p in params.items()}
        m.load_state_dict(sd, strict=True)
    return m


# ============================================================================ check

def run_check(torch):
    """Every variant against ssm_reference.py's loop models: same weights, 3 carried chunks
    from a nonzero state; loss, parameter gradients and final states."""
    ns = build_fast(torch)
    R = ns["R"]
    torch.manual_seed(7)
    V, Bsz, T, chunks = 13, 3, 9, 3
    fails = 0
    cases = []
    m = ns["FastMambaLM"](V, 16, 2, d_state=4, d_conv=3, expand=2, dt_rank=2)
    init_mamba(torch, m)
    with torch.no_grad():   # larger steps than the init so the state matters within chunks
        for layer in m.backbone.layers:
            layer.mixer.dt_proj.bias.add_(2.0)
            layer.mixer.A_log.add_(0.1 * torch.randn_like(layer.mixer.A_log))
        m.backbone.embedding.weight.normal_(0.0, 0.5)
    ref = R.MambaLM(V, 16, 2, d_state=4, d_conv=3, expand=2, dt_rank=2)
    cases.append(("mamba", m, ref, VARIANTS["mamba"]))
    s = ns["FastS5LM"](V, 12, 2, 8)
    init_s5(torch, s, 16, 2, 3)
    with torch.no_grad():
        for layer in s.layers:
            layer.seq.log_step.add_(2.0)
    sref = R.S5LM(V, 12, 2, 8)
    cases.append(("s5", s, sref, VARIANTS["s5"]))
    tokens = torch.randint(0, V, (chunks * T + 1, Bsz))
    for name, fast, refm, variants in cases:
        refm.load_state_dict(fast.state_dict(), strict=True)
        st0 = [{k: 0.3 * torch.randn_like(v) for k, v in d.items()}
               for d in refm.zero_states(Bsz)]

        def run(model):
            out = []
            st = R.clone_states(st0)
            for c in range(chunks):
                model.zero_grad(set_to_none=True)
                st = R.clone_states(st, requires_grad=True)
                logits, st_new = model(tokens[c * T:(c + 1) * T], st)
                loss = R.lm_loss(logits, tokens[c * T + 1:(c + 1) * T + 1])
                loss.backward()
                grads = {n: p.grad.clone() for n, p in model.named_parameters()
                         if p.grad is not None}
                dst = [{k: v.grad.clone() for k, v in d.items()} for d in st]
                out.append((loss.item(), grads, dst, R.detach_states(st_new)))
                st = R.detach_states(st_new)
            return out

        want = run(refm)
        for v in variants:
            fast.variant = v
            got = run(fast)
            worst = 0.0
            for (lw, gw, dw, sw), (lg, gg, dg, sg) in zip(want, got):
                worst = max(worst, abs(lw - lg) / abs(lw))
                for n in gw:
                    scale = float(gw[n].abs().max()) + 1e-12
                    worst = max(worst, float((gw[n] - gg[n]).abs().max()) / scale)
                for a_, b_ in zip(dw + sw, dg + sg):
                    for k in a_:
                        scale = float(a_[k].abs().max()) + 1e-12
                        worst = max(worst, float((a_[k] - b_[k]).abs().max()) / scale)
            ok = worst <= 2e-5
            fails += not ok
            print("check %-5s %-6s loss %.6f vs ref %.6f; worst relative difference (loss, "
                  "every gradient, state gradients, states; 3 chunks) %.2e  %s"
                  % (name, v, got[0][0], want[0][0], worst, "ok" if ok else "FAIL"))
    return fails


# ============================================================================ training

def main(argv=None):
    a = parse_args(argv)
    malloc_tuned = False if a.no_malloc_tune else tune_malloc()
    import torch
    import torch.nn.functional as F
    torch.set_num_threads(a.threads)
    if a.check:
        sys.exit(1 if run_check(torch) else 0)
    from torch_reference import load_tokens

    log_stream = sys.stderr if a.json else sys.stdout

    def log(msg):
        print(msg, file=log_stream, flush=True)

    torch.manual_seed(a.seed)
    V, train, valid = load_tokens(a.data)
    B, T = a.batch, a.bptt
    Ltr = train.size // B
    if Ltr < T + 1:
        sys.exit("train split too short for %d streams of T+1 = %d" % (B, T + 1))
    train_streams = torch.from_numpy(np.ascontiguousarray(train[:B * Ltr].reshape(B, Ltr).T))
    S = a.eval_batch
    Lva = valid.size // S
    valid_streams = torch.from_numpy(np.ascontiguousarray(valid[:S * Lva].reshape(S, Lva).T))

    ns = build_fast(torch)
    net = make_model(torch, ns, a, V)
    nparams = sum(p.numel() for p in net.parameters())
    ssm_names = ("seq.Lambda_re", "seq.Lambda_im", "seq.B", "seq.log_step")
    if a.ssm_lr > 0 and a.model == "s5":  # S5's paper: the SSM parameters at their own rate
        ssm = [q for n, q in net.named_parameters() if n.endswith(ssm_names)]
        rest = [q for n, q in net.named_parameters() if not n.endswith(ssm_names)]
        opt = torch.optim.Adam([{"params": rest}, {"params": ssm, "lr": a.ssm_lr}], lr=a.lr)
    else:
        opt = torch.optim.Adam(net.parameters(), lr=a.lr)
    params = list(net.parameters())

    def detach(s):
        if isinstance(s, tuple):
            return tuple(x.detach() for x in s)
        return [{k: v.detach() for k, v in d.items()} for d in s]

    def evaluate():
        total = 0.0
        with torch.no_grad():
            state = net.zero_states(S)
            c = 0
            while c + 1 < Lva:
                n = min(T, Lva - 1 - c)
                logits, state = net(valid_streams[c:c + n], state)
                total += F.cross_entropy(logits.reshape(-1, V),
                                         valid_streams[c + 1:c + n + 1].reshape(-1),
                                         reduction="sum").item()
                c += n
        return total / (S * (Lva - 1))

    log("torch %s, %d thread(s); %s %dx%d variant %s, params %d; B=%d T=%d; train %d tok, "
        "valid %d tok (%d streams)%s; malloc tuned: %s"
        % (torch.__version__, torch.get_num_threads(), a.model, a.layers, a.hidden,
           a.variant, nparams, B, T, train.size, valid.size, S,
           (", init from %s" % a.init_from) if a.init_from else "", malloc_tuned))
    state = net.zero_states(B)
    cursor, epoch = 0, 0
    step_times, evals, losses = [], [], []
    t_eval = 0.0
    t_start = time.perf_counter()
    for step in range(1, a.steps + 1):
        t0 = time.perf_counter()
        if cursor + T + 1 > Ltr:
            cursor, epoch = 0, epoch + 1
            state = net.zero_states(B)
        chunk = train_streams[cursor:cursor + T + 1]
        cursor += T
        logits, state = net(chunk[:-1], state)
        state = detach(state)
        loss = F.cross_entropy(logits.reshape(-1, V), chunk[1:].reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        gnorm = float(torch.nn.utils.clip_grad_norm_(params, a.clip)) if a.clip > 0 else 0.0
        opt.step()
        lv = loss.item()
        losses.append(lv)
        step_times.append(time.perf_counter() - t0)
        if a.log_every and step % a.log_every == 0:
            log("step %d epoch %d loss %.4f gnorm %.3f %.1f ms/step"
                % (step, epoch, lv, gnorm, 1e3 * step_times[-1]))
        if not a.no_eval and ((a.eval_every and step % a.eval_every == 0) or step == a.steps):
            te = time.perf_counter()
            nats = evaluate()
            t_eval += time.perf_counter() - te
            evals.append({"step": step, "tokens": step * B * T, "nats": nats})
            log("eval step %d tokens %d: train loss %.4f, valid %.4f nats/token"
                % (step, step * B * T, lv, nats))
    wall = time.perf_counter() - t_start
    timed = step_times[WARMUP_STEPS:] if len(step_times) > WARMUP_STEPS else step_times
    tps = len(timed) * B * T / sum(timed)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    log("train speed: %.1f tokens/s (%d steps timed, %.1f ms/step); wall %.1f s (eval %.1f s);"
        " peak RSS %.1f MB" % (tps, len(timed), 1e3 * sum(timed) / len(timed), wall, t_eval, rss))
    if a.json:
        print(json.dumps({
            "tokens_per_s": tps, "peak_rss_mb": rss, "wall_s": wall, "eval_s": t_eval,
            "valid_nats": evals[-1]["nats"] if evals else None, "evals": evals,
            "final_train_loss": losses[-1] if losses else None,
            "config": {"model": a.model, "variant": a.variant, "layers": a.layers,
                       "hidden": a.hidden, "d_state": a.d_state, "vocab_size": V,
                       "batch": B, "bptt": T, "lr": a.lr, "clip": a.clip, "steps": a.steps,
                       "seed": a.seed, "threads": a.threads, "params": nparams,
                       "init_from": a.init_from, "data": a.data, "malloc_tuned": malloc_tuned,
                       "torch": torch.__version__}}), flush=True)


if __name__ == "__main__":
    main()
