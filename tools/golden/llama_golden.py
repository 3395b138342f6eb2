#!/usr/bin/python3
"""Golden fixtures for adabatch's Llama, computed by PyTorch with Hugging Face Llama semantics.

Writes a safetensors file holding, for a small Llama:
  tokens, targets          I32 [steps, batch, seq]   one batch per optimizer step
  loss                     F64 [steps]               the loss of each batch before its update
  grad_norm                F64 [steps]               the global gradient norm before clipping
  grad.<hf name>           F32                       every parameter's gradient at step 0
  delta.<hf name>          F32                       theta_steps - theta_0 after `steps` AdamW steps
and, in __metadata__, the model config and the optimizer settings.

The initial weights are not stored: both sides generate them with the same integer hash
(golden_weight below; test/helpers/golden.ts mirrors it), and the fixture records per-tensor
sums so the test can prove it starts from the same weights.

The model is written out here, independent of adabatch: Hugging Face's LlamaForCausalLM forward
(RMSNorm in float32, rotate-half RoPE with inv_freq = theta^(-2i/d), repeat_kv for grouped-query
attention, SwiGLU MLP, optional tied lm_head), torch.optim.AdamW with weight decay on matrices only,
and torch.nn.utils.clip_grad_norm_.

Usage (Debian's python3-torch: apt-get install python3-torch):
  /usr/bin/python3 tools/golden/llama_golden.py --out test/fixtures/golden/tiny-untied.safetensors
  /usr/bin/python3 tools/golden/llama_golden.py --tied --out test/fixtures/golden/tiny-tied.safetensors
"""
import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from safetensors_writer import write_safetensors  # noqa: E402

# The `tiny` preset of src/model/config.ts.
TINY = dict(vocab=512, d_model=128, n_layers=4, n_heads=4, n_kv_heads=2, ffn_dim=352, seq_len=128,
            rope_theta=10000.0, norm_eps=1e-5)


def golden_weight(tensor_index, count, std, is_norm):
    """Deterministic values from a 32-bit integer hash, reproducible bit for bit in JavaScript."""
    i = np.arange(count, dtype=np.uint64)
    h = (i * np.uint64(0x9E3779B1) + np.uint64(tensor_index) * np.uint64(0x85EBCA77)) & np.uint64(0xFFFFFFFF)
    h ^= h >> np.uint64(15)
    h = (h * np.uint64(0x2C1B3C6D)) & np.uint64(0xFFFFFFFF)
    h ^= h >> np.uint64(12)
    h = (h * np.uint64(0x297A2D39)) & np.uint64(0xFFFFFFFF)
    h ^= h >> np.uint64(15)
    u = h.astype(np.float64) / 4294967296.0 - 0.5           # uniform in [-0.5, 0.5)
    if is_norm:
        v = 1.0 + 0.2 * u
    else:
        v = u * (2.0 * math.sqrt(3.0) * std)                 # variance std^2
    return torch.from_numpy(v.astype(np.float32))


def param_specs(c, tied):
    d, H, Hkv, Fd, V = c["d_model"], c["n_heads"], c["n_kv_heads"], c["ffn_dim"], c["vocab"]
    hd = d // H
    specs = [("model.embed_tokens.weight", (V, d))]
    for l in range(c["n_layers"]):
        p = f"model.layers.{l}."
        specs += [
            (p + "input_layernorm.weight", (d,)),
            (p + "post_attention_layernorm.weight", (d,)),
            (p + "self_attn.q_proj.weight", (H * hd, d)),
            (p + "self_attn.k_proj.weight", (Hkv * hd, d)),
            (p + "self_attn.v_proj.weight", (Hkv * hd, d)),
            (p + "self_attn.o_proj.weight", (d, H * hd)),
            (p + "mlp.gate_proj.weight", (Fd, d)),
            (p + "mlp.up_proj.weight", (Fd, d)),
            (p + "mlp.down_proj.weight", (d, Fd)),
        ]
    specs.append(("model.norm.weight", (d,)))
    if not tied:
        specs.append(("lm_head.weight", (V, d)))
    return specs


def rms_norm(x, w, eps):
    # LlamaRMSNorm: variance in float32, then scale.
    var = x.pow(2).mean(-1, keepdim=True)
    return w * (x * torch.rsqrt(var + eps))


