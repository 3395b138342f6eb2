#!/usr/bin/python3
"""Independent check that a model directory means what Hugging Face transformers would make of it.

Given a model directory (an adabatch checkpoint, or any Hugging Face Llama directory with
config.json and model.safetensors or model.safetensors.index.json + shards), this script

  1. verifies checksums.json when present (size and SHA-256 of every listed file, with hashlib),
  2. reads config.json and the safetensors weights with a small reader written here (no adabatch
     code, no `safetensors` package): F32, F16, BF16 and F64 are converted to float32 by numpy/torch,
  3. checks what transformers checks when loading: safetensors __metadata__ "format" must be "pt"
     (transformers raises otherwise), model_type "llama", no tensor missing or unexpected,
  4. runs Hugging Face's LlamaForCausalLM forward pass, re-implemented line by line after
     transformers' modeling_llama.py (eager attention, float32): LlamaRMSNorm (float32 variance),
     LlamaRotaryEmbedding (inv_freq = 1 / theta^(arange(0, hd, 2) / hd), rotate_half), repeat_kv for
     grouped-query attention, softmax in float32 with the additive finfo.min causal mask, SwiGLU MLP
     (down(silu(gate(x)) * up(x))), final norm, lm_head (the embedding when tie_word_embeddings),
  5. computes the mean next-token cross-entropy over a JSON file of token-id sequences
     ([[id, id, ...], ...]): each sequence of length n predicts its tokens 1..n-1 from their
     prefixes; the mean is over all predicted tokens of all sequences,
and prints {"loss": x, "tokens": n} on stdout, the contract of `adabatch eval --ckpt DIR --tokens FILE
--json`. transformers itself is not used (it is not installable here).

Usage (Debian's python3-torch):
  /usr/bin/python3 tools/hf/verify_export.py --model DIR --tokens tokens.json [--no-verify]
"""
import argparse
import hashlib
import json
import math
import os
import struct
import sys

import numpy as np
import torch
import torch.nn.functional as F

NP_DTYPES = {"F32": "<f4", "F64": "<f8", "F16": "<f2"}


def fail(msg):
    print(f"verify_export: {msg}", file=sys.stderr)
    sys.exit(2)


def verify_manifest(model_dir):
    path = os.path.join(model_dir, "checksums.json")
    if not os.path.exists(path):
        return False
    with open(path) as f:
        manifest = json.load(f)
    for name, d in manifest["files"].items():
        p = os.path.join(model_dir, name)
        h = hashlib.sha256()
        size = 0
        with open(p, "rb") as f:
            while True:
                b = f.read(1 << 23)
                if not b:
                    break
                h.update(b)
                size += len(b)
        if size != d["size"] or h.hexdigest() != d["sha256"]:
            fail(f"{p}: does not match checksums.json (size {size} vs {d['size']}, sha256 {h.hexdigest()} vs {d['sha256']})")
    return True


def read_safetensors(path):
    """Returns ({name: float32 torch tensor}, metadata, {name: stored dtype})."""
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    meta = header.pop("__metadata__", None)
    base = 8 + n
    out, dtypes = {}, {}
    for name, info in header.items():
        b0, b1 = info["data_offsets"]
        raw = data[base + b0: base + b1]
        dt = info["dtype"]
        if dt == "BF16":
            u = np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16
            arr = u.view(np.float32)
        elif dt in NP_DTYPES:
            arr = np.frombuffer(raw, dtype=NP_DTYPES[dt]).astype(np.float32)
        else:
            fail(f"{path}: tensor {name} has dtype {dt}, not a float type")
        out[name] = torch.from_numpy(arr.copy()).reshape(info["shape"])
        dtypes[name] = dt
    return out, meta, dtypes


def load_weights(model_dir):
    single = os.path.join(model_dir, "model.safetensors")
    if os.path.exists(single):
        files = [single]
    else:
        with open(os.path.join(model_dir, "model.safetensors.index.json")) as f:
            index = json.load(f)
        files = sorted({os.path.join(model_dir, s) for s in index["weight_map"].values()})
    P, dtypes = {}, {}
    for path in files:
        t, meta, dt = read_safetensors(path)
        # transformers' modeling_utils.load_state_dict refuses files without this metadata.
        if meta is None or meta.get("format") not in ("pt", "tf", "flax", "mlx"):
            fail(f"{path}: __metadata__ {meta!r} lacks format 'pt'; transformers would refuse to load it")
        P.update(t)
        dtypes.update(dt)
    return P, dtypes


