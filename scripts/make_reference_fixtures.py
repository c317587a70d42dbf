#!/usr/bin/python3
"""Generate the PyTorch reference fixtures that the C test suite compares against.

Usage:  /usr/bin/python3 scripts/make_reference_fixtures.py [OUTDIR]
        (OUTDIR defaults to tests/fixtures next to this script's parent.)
Needs Debian's python3-torch (1.13) , python3-h5py and python3-numpy.

Writes one HDF5 file per cell: tests/fixtures/ref_rnn.h5, ref_lstm.h5, ref_gru.h5.
The output is deterministic: fixed seeds, float32, torch.set_num_threads(1), and
HDF5 object timestamps off, so re-running gives byte-identical files.

Model (docs/formats.md): Net = Embedding(V,E) -> nn.RNN(tanh) / nn.LSTM / nn.GRU (E,H,L)
(batch_first=False) -> Linear(H,V). Sizes: V=11, E=5, H=6, L=2, B=3, T=7.
G = 1 (rnn), 4 (lstm), 3 (gru); `in` = E for layer 0, H for layer 1.

Initialisation: torch defaults under torch.manual_seed(SEED + cell index), then every
rnn weight MATRIX (rnn.weight_ih_l*, rnn.weight_hh_l*) is multiplied by 2.0 so the
activations are not tiny. rnn biases, embedding and head keep their default init.

File layout (every name is exact; P below = any of the 11 parameter names
  embedding.weight (V,E); rnn.weight_ih_l0 (G*H,E); rnn.weight_hh_l0 (G*H,H);
  rnn.bias_ih_l0 (G*H,); rnn.bias_hh_l0 (G*H,); rnn.weight_ih_l1 (G*H,H);
  rnn.weight_hh_l1 (G*H,H); rnn.bias_ih_l1 (G*H,); rnn.bias_hh_l1 (G*H,);
  head.weight (V,H); head.bias (V,)  -- i.e. 11 names, PyTorch state_dict order)

  /  attrs  vocab_size, embed, hidden, layers, batch, bptt   int32 scalars (V,E,H,L,B,T)
            cell               fixed-length ASCII string, "rnn" | "lstm" | "gru"
            clip_total_norm    float64 scalar: total L2 norm of all chunk-0 gradients
                               (before clipping, as clip_grad_norm_ returns it)
  /params/<P>          float32, PyTorch shape   initial parameters
  /tokens              int32 (B, 2*T+1)         token ids in [0,V); row b = stream b.
                        chunk k (k=0,1): inputs  tokens[:, k*T   : k*T+T]
                                         targets tokens[:, k*T+1 : k*T+T+1]
  /h0                  float32 (L,B,H)          initial hidden state (normal * 0.5)
  /c0                  float32 (L,B,H)          lstm only: initial cell state
  /loss                float64 (2,)             loss[0] = mean cross-entropy (nats) over
                        the B*T predictions of chunk 0 from (h0[,c0]); loss[1] = same for
                        chunk 1 starting from chunk 0's final state (carried, detached).
                        Computed in float32 by PyTorch, stored widened to float64.
  /logits0             float32 (T,B,V)          chunk-0 logits, time-major
  /grads/<P>           float32, PyTorch shape   d loss[0] / d param
  /grad_h0             float32 (L,B,H)          d loss[0] / d h0
  /grad_c0             float32 (L,B,H)          lstm only: d loss[0] / d c0
  /optim/<opt>/<P>     float32, PyTorch shape   parameters after 3 optimizer steps,
                        opt in {sgd, adam, adamw, rmsprop}. Each step: zero_grad, forward
                        chunk 0 from h0[,c0] (always the same chunk and initial state),
                        mean loss, backward, step. Starts from /params. No clipping.
  /optim/<opt> attrs   lr, momentum, weight_decay, alpha, eps, beta1, beta2: float64
                        scalars (0.0 where the optimizer has no such setting):
                        sgd      lr=0.1  momentum=0.9 (dampening 0, nesterov off)
                        adam     lr=0.01 beta1=0.9 beta2=0.999 eps=1e-8
                        adamw    lr=0.01 beta1=0.9 beta2=0.999 eps=1e-8 weight_decay=0.1
                        rmsprop  lr=0.01 alpha=0.99 eps=1e-8 (momentum 0, not centered)
  /clip/params/<P>     float32, PyTorch shape   parameters after ONE plain SGD step
                        (lr=0.1, no momentum) on the chunk-0 gradients after
                        torch.nn.utils.clip_grad_norm_(params, max_norm=0.05).

PyTorch 1.13 semantics the C code must match (for reference):
  cross-entropy: mean over all B*T (time, stream) predictions of logsumexp(z) - z[target].
  clip_grad_norm_: total = sqrt(sum of all squared grads over all params);
      coef = max_norm / (total + 1e-6); if coef < 1 every grad is multiplied by coef.
  SGD+momentum: buf = g on the first step, then buf = m*buf + g; p -= lr*buf.
  Adam: m = b1*m + (1-b1) g; v = b2*v + (1-b2) g^2; step t (1-based);
      p -= lr/(1-b1^t) * m / (sqrt(v)/sqrt(1-b2^t) + eps).
  AdamW: p *= (1 - lr*wd) first, then the Adam update above.
  RMSprop: v = a*v + (1-a) g^2; p -= lr * g / (sqrt(v) + eps)   (eps outside the sqrt).
  The embedding gradient is dense (rows of unused tokens are zero, and still count
  in optimizer state / weight decay).

After writing each file the script reopens it, loads /params into a fresh Net and
recomputes loss[0] from /tokens and /h0[,/c0]; it fails unless it matches to 1e-7
relative.
"""

