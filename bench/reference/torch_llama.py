#!/usr/bin/python3
# The project's PyTorch throughput reference for `npm run bench -- step` (bench/step.ts runs it side by
# side with adabatch). It also records RSS before the model is built (rss_before_model_mb), so the
# memory above that baseline can be compared with adabatch's.
"""Compact Llama-style decoder for training-throughput anchors (CPU; CUDA with --device cuda).

Model: token embedding -> L x [RMSNorm -> causal MHA with RoPE -> residual,
RMSNorm -> SwiGLU MLP -> residual] -> RMSNorm -> output head (tied by default)
-> cross-entropy.  No biases.  fp32.  Optimizer: torch.optim.AdamW.

Measures tokens/s of a full training step (zero_grad + forward + backward +
AdamW step) on random tokens; reports the median over measured steps after
warm-up, plus CPU utilisation (process CPU time / (wall * threads)) so runs
disturbed by other load on the box can be spotted.

With --device cuda the same model, data and optimizer run on the GPU: each
timed step ends with torch.cuda.synchronize(), --bf16 autocasts to bfloat16 on
CUDA, fp32 matmuls stay true fp32 (TF32 off unless --tf32), and the result adds
the GPU's name, its multiprocessor count and compute capability, and its peak
allocated memory.

Usage (Debian python3-torch 1.13 lives under /usr/bin/python3, not pyenv):
  /usr/bin/python3 torch_llama.py --config A --threads 1
  /usr/bin/python3 torch_llama.py --config B --threads 2 --steps 6 --warmup 2
  python3 torch_llama.py --config C --device cuda --bf16
  /usr/bin/python3 torch_llama.py --vocab 4096 --dim 256 --layers 4 --heads 4 \
      --seq 256 --ffn 688 --batch 8 --untied --threads 2
Prints one JSON line (prefix "RESULT ") at the end.
"""
import argparse
import json
import os
import sys

CONFIGS = {
    "A": dict(vocab=4096, dim=256, layers=4, heads=4, seq=256, ffn=688, batch=8),
    "B": dict(vocab=8192, dim=512, layers=8, heads=8, seq=512, ffn=1376, batch=4),
    # adabatch's preset C (the ~125M class, 134,105,856 parameters): its head is untied.
    "C": dict(vocab=32000, dim=768, layers=12, heads=12, seq=1024, ffn=2048, batch=4),
}
UNTIED_CONFIGS = {"C"}

p = argparse.ArgumentParser()
p.add_argument("--config", choices=sorted(CONFIGS), default=None)
for k in ("vocab", "dim", "layers", "heads", "seq", "ffn", "batch"):
    p.add_argument("--" + k, type=int, default=None)
p.add_argument("--untied", action="store_true", help="separate output head (default: tied to embedding)")
p.add_argument("--threads", type=int, default=1)
p.add_argument("--blas-threads", type=int, default=None, help="OpenBLAS pool size (default: --threads)")
p.add_argument("--steps", type=int, default=10, help="measured steps")
p.add_argument("--warmup", type=int, default=3)
p.add_argument("--foreach", action="store_true", help="AdamW(foreach=True)")
p.add_argument("--seed", type=int, default=0)
p.add_argument("--quiet", action="store_true")
p.add_argument("--bf16", action="store_true", help="mixed precision: torch.autocast(DEVICE, torch.bfloat16) around forward and loss (fp32 master weights and AdamW)")
p.add_argument("--profile", action="store_true", help="after the run, profile one step and print top ops by self CPU time")
p.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="where the model trains (cuda: the first GPU)")
p.add_argument("--tf32", action="store_true", help="with --device cuda: let fp32 matmuls use TF32 tensor cores (off by default: fp32 means fp32)")
args = p.parse_args()

cfg = dict(CONFIGS[args.config or "A"])
for k in cfg:
    v = getattr(args, k)
    if v is not None:
        cfg[k] = v

# Thread control must happen before torch (and its BLAS) is loaded.  Debian's
# torch uses the system libblas (OpenBLAS pthread build), whose pool is NOT
# governed by torch.set_num_threads, so pin it through the environment too.
# Both pools spin-wait after work, so with 2 threads each on a 2-core box they
# can fight each other; OMP_WAIT_POLICY=PASSIVE (env) is worth trying.
blas_threads = args.blas_threads or args.threads
os.environ["OMP_NUM_THREADS"] = str(args.threads)
os.environ["OPENBLAS_NUM_THREADS"] = str(blas_threads)
os.environ["MKL_NUM_THREADS"] = str(blas_threads)

import math  # noqa: E402
import resource  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402

import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