def llama_config(model_dir):
    with open(os.path.join(model_dir, "config.json")) as f:
        c = json.load(f)
    if c.get("model_type") != "llama":
        fail("config.json: model_type is not llama")
    for field in ("rope_scaling", "sliding_window"):
        if c.get(field) is not None:
            fail(f"config.json: {field} is not implemented by this script")
    if c.get("attention_bias") or c.get("mlp_bias") or c.get("hidden_act", "silu") != "silu":
        fail("config.json: biases / non-silu activations are not implemented by this script")
    # LlamaConfig defaults, as transformers applies them.
    d = c.get("hidden_size", 4096)
    H = c.get("num_attention_heads", 32)
    return dict(
        vocab=c.get("vocab_size", 32000), d=d, H=H,
        Hkv=c.get("num_key_value_heads") or H,
        hd=c.get("head_dim") or d // H,
        F=c.get("intermediate_size", 11008), L=c.get("num_hidden_layers", 32),
        theta=float(c.get("rope_theta", 10000.0)), eps=float(c.get("rms_norm_eps", 1e-6)),
        tied=bool(c.get("tie_word_embeddings", False)),
    )


def expected_names(c):
    names = ["model.embed_tokens.weight", "model.norm.weight"]
    for l in range(c["L"]):
        p = f"model.layers.{l}."
        names += [p + s for s in ("input_layernorm.weight", "post_attention_layernorm.weight",
                                  "self_attn.q_proj.weight", "self_attn.k_proj.weight",
                                  "self_attn.v_proj.weight", "self_attn.o_proj.weight",
                                  "mlp.gate_proj.weight", "mlp.up_proj.weight", "mlp.down_proj.weight")]
    if not c["tied"]:
        names.append("lm_head.weight")
    return set(names)


class LlamaRMSNorm:
    def __init__(self, weight, eps):
        self.weight, self.variance_epsilon = weight, eps

    def __call__(self, hidden_states):
        input_dtype = hidden_states.dtype
        hidden_states = hidden_states.to(torch.float32)
        variance = hidden_states.pow(2).mean(-1, keepdim=True)
        hidden_states = hidden_states * torch.rsqrt(variance + self.variance_epsilon)
        return self.weight * hidden_states.to(input_dtype)


def rotary_cos_sin(c, position_ids):
    dim, base = c["hd"], c["theta"]
    inv_freq = 1.0 / (base ** (torch.arange(0, dim, 2, dtype=torch.int64).float() / dim))
    inv_freq_expanded = inv_freq[None, :, None].float().expand(position_ids.shape[0], -1, 1)
    position_ids_expanded = position_ids[:, None, :].float()
    freqs = (inv_freq_expanded.float() @ position_ids_expanded.float()).transpose(1, 2)
    emb = torch.cat((freqs, freqs), dim=-1)
    return emb.cos(), emb.sin()          # attention_scaling is 1.0 for default RoPE