def rotate_half(x):
    x1, x2 = x[..., : x.shape[-1] // 2], x[..., x.shape[-1] // 2:]
    return torch.cat((-x2, x1), dim=-1)


def forward(P, tokens, targets, c, tied):
    B, T = tokens.shape
    d, H, Hkv = c["d_model"], c["n_heads"], c["n_kv_heads"]
    hd = d // H
    eps = c["norm_eps"]
    inv_freq = 1.0 / (c["rope_theta"] ** (torch.arange(0, hd, 2, dtype=torch.int64).float() / hd))
    pos = torch.arange(T, dtype=torch.float32)
    freqs = torch.outer(pos, inv_freq)
    emb = torch.cat((freqs, freqs), dim=-1)
    cos, sin = emb.cos()[None, None], emb.sin()[None, None]
    mask = torch.triu(torch.ones(T, T, dtype=torch.bool), 1)

    x = F.embedding(tokens, P["model.embed_tokens.weight"])
    for l in range(c["n_layers"]):
        p = f"model.layers.{l}."
        h = rms_norm(x, P[p + "input_layernorm.weight"], eps)
        q = (h @ P[p + "self_attn.q_proj.weight"].T).view(B, T, H, hd).transpose(1, 2)
        k = (h @ P[p + "self_attn.k_proj.weight"].T).view(B, T, Hkv, hd).transpose(1, 2)
        v = (h @ P[p + "self_attn.v_proj.weight"].T).view(B, T, Hkv, hd).transpose(1, 2)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        rep = H // Hkv                                     # repeat_kv
        k = k[:, :, None].expand(B, Hkv, rep, T, hd).reshape(B, H, T, hd)
        v = v[:, :, None].expand(B, Hkv, rep, T, hd).reshape(B, H, T, hd)
        att = (q @ k.transpose(-2, -1)) / math.sqrt(hd)
        att = att.masked_fill(mask, float("-inf")).softmax(dim=-1)
        y = (att @ v).transpose(1, 2).reshape(B, T, H * hd)
        x = x + y @ P[p + "self_attn.o_proj.weight"].T
        h = rms_norm(x, P[p + "post_attention_layernorm.weight"], eps)
        g = h @ P[p + "mlp.gate_proj.weight"].T
        u = h @ P[p + "mlp.up_proj.weight"].T
        x = x + (F.silu(g) * u) @ P[p + "mlp.down_proj.weight"].T
    x = rms_norm(x, P["model.norm.weight"], eps)
    head = P["model.embed_tokens.weight"] if tied else P["lm_head.weight"]
    logits = x @ head.T
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))


def entries(tensors):
    """(name, array) pairs as safetensors entries."""
    codes = {np.dtype("float32"): "F32", np.dtype("float64"): "F64", np.dtype("int32"): "I32"}
    for name, arr in tensors:
        arr = np.ascontiguousarray(arr)
        yield name, codes[arr.dtype], arr.shape, arr.tobytes()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--tied", action="store_true")
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--weight-decay", type=float, default=0.1)
    ap.add_argument("--clip", type=float, default=0.5)
    # Adam's update g/(|g|+eps) is ill-conditioned where |g| is at float32 rounding level (~1e-8
    # here): two correct float32 implementations then disagree on that coordinate by a sizeable
    # fraction of lr. eps=1e-6 keeps the comparison well conditioned; the formula is unchanged.
    ap.add_argument("--eps", type=float, default=1e-6)
    args = ap.parse_args()
    torch.set_num_threads(1)
    c = dict(TINY)
    tied = args.tied
    std = 0.02
    specs = param_specs(c, tied)
    P = {}
    sums = {}
    for idx, (name, shape) in enumerate(specs):
        w = golden_weight(idx, int(np.prod(shape)), std, len(shape) == 1).reshape(shape)
        P[name] = w.clone().requires_grad_(True)
        sums[name] = float(w.double().sum())
    theta0 = {k: v.detach().clone() for k, v in P.items()}

    g = torch.Generator().manual_seed(args.seed)
    data = torch.randint(0, c["vocab"], (args.steps, args.batch, args.seq + 1), generator=g)
    tokens = data[:, :, :-1].contiguous().to(torch.int32)
    targets = data[:, :, 1:].contiguous().to(torch.int32)

    decay = [P[n] for n, s in specs if len(s) > 1]
    no_decay = [P[n] for n, s in specs if len(s) == 1]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": args.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}],
                            lr=args.lr, betas=(0.9, 0.95), eps=args.eps)
    losses, norms, grads0 = [], [], None
    for step in range(args.steps):
        opt.zero_grad(set_to_none=True)
        loss = forward(P, tokens[step].long(), targets[step].long(), c, tied)
        loss.backward()
        if step == 0:
            grads0 = {n: P[n].grad.detach().clone() for n, _ in specs}
        norm = torch.nn.utils.clip_grad_norm_(list(P.values()), args.clip)
        losses.append(float(loss))
        norms.append(float(norm))
        opt.step()
    clipped = [n > args.clip for n in norms]
    assert any(clipped), f"clipping never triggered (norms {norms}); lower --clip"

    out = [("tokens", tokens.numpy()), ("targets", targets.numpy()),
           ("loss", np.array(losses, dtype=np.float64)), ("grad_norm", np.array(norms, dtype=np.float64))]
    for name, _ in specs:
        out.append(("grad." + name, grads0[name].numpy()))
    for name, _ in specs:
        out.append(("delta." + name, (P[name].detach() - theta0[name]).numpy()))
    meta = {
        "config": json.dumps(dict(c, tie_embeddings=tied, init_std=std)),
        "optimizer": json.dumps(dict(lr=args.lr, beta1=0.9, beta2=0.95, eps=args.eps,
                                     weight_decay=args.weight_decay, clip=args.clip, steps=args.steps)),
        "weight_sums": json.dumps(sums),
        "generator": "tools/golden/llama_golden.py, torch " + torch.__version__,
    }
    write_safetensors(args.out, entries(out), meta)
    print(f"wrote {args.out}: losses {losses}, grad norms {norms}")


if __name__ == "__main__":
    main()