torch.set_num_threads(args.threads)
torch.manual_seed(args.seed)

device = torch.device(args.device)
if device.type == "cuda":
    if not torch.cuda.is_available():
        sys.exit("torch_llama.py: --device cuda, but torch.cuda.is_available() is False (torch %s, built for CUDA %s)"
                 % (torch.__version__, torch.version.cuda))
    torch.backends.cuda.matmul.allow_tf32 = args.tf32
    torch.backends.cudnn.allow_tf32 = args.tf32


def sync():
    """Waits for the GPU's queued work, so a step's wall time includes it (nothing to wait for on CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize()


class RMSNorm(nn.Module):
    def __init__(self, d, eps=1e-5):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(d))

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


def rope_tables(seq, head_dim, base=10000.0):
    inv = 1.0 / (base ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim))
    t = torch.arange(seq, dtype=torch.float32)
    freqs = torch.outer(t, inv)                      # (T, hd/2)
    emb = torch.cat([freqs, freqs], dim=-1)          # (T, hd)  (rotate-half layout)
    return emb.cos(), emb.sin()


def rotate_half(x):
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat([-x2, x1], dim=-1)


class Attention(nn.Module):
    def __init__(self, d, h):
        super().__init__()
        self.h, self.hd = h, d // h
        self.wqkv = nn.Linear(d, 3 * d, bias=False)
        self.wo = nn.Linear(d, d, bias=False)

    def forward(self, x, cos, sin, mask):
        B, T, C = x.shape
        q, k, v = self.wqkv(x).view(B, T, 3, self.h, self.hd).permute(2, 0, 3, 1, 4)  # each (B,h,T,hd)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(self.hd))   # (B,h,T,T)
        att = att.masked_fill(mask, float("-inf")).softmax(dim=-1)
        y = (att @ v).transpose(1, 2).reshape(B, T, C)
        return self.wo(y)


class SwiGLU(nn.Module):
    def __init__(self, d, f):
        super().__init__()
        self.w1 = nn.Linear(d, f, bias=False)  # gate
        self.w3 = nn.Linear(d, f, bias=False)  # up
        self.w2 = nn.Linear(f, d, bias=False)  # down

    def forward(self, x):
        return self.w2(F.silu(self.w1(x)) * self.w3(x))


class Block(nn.Module):
    def __init__(self, d, h, f):
        super().__init__()
        self.n1, self.attn = RMSNorm(d), Attention(d, h)
        self.n2, self.mlp = RMSNorm(d), SwiGLU(d, f)

    def forward(self, x, cos, sin, mask):
        x = x + self.attn(self.n1(x), cos, sin, mask)
        return x + self.mlp(self.n2(x))


class Llama(nn.Module):
    def __init__(self, vocab, dim, layers, heads, seq, ffn, tied=True):
        super().__init__()
        self.tok = nn.Embedding(vocab, dim)
        self.blocks = nn.ModuleList([Block(dim, heads, ffn) for _ in range(layers)])
        self.norm = RMSNorm(dim)
        self.head = nn.Linear(dim, vocab, bias=False)
        if tied:
            self.head.weight = self.tok.weight
        cos, sin = rope_tables(seq, dim // heads)
        self.register_buffer("cos", cos, persistent=False)
        self.register_buffer("sin", sin, persistent=False)
        self.register_buffer("mask", torch.triu(torch.ones(seq, seq, dtype=torch.bool), 1), persistent=False)
        for m in self.modules():
            if isinstance(m, (nn.Linear, nn.Embedding)):
                nn.init.normal_(m.weight, std=0.02)

    def forward(self, idx, targets):
        T = idx.shape[1]
        x = self.tok(idx)
        cos, sin, mask = self.cos[:T], self.sin[:T], self.mask[:T, :T]
        for b in self.blocks:
            x = b(x, cos, sin, mask)
        logits = self.head(self.norm(x))
        return F.cross_entropy(logits.view(-1, logits.size(-1)), targets.reshape(-1))


_HZ = os.sysconf("SC_CLK_TCK")


def sys_busy_s():
    """CPU-seconds spent busy by the whole machine (all cores) so far, from /proc/stat."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return (sum(v[:8]) - v[3] - v[4]) / _HZ   # user nice system [idle iowait] irq softirq steal


def rss_mb():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


