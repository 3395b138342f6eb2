#!/usr/bin/python3
"""Writes a small Hugging Face Llama model directory with PyTorch, independently of adabatch.

For the import tests: random weights (seeded) stored as F32, F16, BF16 or F64, in one
model.safetensors or in N shards with model.safetensors.index.json (as save_pretrained lays them
out), a config.json in the form transformers writes (with the usual extra fields), optionally a
rotary_emb.inv_freq buffer per layer (older checkpoints carry them) and, with --tied, optionally a
duplicate lm_head.weight. With --expect, also writes the float32 values torch obtains from the
stored tensors (`.float()`) to a plain float32 safetensors file, so the loader's dtype conversion
can be compared bit for bit.

Usage:
  /usr/bin/python3 tools/hf/make_hf_dir.py --out DIR --dtype bf16 --shards 3 [--tied] \
      [--inv-freq] [--lm-head-copy] [--expect FILE] [--seed 0]
"""
import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from safetensors_writer import write_safetensors  # noqa: E402

SIZES = dict(vocab_size=96, hidden_size=32, intermediate_size=88, num_hidden_layers=2,
             num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64)
DT = {"f32": (torch.float32, "F32"), "f16": (torch.float16, "F16"), "bf16": (torch.bfloat16, "BF16"),
      "f64": (torch.float64, "F64")}


def to_bytes(t):
    if t.dtype == torch.bfloat16:
        return t.contiguous().view(torch.int16).numpy().tobytes()
    return t.contiguous().numpy().tobytes()


def write_tensors(path, tensors, metadata):
    """tensors: {name: (torch tensor, dtype code)}."""
    write_safetensors(path, [(n, code, t.shape, to_bytes(t)) for n, (t, code) in tensors.items()], metadata)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--dtype", choices=sorted(DT), default="bf16")
    ap.add_argument("--shards", type=int, default=1)
    ap.add_argument("--tied", action="store_true")
    ap.add_argument("--inv-freq", action="store_true")
    ap.add_argument("--lm-head-copy", action="store_true")
    ap.add_argument("--expect")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--rope-theta", type=float, default=5000.0)
    args = ap.parse_args()
    g = torch.Generator().manual_seed(args.seed)
    c = SIZES
    d, V, Fd, H, Hkv = c["hidden_size"], c["vocab_size"], c["intermediate_size"], c["num_attention_heads"], c["num_key_value_heads"]
    hd = d // H
    specs = [("model.embed_tokens.weight", (V, d), 0.5)]
    for l in range(c["num_hidden_layers"]):
        p = f"model.layers.{l}."
        specs += [(p + "input_layernorm.weight", (d,), None), (p + "post_attention_layernorm.weight", (d,), None),
                  (p + "self_attn.q_proj.weight", (H * hd, d), 0.2), (p + "self_attn.k_proj.weight", (Hkv * hd, d), 0.2),
                  (p + "self_attn.v_proj.weight", (Hkv * hd, d), 0.2), (p + "self_attn.o_proj.weight", (d, H * hd), 0.2),
                  (p + "mlp.gate_proj.weight", (Fd, d), 0.2), (p + "mlp.up_proj.weight", (Fd, d), 0.2),
                  (p + "mlp.down_proj.weight", (d, Fd), 0.1)]
    specs.append(("model.norm.weight", (d,), None))
    if not args.tied:
        specs.append(("lm_head.weight", (V, d), 0.2))
    dtype, code = DT[args.dtype]
    tensors = {}
    for name, shape, std in specs:
        w = 1.0 + 0.3 * torch.randn(shape, generator=g) if std is None else std * torch.randn(shape, generator=g)
        tensors[name] = (w.to(dtype), code)
    if args.tied and args.lm_head_copy:
        tensors["lm_head.weight"] = (tensors["model.embed_tokens.weight"][0].clone(), code)
    if args.inv_freq:
        inv = 1.0 / (args.rope_theta ** (torch.arange(0, hd, 2).float() / hd))
        for l in range(c["num_hidden_layers"]):
            tensors[f"model.layers.{l}.self_attn.rotary_emb.inv_freq"] = (inv.clone(), "F32")

    os.makedirs(args.out, exist_ok=True)
    names = list(tensors)
    if args.shards == 1:
        write_tensors(os.path.join(args.out, "model.safetensors"), tensors, {"format": "pt"})
    else:
        weight_map, total = {}, 0
        parts = np.array_split(np.arange(len(names)), args.shards)
        for i, idx in enumerate(parts):
            fname = f"model-{i + 1:05d}-of-{args.shards:05d}.safetensors"
            part = {names[j]: tensors[names[j]] for j in idx}
            write_tensors(os.path.join(args.out, fname), part, {"format": "pt"})
            for n, (t, _) in part.items():
                weight_map[n] = fname
                total += t.numel() * t.element_size()
        with open(os.path.join(args.out, "model.safetensors.index.json"), "w") as f:
            json.dump({"metadata": {"total_size": total}, "weight_map": weight_map}, f, indent=2)
    config = dict(c, architectures=["LlamaForCausalLM"], model_type="llama", hidden_act="silu",
                  rope_theta=args.rope_theta, rms_norm_eps=1e-6, rope_scaling=None, attention_bias=False,
                  attention_dropout=0.0, mlp_bias=False, pretraining_tp=1, initializer_range=0.02,
                  tie_word_embeddings=args.tied, torch_dtype={"f32": "float32", "f16": "float16", "bf16": "bfloat16", "f64": "float64"}[args.dtype],
                  bos_token_id=1, eos_token_id=2, use_cache=True, transformers_version="4.44.0",
                  _name_or_path="adabatch/make_hf_dir")
    with open(os.path.join(args.out, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
    if args.expect:
        write_tensors(args.expect, {n: (t.float(), "F32") for n, (t, _) in tensors.items()}, {"format": "pt"})
    print(json.dumps({"out": args.out, "tensors": len(names)}))


if __name__ == "__main__":
    main()
