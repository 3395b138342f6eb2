#!/usr/bin/python3
"""Golden fixtures for adabatch's optimizers other than AdamW: 3 steps on the golden tiny model.

For each optimizer, a safetensors file holding
  loss              F64 [steps]   the loss of each batch before its update
  delta.<hf name>   F32   theta_3 - theta_0, the first ROWS rows of every matrix (whole norm weights)
and, in __metadata__, the optimizer's settings as adabatch's `optim` section spells them plus lr and
clip. The model, its initial weights and the batches are those of llama_golden.py's untied fixture
(test/fixtures/golden/tiny-untied.safetensors, same seed), so the test takes tokens from there.
Every step clips the global gradient norm to `clip` first (torch.nn.utils.clip_grad_norm_).

The updates, written here independently of adabatch:
  adagrad       torch.optim.Adagrad itself (weight decay on matrices and embeddings only).
  adagrad_norm  Ward et al. 2020: b2 += ||g||^2 over all parameters; x -= lr*g/(sqrt(b2) + eps).
  lamb          You et al. 2020, Algorithm 2: bias-corrected Adam direction plus decoupled decay,
                scaled per tensor by ||x||/||u|| (1 when either is 0).
  muon          KellerJordan/Muon muon.py (momentum lerp, Nesterov, zeropower_via_newtonschulz5 in
                float32 with the reference's transpose of tall matrices), Moonshot's update scale
                0.2*sqrt(max(rows, cols)), weight decay W *= 1 - lr*wd, for the blocks' 2-D matrices;
                torch.optim.AdamW for embeddings, head and norms.
Only the first rows are stored to keep the committed fixtures small: every per-tensor quantity
(trust ratio, orthogonalisation) is still computed on whole tensors.

Usage (Debian's python3-torch):
  /usr/bin/python3 tools/golden/optimizers_golden.py --out-dir test/fixtures/golden
"""
import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from llama_golden import TINY, entries, forward, golden_weight, param_specs  # noqa: E402
from safetensors_writer import write_safetensors  # noqa: E402

ROWS = 8
STEPS, BATCH, SEQ, SEED, CLIP, STD = 3, 2, 128, 1234, 0.5, 0.02

# Settings per optimizer: adabatch's optim keys (name included), lr.
SETTINGS = {
    "adagrad": dict(name="adagrad", lr=1e-2, lr_decay=0.01, initial_accumulator_value=0.1, eps=1e-10,
                    weight_decay=0.01, decay_norms=False),
    # lr 1: one step moves the whole model by at most lr in L2 norm (lr*||g||/b), so the weights with
    # small gradients still move by many float32 ulps and theta_3 - theta_0 is well conditioned.
    "adagrad_norm": dict(name="adagrad_norm", lr=1.0, initial_accumulator_value=0.0, eps=1e-10),
    # eps 1e-6 keeps Adam's g/(|g|+eps) well conditioned in float32 (see llama_golden.py).
    "lamb": dict(name="lamb", lr=2e-3, beta1=0.9, beta2=0.999, eps=1e-6, weight_decay=0.01, decay_norms=False),
    "muon": dict(name="muon", lr=2e-3, momentum=0.95, nesterov=True, ns_steps=5, beta1=0.9, beta2=0.95,
                 eps=1e-6, weight_decay=0.1, decay_norms=False),
}


def zeropower_via_newtonschulz5(G, steps):
    """muon.py's iteration, in float32 (the reference casts to bfloat16)."""
    a, b, c = (3.4445, -4.7750, 2.0315)
    X = G.float()
    if G.size(-2) > G.size(-1):
        X = X.mT
    X = X / (X.norm(dim=(-2, -1), keepdim=True) + 1e-7)
    for _ in range(steps):
        A = X @ X.mT
        B = b * A + c * A @ A
        X = a * X + B @ X
    if G.size(-2) > G.size(-1):
        X = X.mT
    return X


class Lamb:
    def __init__(self, groups, lr, beta1, beta2, eps):
        self.groups, self.lr, self.b1, self.b2, self.eps, self.t = groups, lr, beta1, beta2, eps, 0
        self.state = {}

    @torch.no_grad()
    def step(self):
        self.t += 1
        for params, wd in self.groups:
            for p in params:
                m, v = self.state.setdefault(p, (torch.zeros_like(p), torch.zeros_like(p)))
                m.mul_(self.b1).add_(p.grad, alpha=1 - self.b1)
                v.mul_(self.b2).addcmul_(p.grad, p.grad, value=1 - self.b2)
                m_hat = m / (1 - self.b1 ** self.t)
                v_hat = v / (1 - self.b2 ** self.t)
                u = m_hat / (v_hat.sqrt() + self.eps) + wd * p
                w_norm, u_norm = p.norm(), u.norm()
                ratio = (w_norm / u_norm) if (w_norm > 0 and u_norm > 0) else 1.0
                p.sub_(self.lr * ratio * u)