def main():
    c = cfg
    tied = not (args.untied or args.config in UNTIED_CONFIGS)
    rss_before_model = rss_mb()
    model = Llama(c["vocab"], c["dim"], c["layers"], c["heads"], c["seq"], c["ffn"], tied=tied).to(device)
    n_params = sum(p.numel() for p in model.parameters())  # shared weight counted once
    n_embed = c["vocab"] * c["dim"]
    # params that take part in matmuls: everything except the input-embedding lookup
    # (for a tied model the shared matrix is still used once as the output head).
    n_matmul = n_params - (0 if tied else n_embed)
    attn_term = 12 * c["layers"] * c["dim"] * c["seq"]
    flops_tok = 6 * n_matmul + attn_term

    opt = torch.optim.AdamW(model.parameters(), lr=3e-4, betas=(0.9, 0.95), weight_decay=0.1,
                            foreach=True if args.foreach else None)
    B, T, V = c["batch"], c["seq"], c["vocab"]
    g = torch.Generator().manual_seed(args.seed)
    rss_model = rss_mb()
    walls, cpus, losses, foreigns = [], [], [], []
    load0 = os.getloadavg()
    for step in range(args.warmup + args.steps):
        data = torch.randint(0, V, (B, T + 1), generator=g)
        x, y = data[:, :-1].contiguous().to(device), data[:, 1:].contiguous().to(device)
        sync()
        w0, c0, s0 = time.perf_counter(), time.process_time(), sys_busy_s()
        opt.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.bf16):
            loss = model(x, y)
        loss.backward()
        opt.step()
        sync()
        w1, c1, s1 = time.perf_counter(), time.process_time(), sys_busy_s()
        foreign = max(0.0, (s1 - s0) - (c1 - c0)) / (w1 - w0)  # avg cores used by other processes
        losses.append(loss.item())
        if step >= args.warmup:
            walls.append(w1 - w0)
            cpus.append(c1 - c0)
            foreigns.append(foreign)
        if not args.quiet:
            print(f"step {step:3d} loss {losses[-1]:.4f} wall {1e3*(w1-w0):8.1f} ms cpu {1e3*(c1-c0):8.1f} ms other-load {foreign:4.2f} cores"
                  f"{'  (warmup)' if step < args.warmup else ''}", flush=True)
    load1 = os.getloadavg()
    tok_step = B * T
    med = statistics.median(walls)
    # "clean" steps: other processes used < 0.15 cores on average during the step
    clean = [w for w, f in zip(walls, foreigns) if f < 0.15]
    med_clean = statistics.median(clean) if len(clean) >= 3 else float("nan")
    res = dict(
        system="torch-%s" % torch.__version__, config=args.config or "custom", threads=args.threads, blas_threads=blas_threads,
        omp_wait_policy=os.environ.get("OMP_WAIT_POLICY", ""), precision="bf16-autocast" if args.bf16 else "fp32", tied=tied, **c, params=n_params, params_matmul=n_matmul, flops_per_token=flops_tok,
        tokens_per_step=tok_step, steps=len(walls), warmup=args.warmup,
        step_ms_median=1e3 * med, step_ms_min=1e3 * min(walls), step_ms_max=1e3 * max(walls),
        tok_per_s_median=tok_step / med, tok_per_s_best=tok_step / min(walls),
        gflops_median=flops_tok * tok_step / med / 1e9,
        clean_steps=len(clean), tok_per_s_clean=tok_step / med_clean,
        other_load_median=statistics.median(foreigns),
        cpu_util=sum(cpus) / (sum(walls) * args.threads),
        peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
        rss_before_model_mb=rss_before_model, rss_after_model_mb=rss_model, loss_first=losses[0], loss_last=losses[-1],
        loadavg_before=load0[0], loadavg_after=load1[0], device=args.device,
    )
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        res.update(
            gpu_name=props.name, gpu_multiprocessors=props.multi_processor_count,
            gpu_capability="%d.%d" % (props.major, props.minor), gpu_memory_mb=props.total_memory / 2**20,
            cuda_version=torch.version.cuda, tf32=args.tf32,
            peak_gpu_allocated_mb=torch.cuda.max_memory_allocated(device) / 2**20,
        )
    print("RESULT " + json.dumps(res), flush=True)
    if args.profile:
        from torch.autograd import profiler
        with profiler.profile() as prof:
            opt.zero_grad(set_to_none=True)
            model(x, y).backward()
            opt.step()
        ka = prof.key_averages()
        tot = sum(e.self_cpu_time_total for e in ka)
        mm = sum(e.self_cpu_time_total for e in ka if e.key in ("aten::mm", "aten::addmm", "aten::bmm"))
        print(f"PROFILE one step: self CPU total {tot/1e3:.1f} ms, GEMM (mm/addmm/bmm) {100*mm/tot:.1f}%")
        print(ka.table(sort_by="self_cpu_time_total", row_limit=18))


if __name__ == "__main__":
    main()