import os
import sys

import h5py
import numpy as np
import torch
import torch.nn as nn

V, E, H, L, B, T = 11, 5, 6, 2, 3, 7
SEED = 20240601
CELLS = [("rnn", nn.RNN), ("lstm", nn.LSTM), ("gru", nn.GRU)]
CLIP_MAX_NORM = 0.05
CLIP_LR = 0.1
OPT_STEPS = 3

# name -> (constructor, float64 attrs recorded on /optim/<name>)
OPTIMS = {
    "sgd": (lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9, dampening=0.0,
                                      nesterov=False, weight_decay=0.0),
            dict(lr=0.1, momentum=0.9, weight_decay=0.0, alpha=0.0, eps=0.0,
                 beta1=0.0, beta2=0.0)),
    "adam": (lambda p: torch.optim.Adam(p, lr=0.01, betas=(0.9, 0.999), eps=1e-8,
                                        weight_decay=0.0, amsgrad=False),
             dict(lr=0.01, momentum=0.0, weight_decay=0.0, alpha=0.0, eps=1e-8,
                  beta1=0.9, beta2=0.999)),
    "adamw": (lambda p: torch.optim.AdamW(p, lr=0.01, betas=(0.9, 0.999), eps=1e-8,
                                          weight_decay=0.1, amsgrad=False),
              dict(lr=0.01, momentum=0.0, weight_decay=0.1, alpha=0.0, eps=1e-8,
                   beta1=0.9, beta2=0.999)),
    "rmsprop": (lambda p: torch.optim.RMSprop(p, lr=0.01, alpha=0.99, eps=1e-8,
                                              weight_decay=0.0, momentum=0.0,
                                              centered=False),
                dict(lr=0.01, momentum=0.0, weight_decay=0.0, alpha=0.99, eps=1e-8,
                     beta1=0.0, beta2=0.0)),
}


class Net(nn.Module):
    def __init__(self, V, E, H, L, cell):
        super().__init__()
        self.embedding = nn.Embedding(V, E)
        self.rnn = cell(E, H, L)  # tanh for nn.RNN; batch_first=False
        self.head = nn.Linear(H, V)

    def forward(self, x, state):
        # x: (T,B) int64 time-major; state: h or (h, c), each (L,B,H)
        out, state = self.rnn(self.embedding(x), state)
        return self.head(out), state


def chunk(tokens, k):
    """(inputs, targets) of chunk k, both (T,B) int64 time-major."""
    x = tokens[:, k * T:k * T + T]
    y = tokens[:, k * T + 1:k * T + T + 1]
    return x.t().contiguous(), y.t().contiguous()


def chunk_loss(net, x, y, state):
    logits, state = net(x, state)
    loss = nn.functional.cross_entropy(logits.reshape(-1, V), y.reshape(-1),
                                       reduction="mean")
    return loss, logits, state