class AdagradNorm:
    def __init__(self, params, lr, initial_accumulator_value, eps):
        self.params, self.lr, self.b2, self.eps = params, lr, initial_accumulator_value, eps

    @torch.no_grad()
    def step(self):
        self.b2 += float(sum(float(p.grad.double().pow(2).sum()) for p in self.params))
        # One float64 step size, as adabatch applies it (x += alpha*g): AdaGrad-Norm moves small weights
        # by little, so θ3 − θ0 is only a few float32 ulps of θ and the rounding order would show.
        alpha = -self.lr / (self.b2 ** 0.5 + self.eps)
        for p in self.params:
            p.add_(p.grad, alpha=alpha)


class Muon:
    def __init__(self, matrices, adam_groups, lr, momentum, nesterov, ns_steps, beta1, beta2, eps, weight_decay):
        self.matrices, self.lr, self.mu, self.nesterov, self.ns = matrices, lr, momentum, nesterov, ns_steps
        self.wd = weight_decay
        self.buf = {p: torch.zeros_like(p) for p in matrices}
        self.adam = torch.optim.AdamW([{"params": ps, "weight_decay": wd} for ps, wd in adam_groups],
                                      lr=lr, betas=(beta1, beta2), eps=eps)

    @torch.no_grad()
    def step(self):
        for p in self.matrices:
            g = p.grad
            buf = self.buf[p]
            buf.lerp_(g, 1 - self.mu)
            update = g.lerp(buf, self.mu) if self.nesterov else buf
            o = zeropower_via_newtonschulz5(update, self.ns)
            p.mul_(1 - self.lr * self.wd)
            p.add_(o, alpha=-self.lr * 0.2 * max(p.size(0), p.size(1)) ** 0.5)
        self.adam.step()


def make_optimizer(name, s, P, specs):
    decay = [P[n] for n, sh in specs if len(sh) > 1]
    no_decay = [P[n] for n, sh in specs if len(sh) == 1]
    if name == "adagrad":
        return torch.optim.Adagrad([{"params": decay, "weight_decay": s["weight_decay"]},
                                    {"params": no_decay, "weight_decay": 0.0}],
                                   lr=s["lr"], lr_decay=s["lr_decay"], eps=s["eps"],
                                   initial_accumulator_value=s["initial_accumulator_value"])
    if name == "adagrad_norm":
        return AdagradNorm(list(P.values()), s["lr"], s["initial_accumulator_value"], s["eps"])
    if name == "lamb":
        return Lamb([(decay, s["weight_decay"]), (no_decay, 0.0)], s["lr"], s["beta1"], s["beta2"], s["eps"])
    if name == "muon":
        is_matrix = lambda n, sh: n.startswith("model.layers.") and len(sh) == 2  # noqa: E731
        matrices = [P[n] for n, sh in specs if is_matrix(n, sh)]
        adam_decay = [P[n] for n, sh in specs if len(sh) == 2 and not is_matrix(n, sh)]
        return Muon(matrices, [(adam_decay, s["weight_decay"]), (no_decay, 0.0)], s["lr"], s["momentum"],
                    s["nesterov"], s["ns_steps"], s["beta1"], s["beta2"], s["eps"], s["weight_decay"])
    raise ValueError(name)


def run(name, s, out):
    c = dict(TINY)
    specs = param_specs(c, tied=False)
    P = {}
    for idx, (n, shape) in enumerate(specs):
        P[n] = golden_weight(idx, int(np.prod(shape)), STD, len(shape) == 1).reshape(shape).clone().requires_grad_(True)
    theta0 = {k: v.detach().clone() for k, v in P.items()}
    g = torch.Generator().manual_seed(SEED)
    data = torch.randint(0, c["vocab"], (STEPS, BATCH, SEQ + 1), generator=g)
    opt = make_optimizer(name, s, P, specs)
    losses = []
    for step in range(STEPS):
        for p in P.values():
            p.grad = None
        loss = forward(P, data[step, :, :-1], data[step, :, 1:], c, False)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(list(P.values()), CLIP)
        losses.append(float(loss))
        opt.step()
    tensors = [("loss", np.array(losses, dtype=np.float64))]
    for n, _ in specs:
        delta = (P[n].detach() - theta0[n]).numpy()
        tensors.append(("delta." + n, np.ascontiguousarray(delta[:ROWS] if delta.ndim == 2 else delta)))
    meta = {
        "optimizer": json.dumps(dict(s, clip=CLIP, steps=STEPS, rows=ROWS)),
        "base_fixture": "tiny-untied",
        "generator": "tools/golden/optimizers_golden.py, torch " + torch.__version__,
    }
    write_safetensors(out, entries(tensors), meta)
    print(f"wrote {out}: losses {losses}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out-dir", required=True)
    ap.add_argument("--only", choices=sorted(SETTINGS), help="one optimizer (default: all)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    for name, s in SETTINGS.items():
        if args.only and name != args.only:
            continue
        run(name, s, str(Path(args.out_dir) / f"optim-{name}.safetensors"))


if __name__ == "__main__":
    main()