def rotate_half(x):
    x1 = x[..., : x.shape[-1] // 2]
    x2 = x[..., x.shape[-1] // 2:]
    return torch.cat((-x2, x1), dim=-1)


def apply_rotary_pos_emb(q, k, cos, sin, unsqueeze_dim=1):
    cos = cos.unsqueeze(unsqueeze_dim)
    sin = sin.unsqueeze(unsqueeze_dim)
    return (q * cos) + (rotate_half(q) * sin), (k * cos) + (rotate_half(k) * sin)


def repeat_kv(hidden_states, n_rep):
    batch, num_key_value_heads, slen, head_dim = hidden_states.shape
    if n_rep == 1:
        return hidden_states
    hidden_states = hidden_states[:, :, None, :, :].expand(batch, num_key_value_heads, n_rep, slen, head_dim)
    return hidden_states.reshape(batch, num_key_value_heads * n_rep, slen, head_dim)


def linear(x, w):
    return F.linear(x, w)


def llama_for_causal_lm_logits(P, c, input_ids):
    B, T = input_ids.shape
    hd, H, Hkv = c["hd"], c["H"], c["Hkv"]
    scaling = hd ** -0.5
    position_ids = torch.arange(T)[None].expand(B, T)
    cos, sin = rotary_cos_sin(c, position_ids)
    min_value = torch.finfo(torch.float32).min
    causal_mask = torch.triu(torch.full((T, T), min_value, dtype=torch.float32), diagonal=1)[None, None]

    hidden_states = F.embedding(input_ids, P["model.embed_tokens.weight"])
    for l in range(c["L"]):
        p = f"model.layers.{l}."
        residual = hidden_states
        hidden_states = LlamaRMSNorm(P[p + "input_layernorm.weight"], c["eps"])(hidden_states)
        hidden_shape = (B, T, -1, hd)
        q = linear(hidden_states, P[p + "self_attn.q_proj.weight"]).view(hidden_shape).transpose(1, 2)
        k = linear(hidden_states, P[p + "self_attn.k_proj.weight"]).view(hidden_shape).transpose(1, 2)
        v = linear(hidden_states, P[p + "self_attn.v_proj.weight"]).view(hidden_shape).transpose(1, 2)
        q, k = apply_rotary_pos_emb(q, k, cos, sin)
        k = repeat_kv(k, H // Hkv)
        v = repeat_kv(v, H // Hkv)
        attn_weights = torch.matmul(q, k.transpose(2, 3)) * scaling
        attn_weights = attn_weights + causal_mask
        attn_weights = F.softmax(attn_weights, dim=-1, dtype=torch.float32).to(q.dtype)
        attn_output = torch.matmul(attn_weights, v).transpose(1, 2).contiguous()
        attn_output = attn_output.reshape(B, T, -1).contiguous()
        hidden_states = residual + linear(attn_output, P[p + "self_attn.o_proj.weight"])
        residual = hidden_states
        hidden_states = LlamaRMSNorm(P[p + "post_attention_layernorm.weight"], c["eps"])(hidden_states)
        mlp = linear(F.silu(linear(hidden_states, P[p + "mlp.gate_proj.weight"])) * linear(hidden_states, P[p + "mlp.up_proj.weight"]),
                     P[p + "mlp.down_proj.weight"])
        hidden_states = residual + mlp
    hidden_states = LlamaRMSNorm(P["model.norm.weight"], c["eps"])(hidden_states)
    head = P["model.embed_tokens.weight"] if c["tied"] else P["lm_head.weight"]
    return linear(hidden_states, head)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", required=True, help="checkpoint or Hugging Face model directory")
    ap.add_argument("--tokens", required=True, help="JSON file: [[token ids], ...]")
    ap.add_argument("--no-verify", action="store_true", help="skip checksums.json verification")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    verified = False if args.no_verify else verify_manifest(args.model)
    c = llama_config(args.model)
    P, dtypes = load_weights(args.model)
    harmless = [n for n in P if n.endswith("rotary_emb.inv_freq")]
    for n in harmless:
        del P[n]
    want = expected_names(c)
    if c["tied"] and "lm_head.weight" in P:
        if not torch.equal(P["lm_head.weight"], P["model.embed_tokens.weight"]):
            fail("tie_word_embeddings is true but lm_head.weight differs from the embedding")
        del P["lm_head.weight"]
    missing, unexpected = sorted(want - set(P)), sorted(set(P) - want)
    if missing or unexpected:
        fail(f"missing tensors {missing[:5]}, unexpected tensors {unexpected[:5]}")

    with open(args.tokens) as f:
        seqs = json.load(f)
    if not isinstance(seqs, list) or not all(isinstance(s, list) and len(s) >= 2 for s in seqs):
        fail(f"{args.tokens}: expected a JSON list of token-id lists, each of length >= 2")
    total, count = 0.0, 0
    with torch.no_grad():
        for s in seqs:
            ids = torch.tensor(s, dtype=torch.int64)[None]
            if int(ids.max()) >= c["vocab"] or int(ids.min()) < 0:
                fail(f"{args.tokens}: token id out of range [0, {c['vocab']})")
            logits = llama_for_causal_lm_logits(P, c, ids).float()
            # ForCausalLMLoss: shift so that position t predicts token t+1.
            shift_logits = logits[0, :-1, :]
            shift_labels = ids[0, 1:]
            total += float(F.cross_entropy(shift_logits, shift_labels, reduction="sum").double())
            count += shift_labels.numel()
    print(json.dumps({"loss": total / count, "tokens": count}))
    print(json.dumps({"checksums_verified": verified, "stored_dtypes": sorted(set(dtypes.values())),
                      "ignored": harmless, "torch": torch.__version__}), file=sys.stderr)


if __name__ == "__main__":
    main()