def make_state(is_lstm, h0, c0, requires_grad=False):
    h = h0.clone().requires_grad_(requires_grad)
    if is_lstm:
        return (h, c0.clone().requires_grad_(requires_grad))
    return h


def build_net(cell_cls, init_sd):
    net = Net(V, E, H, L, cell_cls)
    net.load_state_dict(init_sd)
    return net


def run_optimizer(cell_cls, init_sd, make_opt, x, y, is_lstm, h0, c0):
    net = build_net(cell_cls, init_sd)
    opt = make_opt(list(net.parameters()))
    for _ in range(OPT_STEPS):
        opt.zero_grad()
        loss, _, _ = chunk_loss(net, x, y, make_state(is_lstm, h0, c0))
        loss.backward()
        opt.step()
    return {k: v.detach().clone() for k, v in net.state_dict().items()}


def write_params(group, sd):
    for name, t in sd.items():
        group.create_dataset(name, data=t.detach().numpy().astype(np.float32),
                             track_times=False)


def write_str_attr(obj, name, s):
    s = s.encode("ascii")
    obj.attrs.create(name, np.bytes_(s), dtype=h5py.string_dtype("ascii", len(s)))


def make_cell(idx, cell_name, cell_cls, outdir):
    is_lstm = cell_name == "lstm"
    torch.manual_seed(SEED + idx)

    # --- parameters: torch defaults, rnn weight matrices * 2 ---
    net = Net(V, E, H, L, cell_cls)
    with torch.no_grad():
        for name, p in net.rnn.named_parameters():
            if name.startswith("weight_"):
                p.mul_(2.0)
    init_sd = {k: v.detach().clone() for k, v in net.state_dict().items()}
    names = list(init_sd.keys())

    # --- data and initial state ---
    tokens = torch.randint(0, V, (B, 2 * T + 1), dtype=torch.int64)
    h0 = torch.randn(L, B, H) * 0.5
    c0 = torch.randn(L, B, H) * 0.5 if is_lstm else None
    x0, y0 = chunk(tokens, 0)
    x1, y1 = chunk(tokens, 1)

    # --- chunk 0 forward/backward, chunk 1 forward with carried state ---
    net.zero_grad()
    st0 = make_state(is_lstm, h0, c0, requires_grad=True)
    loss0, logits0, st_end = chunk_loss(net, x0, y0, st0)
    loss0.backward()
    grads = {n: p.grad.detach().clone() for n, p in net.named_parameters()}
    assert set(grads) == set(names)
    grad_h0 = (st0[0] if is_lstm else st0).grad.detach().clone()
    grad_c0 = st0[1].grad.detach().clone() if is_lstm else None
    with torch.no_grad():
        carried = tuple(s.detach() for s in st_end) if is_lstm else st_end.detach()
        loss1, _, _ = chunk_loss(net, x1, y1, carried)

    # diagnostics: float64 recomputation (precision of the float32 reference)
    with torch.no_grad():
        net64 = build_net(cell_cls, init_sd).double()
        s64 = (h0.double(), c0.double()) if is_lstm else h0.double()
        l0_64, _, s64 = chunk_loss(net64, x0, y0, s64)
        l1_64, _, _ = chunk_loss(net64, x1, y1, s64)
        out, _ = net64.rnn(net64.embedding(x0), (h0.double(), c0.double())
                           if is_lstm else h0.double())
        mean_abs_h = out.abs().mean().item()
        sat = (out.abs() > 0.99).double().mean().item()

    # --- optimizers ---
    optim_out = {}
    for oname, (make_opt, _) in OPTIMS.items():
        optim_out[oname] = run_optimizer(cell_cls, init_sd, make_opt, x0, y0,
                                         is_lstm, h0, c0)

    # --- clipping: one plain SGD step after clip_grad_norm_ ---
    cnet = build_net(cell_cls, init_sd)
    copt = torch.optim.SGD(cnet.parameters(), lr=CLIP_LR, momentum=0.0)
    copt.zero_grad()
    closs, _, _ = chunk_loss(cnet, x0, y0, make_state(is_lstm, h0, c0))
    closs.backward()
    total_norm = torch.nn.utils.clip_grad_norm_(cnet.parameters(),
                                                max_norm=CLIP_MAX_NORM)
    total_norm = float(total_norm)
    assert total_norm > CLIP_MAX_NORM, "clip test would not clip"
    copt.step()
    clip_sd = {k: v.detach().clone() for k, v in cnet.state_dict().items()}

    # --- write ---
    path = os.path.join(outdir, "ref_%s.h5" % cell_name)
    tmp = path + ".tmp"
    with h5py.File(tmp, "w", libver="earliest", track_order=False) as f:
        for k, v in (("vocab_size", V), ("embed", E), ("hidden", H), ("layers", L),
                     ("batch", B), ("bptt", T)):
            f.attrs.create(k, np.int32(v), dtype=np.int32)
        write_str_attr(f, "cell", cell_name)
        f.attrs.create("clip_total_norm", np.float64(total_norm), dtype=np.float64)

        write_params(f.create_group("params"), init_sd)
        f.create_dataset("tokens", data=tokens.numpy().astype(np.int32),
                         track_times=False)
        f.create_dataset("h0", data=h0.numpy().astype(np.float32), track_times=False)
        if is_lstm:
            f.create_dataset("c0", data=c0.numpy().astype(np.float32),
                             track_times=False)
        f.create_dataset("loss", data=np.array([loss0.item(), loss1.item()],
                                               dtype=np.float64), track_times=False)
        f.create_dataset("logits0", data=logits0.detach().numpy().astype(np.float32),
                         track_times=False)
        write_params(f.create_group("grads"), {n: grads[n] for n in names})
        f.create_dataset("grad_h0", data=grad_h0.numpy().astype(np.float32),
                         track_times=False)
        if is_lstm:
            f.create_dataset("grad_c0", data=grad_c0.numpy().astype(np.float32),
                             track_times=False)
        og = f.create_group("optim")
        for oname, (_, attrs) in OPTIMS.items():
            g = og.create_group(oname)
            for k in ("lr", "momentum", "weight_decay", "alpha", "eps", "beta1",
                      "beta2"):
                g.attrs.create(k, np.float64(attrs[k]), dtype=np.float64)
            write_params(g, optim_out[oname])
        write_params(f.create_group("clip").create_group("params"), clip_sd)
    os.replace(tmp, path)

    # --- self-check: reload from the file into a fresh Net, recompute loss0 ---
    with h5py.File(path, "r") as f:
        assert f.attrs["cell"].decode("ascii") == cell_name
        sd = {n: torch.from_numpy(f["params"][n][()]) for n in f["params"]}
        assert set(sd) == set(names)
        fresh = Net(int(f.attrs["vocab_size"]), int(f.attrs["embed"]),
                    int(f.attrs["hidden"]), int(f.attrs["layers"]), cell_cls)
        fresh.load_state_dict(sd)
        ftok = torch.from_numpy(f["tokens"][()]).long()
        fh0 = torch.from_numpy(f["h0"][()])
        fc0 = torch.from_numpy(f["c0"][()]) if is_lstm else None
        ref0 = float(f["loss"][0])
        with torch.no_grad():
            fx, fy = chunk(ftok, 0)
            l, lg, _ = chunk_loss(fresh, fx, fy, make_state(is_lstm, fh0, fc0))
        rel = abs(l.item() - ref0) / abs(ref0)
        assert rel <= 1e-7, "self-check failed: %r vs %r" % (l.item(), ref0)
        assert np.array_equal(lg.numpy(), f["logits0"][()])

    print("%-4s loss0=%.9f loss1=%.9f  (float64 recompute: %.9f %.9f)  "
          "clip_total_norm=%.6f  mean|h|=%.3f sat>0.99=%.1f%%  %d bytes  self-check "
          "rel=%.1e" % (cell_name, loss0.item(), loss1.item(), l0_64.item(),
                        l1_64.item(), total_norm, mean_abs_h, 100 * sat,
                        os.path.getsize(path), rel))


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    outdir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        os.path.dirname(here), "tests", "fixtures")
    os.makedirs(outdir, exist_ok=True)
    torch.set_num_threads(1)
    torch.set_default_dtype(torch.float32)
    torch.use_deterministic_algorithms(True)
    for idx, (cell_name, cell_cls) in enumerate(CELLS):
        make_cell(idx, cell_name, cell_cls, outdir)


if __name__ == "__main__":
    main()
