/**
 * A Llama decoder with explicit forward and backward passes (no autograd tape).
 *
 *   x₀ = embed(tokens)
 *   per block:  h = x + o(attn(rope(qkv(norm₁(x)))))      x' = h + down(silu(gate(norm₂(h))) · up(norm₂(h)))
 *   loss = cross_entropy(lm_head(norm(x_L)), targets)     (fused and chunked: no full logits tensor)
 *
 * Forward caches only what backward needs. With `recompute`, only each block's input is kept and the
 * block's forward is re-run during backward into one shared scratch set (activation checkpointing).
 *
 * Parameters are reached through a UnitAccess (a replica hands out its buffers; FSDP gathers shards)
 * and gradients go to a GradSink (which accumulates, takes norms, all-reduces or reduce-scatters).
 */
import type { AttentionDims, Backend, LowpDType, Tensor } from '../backend/backend.js';
import { headDim, MODEL_LIMITS, type ModelConfig, modelSizeProblems } from './config.js';
import { buildLayout, type ModelLayout, type UnitLayout } from './layout.js';
import { ropeTables } from './rope.js';
import { UserError } from '../util/errors.js';

/**
 * Largest rotary table (seq_len × head_dim/2 entries; there are two, cos and sin): 2²⁸ entries, 1 GiB
 * each in float32. Llama 3.1's 131,072 positions × 64 take 2²³; the limit allows 4M positions at
 * head dimension 128.
 */
export const MAX_ROPE_ENTRIES = 2 ** 28;

/**
 * Refuses, naming the field, a config whose buffers cannot be built (a ModelConfig that did not come
 * through modelConfigSchema, e.g. an object built in code): sizes beyond MODEL_LIMITS or rotary
 * tables beyond MAX_ROPE_ENTRIES. Nothing is allocated before this check.
 */
export function checkModelSize(config: ModelConfig): void {
  const problems: string[] = [];
  for (const f of ['vocab', 'd_model', 'n_layers', 'n_heads', 'n_kv_heads', 'ffn_dim', 'seq_len'] as const) {
    const v = config[f];
    if (!Number.isInteger(v) || v <= 0 || v > MODEL_LIMITS[f]) problems.push(`model.${f}: ${v} is not an integer in 1..${MODEL_LIMITS[f]}`);
  }
  if (problems.length === 0) {
    for (const p of modelSizeProblems(config)) problems.push(`model.${p.field}: ${p.message}`);
    const half = headDim(config) / 2;
    const entries = config.seq_len * half;
    if (!(entries <= MAX_ROPE_ENTRIES)) {
      problems.push(`model.seq_len: ${config.seq_len} positions × head_dim/2 = ${half} need rotary tables of ${entries} entries each, more than 2^28 (1 GiB per float32 table); lower seq_len (max_position_embeddings in a config.json)`);
    }
  }
  if (problems.length) throw new UserError(`model too large to build:\n${problems.join('\n')}`);
}

/**
 * Full (unsharded) parameters of a unit, valid between acquire and release. A replica answers at
 * once; FSDP all-gathers the unit's shards first (an asynchronous collective), hence the promises.
 */
export interface UnitAccess {
  acquire(unit: number): Tensor | Promise<Tensor>;
  release(unit: number): void | Promise<void>;
}

/** A UnitAccess that answers synchronously (a full replica): what generation needs. */
export interface SyncUnitAccess extends UnitAccess {
  acquire(unit: number): Tensor;
  release(unit: number): void;
}

/** Receives one micro-step's gradient, unit by unit. */
export interface GradSink {
  /** A buffer for this micro-step's gradient of `unit`, zeroed on the first call of the micro-step. */
  grad(unit: number): Tensor | Promise<Tensor>;
  /** Every contribution to `unit`'s gradient for this micro-step has been written (FSDP reduce-scatters it). */
  ready(unit: number): void | Promise<void>;
}

export interface LlamaOptions {
  /** Recompute each block's activations in backward instead of caching them. */
  recompute?: boolean;
  /** Tokens per chunk in the fused head + loss kernel. */
  chunkTokens?: number;
  /** Activation dtype; float64 is for finite-difference tests on the ref backend. */
  dtype?: 'f32' | 'f64';
  /**
   * GEMM input precision: 'f32' (default), or 'bf16' / 'f16' — the inputs of the block matrix
   * products are rounded to the 16-bit type (weights once per micro-step, activations and their
   * gradients as they are made), with f32 accumulation and outputs; everything else stays f32 (see
   * docs/precision.md). bf16 also rounds the LM head's GEMM inputs; f16 keeps the head in f32.
   */
  precision?: Precision;
}

export type Precision = 'f32' | LowpDType;

/** Cached GEMM inputs that backward reads only through their 16-bit copies (precision bf16 or f16). */
export const LOWP_ONLY_IN_BACKWARD = ['xn1', 'xn2', 'h'] as const;

/** The block weight matrices that get 16-bit copies under precision bf16 or f16. */
const LOWP_WEIGHTS = ['qkv', 'o', 'gate_up', 'down'] as const;
type LowpWeight = (typeof LOWP_WEIGHTS)[number];

/**
 * The factor (a power of two) f16 activation gradients are multiplied by as they are rounded, and
 * divided by again through the GEMMs' alpha. The model's gradients are those of gradScale·Σloss
 * (gradScale ~ 1/tokens per batch), so their elements are ~gradScale and would fall below f16's
 * normal range (6.1e-5) at a few thousand tokens; scaled by ~1/gradScale they are those of the
 * summed per-token losses, whose logit gradients lie in [−1, 1], well inside f16's range.
 */
export function f16GradientScale(gradScale: number): number {
  return gradScale > 0 && Number.isFinite(gradScale) ? 2 ** Math.round(-Math.log2(gradScale)) : 1;
}

/** One block's 16-bit operands: its weight copies and the views of its saved GEMM inputs. */
interface LowpBlock {
  w: Record<LowpWeight, Tensor>;
  c: LowpCache;
}

/** Activations cached by one block's forward for its backward. */
interface BlockCache {
  xn1: Tensor; // attention-norm output (N × d)
  rstd1: Tensor; // (N)
  qkv: Tensor; // after rope (N × (H+2Hkv)·hd)
  attn: Tensor; // attention output before o_proj (N × H·hd)
  lse: Tensor; // (B·H·T)
  xMid: Tensor; // residual after attention (N × d)
  xn2: Tensor; // mlp-norm output
  rstd2: Tensor;
  gu: Tensor; // [gate | up] (N × 2F)
  h: Tensor; // silu(gate)·up (N × F)
}

/** 16-bit copies of the GEMM inputs a block's forward makes and its backward reads again. */
interface LowpCache {
  xn1: Tensor;
  attn: Tensor;
  xn2: Tensor;
  h: Tensor;
}

/** 16-bit scratch for the activation gradients that are GEMM inputs in backward. */
interface LowpGrads {
  dx: Tensor; // (N × d)
  dgu: Tensor; // (N × 2F)
  dqkv: Tensor; // (N × qkv)
}

interface Workspace {
  tokens: number; // capacity in tokens (N = batch·seqLen)
  /** Present with precision bf16 or f16: per cache (L, or 1 when recomputing), and the gradient scratch. */
  lowp: { caches: LowpCache[]; grads: LowpGrads } | null;
  allocations: Tensor[];
  residual: Tensor[]; // L + 1 block inputs (N × d each)
  caches: BlockCache[]; // L, or 1 shared when recomputing
  dx: Tensor; // residual-stream gradient (N × d)
  dxn: Tensor; // (N × d)
  dqkv: Tensor;
  dattn: Tensor;
  dh: Tensor;
  dgu: Tensor;
}

export class Llama {
  readonly layout: ModelLayout;
  readonly config: ModelConfig;
  readonly recompute: boolean;
  readonly dtype: 'f32' | 'f64';
  private readonly hd: number;
  private readonly qkvWidth: number;
  private readonly cos: Tensor;
  private readonly sin: Tensor;
  private ws: Workspace | null = null;
  readonly precision: Precision;
  /**
   * precision bf16 or f16: per block unit, 16-bit copies of its four weight matrices, refreshed when
   * the unit is acquired for a forward pass (once per micro-step) and read again by its backward.
   */
  private lowpWeights: Array<Record<LowpWeight, Tensor> | null> = [];
  /** precision bf16: the LM head's weight (the embedding table when tied) in bf16, refreshed per micro-step. */
  private lowpHead: Tensor | null = null;

  constructor(
    readonly backend: Backend,
    config: ModelConfig,
    private readonly options: LlamaOptions = {},
  ) {
    this.config = config;
    checkModelSize(config);
    this.layout = buildLayout(config);
    this.recompute = options.recompute ?? false;
    this.hd = headDim(config);
    this.qkvWidth = (config.n_heads + 2 * config.n_kv_heads) * this.hd;
    const { cos, sin } = ropeTables(config.seq_len, this.hd, config.rope_theta);
    this.dtype = options.dtype ?? 'f32';
    this.precision = options.precision ?? 'f32';
    if (this.precision !== 'f32') {
      if (this.dtype !== 'f32') throw new Error(`precision ${this.precision} needs f32 activations, got dtype ${this.dtype}`);
      const s = backend.supportsLowPrecision(this.precision);
      if (!s.supported) throw new UserError(`precision: ${this.precision} is not available on backend '${backend.name}': ${s.detail}`);
    }
    this.cos = backend.alloc([config.seq_len, this.hd / 2], this.dtype);
    this.sin = backend.alloc([config.seq_len, this.hd / 2], this.dtype);
    backend.upload(this.cos, cos);
    backend.upload(this.sin, sin);
  }

  /** Frees the activation workspace and rope tables. */
  dispose(): void {
    this.freeWorkspace();
    this.backend.free(this.cos);
    this.backend.free(this.sin);
  }

  freeWorkspace(): void {
    for (const w of this.lowpWeights) if (w) for (const t of Object.values(w)) this.backend.free(t);
    this.lowpWeights = [];
    if (this.lowpHead) this.backend.free(this.lowpHead);
    this.lowpHead = null;
    if (!this.ws) return;
    for (const t of this.ws.allocations) this.backend.free(t);
    this.ws = null;
  }

  /**
   * Training micro-step: forward and backward for `batch` sequences of `seqLen` tokens. Adds the
   * summed loss and the token count to lossOut[lossIndex], lossOut[lossIndex+1]; gradients of
   * (gradScale · Σ loss) go to `grads`.
   */
  async forwardBackward(tokens: Tensor, targets: Tensor, batch: number, seqLen: number, params: UnitAccess, grads: GradSink, lossOut: Tensor, lossIndex: number, gradScale: number): Promise<void> {
    const ws = this.prepare(tokens, targets, batch, seqLen);
    const n = batch * seqLen;
    await this.forwardBlocks(ws, tokens, batch, seqLen, params);
    await this.headLossStep(ws, targets, n, params, lossOut, lossIndex, grads, gradScale);
    await this.backwardBlocks(ws, tokens, batch, seqLen, params, grads, this.precision === 'f16' ? f16GradientScale(gradScale) : 1);
  }

  /** Evaluation: adds Σ loss and the count of counted tokens to lossOut; no gradients. */
  async forwardLoss(tokens: Tensor, targets: Tensor, batch: number, seqLen: number, params: UnitAccess, lossOut: Tensor, lossIndex: number): Promise<void> {
    const ws = this.prepare(tokens, targets, batch, seqLen);
    await this.forwardBlocks(ws, tokens, batch, seqLen, params);
    await this.headLossStep(ws, targets, batch * seqLen, params, lossOut, lossIndex, null, 0);
  }

  // -------------------------------------------------------------------------------------------

  private prepare(tokens: Tensor, targets: Tensor, batch: number, seqLen: number): Workspace {
    if (!Number.isInteger(batch) || batch < 1) throw new Error(`batch must be a positive integer, got ${batch}`);
    if (!Number.isInteger(seqLen) || seqLen < 1 || seqLen > this.config.seq_len) {
      throw new Error(`seqLen must be an integer in [1, ${this.config.seq_len}] (the model's seq_len), got ${seqLen}`);
    }
    const n = batch * seqLen;
    if (tokens.size !== n || tokens.dtype !== 'i32') throw new Error(`tokens must be i32 with ${n} elements (batch ${batch} × seqLen ${seqLen}), got ${tokens.dtype}[${tokens.size}]`);
    if (targets.size !== n || targets.dtype !== 'i32') throw new Error(`targets must be i32 with ${n} elements, got ${targets.dtype}[${targets.size}]`);
    if (!this.ws || this.ws.tokens < n) {
      this.freeWorkspace();
      this.ws = this.allocWorkspace(n);
    }
    return this.ws;
  }

  private allocWorkspace(capacity: number): Workspace {
    const sizes = workspaceSizes(this.config, capacity);
    const allocations: Tensor[] = [];
    const a = (size: number): Tensor => {
      const t = this.backend.alloc([size], this.dtype);
      allocations.push(t);
      return t;
    };
    // precision bf16 or f16: backward reads these GEMM inputs only as their 16-bit copies, so the
    // float32 ones are scratch that every block shares.
    const lowpDtype = this.precision === 'f32' ? null : this.precision;
    const shared = new Map<keyof BlockCache, Tensor>(lowpDtype ? LOWP_ONLY_IN_BACKWARD.map((k) => [k, a(sizes.cache[k])]) : []);
    const cache = (): BlockCache => {
      const c = {} as Record<keyof BlockCache, Tensor>;
      for (const k of Object.keys(sizes.cache) as Array<keyof BlockCache>) c[k] = shared.get(k) ?? a(sizes.cache[k]);
      return c;
    };
    const residual = Array.from({ length: this.config.n_layers + 1 }, () => a(sizes.residual));
    const caches = Array.from({ length: this.recompute ? 1 : this.config.n_layers }, cache);
    const g = sizes.grads;
    let lowp: Workspace['lowp'] = null;
    if (lowpDtype) {
      const b = (size: number): Tensor => {
        const t = this.backend.alloc([size], lowpDtype);
        allocations.push(t);
        return t;
      };
      const c = sizes.cache;
      lowp = {
        caches: caches.map(() => ({ xn1: b(c.xn1), attn: b(c.attn), xn2: b(c.xn2), h: b(c.h) })),
        grads: { dx: b(g.dx), dgu: b(g.dgu), dqkv: b(g.dqkv) },
      };
    }
    return { tokens: capacity, allocations, residual, caches, lowp, dx: a(g.dx), dxn: a(g.dxn), dqkv: a(g.dqkv), dattn: a(g.dattn), dh: a(g.dh), dgu: a(g.dgu) };
  }

  /** The 16-bit copies of a block unit's weight matrices, made from its current (f32) values. */
  private refreshLowpWeights(u: number, w: Record<string, Tensor>): void {
    let copies = this.lowpWeights[u];
    if (!copies) {
      copies = {} as Record<LowpWeight, Tensor>;
      for (const k of LOWP_WEIGHTS) copies[k] = this.backend.alloc(w[k]!.shape, this.precision as LowpDType);
      this.lowpWeights[u] = copies;
    }
    for (const k of LOWP_WEIGHTS) this.backend.convert(copies[k], w[k]!);
  }

  /** The 16-bit operands of block l (views shaped like their f32 counterparts), or null under precision f32. */
  private lowpBlock(ws: Workspace, l: number, u: number, c: BlockCache): LowpBlock | null {
    if (!ws.lowp) return null;
    const lc = ws.lowp.caches[this.recompute ? 0 : l]!;
    const like = (t: Tensor, f: Tensor): Tensor => this.backend.view(t, 0, f.shape);
    return { w: this.lowpWeights[u]!, c: { xn1: like(lc.xn1, c.xn1), attn: like(lc.attn, c.attn), xn2: like(lc.xn2, c.xn2), h: like(lc.h, c.h) } };
  }

  /** A [rows × cols] view of the first rows·cols elements of a workspace buffer. */
  private mat(t: Tensor, rows: number, cols: number): Tensor {
    return this.backend.view(t, 0, [rows, cols]);
  }

  private cacheView(c: BlockCache, n: number, batch: number): BlockCache {
    const { d_model: d, n_heads: H, ffn_dim: F } = this.config;
    const v = (t: Tensor, rows: number, cols: number): Tensor => this.mat(t, rows, cols);
    return {
      xn1: v(c.xn1, n, d),
      rstd1: v(c.rstd1, n, 1),
      qkv: v(c.qkv, n, this.qkvWidth),
      attn: v(c.attn, n, H * this.hd),
      lse: v(c.lse, batch * H, n / batch),
      xMid: v(c.xMid, n, d),
      xn2: v(c.xn2, n, d),
      rstd2: v(c.rstd2, n, 1),
      gu: v(c.gu, n, 2 * F),
      h: v(c.h, n, F),
    };
  }

  /** The first seqLen rows of the rotary tables. */
  private ropeTables(seqLen: number): [Tensor, Tensor] {
    const shape = [seqLen, this.hd / 2];
    return [this.backend.view(this.cos, 0, shape), this.backend.view(this.sin, 0, shape)];
  }

  private dims(batch: number, seqLen: number): AttentionDims {
    return { batch, seqLen, nHeads: this.config.n_heads, nKvHeads: this.config.n_kv_heads, headDim: this.hd };
  }

  private unitWeights(unit: UnitLayout, flat: Tensor): Record<string, Tensor> {
    const w: Record<string, Tensor> = {};
    for (const [k, v] of Object.entries(unit.fused)) w[k] = this.backend.view(flat, v.offset, v.shape);
    return w;
  }

  private async forwardBlocks(ws: Workspace, tokens: Tensor, batch: number, seqLen: number, params: UnitAccess): Promise<void> {
    const n = batch * seqLen;
    const d = this.config.d_model;
    const eu = this.layout.embedUnit;
    const embed = this.unitWeights(this.layout.units[eu]!, await params.acquire(eu));
    this.backend.embeddingForward(this.mat(ws.residual[0]!, n, d), embed.embed!, tokens);
    await params.release(eu);
    for (let l = 0; l < this.config.n_layers; l++) {
      const u = this.layout.blockUnit(l);
      const w = this.unitWeights(this.layout.units[u]!, await params.acquire(u));
      const c = this.cacheView(ws.caches[this.recompute ? 0 : l]!, n, batch);
      if (ws.lowp) this.refreshLowpWeights(u, w);
      this.blockForward(w, c, this.lowpBlock(ws, l, u, c), this.mat(ws.residual[l]!, n, d), this.mat(ws.residual[l + 1]!, n, d), batch, seqLen);
      await params.release(u);
    }
  }

  /** With `lp` (precision bf16), each GEMM input is first rounded into its bf16 copy, which backward reads again. */
  private blockForward(w: Record<string, Tensor>, c: BlockCache, lp: LowpBlock | null, xIn: Tensor, xOut: Tensor | null, batch: number, seqLen: number): void {
    const backend = this.backend;
    const { n_heads: H, n_kv_heads: Hkv, norm_eps: eps } = this.config;
    const input = (k: keyof LowpCache): Tensor => {
      if (!lp) return c[k];
      backend.convert(lp.c[k], c[k]);
      return lp.c[k];
    };
    const weight = (k: LowpWeight): Tensor => (lp ? lp.w[k] : w[k]!);
    backend.rmsnormForward(c.xn1, c.rstd1, xIn, w.attn_norm!, eps);
    backend.matmul(c.qkv, input('xn1'), weight('qkv'), false, true);
    const [cos, sin] = this.ropeTables(seqLen);
    backend.rope(c.qkv, cos, sin, seqLen, H + Hkv, this.hd, false);
    backend.attentionForward(c.attn, c.lse, c.qkv, this.dims(batch, seqLen));
    backend.copy(c.xMid, xIn);
    backend.matmul(c.xMid, input('attn'), weight('o'), false, true, 1, 1);
    backend.rmsnormForward(c.xn2, c.rstd2, c.xMid, w.ffn_norm!, eps);
    backend.matmul(c.gu, input('xn2'), weight('gate_up'), false, true);
    backend.swigluForward(c.h, c.gu);
    // h's bf16 copy is made even without xOut (recomputation in backward): the down weight's gradient reads it.
    const h = input('h');
    if (xOut) {
      backend.copy(xOut, c.xMid);
      backend.matmul(xOut, h, weight('down'), false, true, 1, 1);
    }
  }

  private async headLossStep(ws: Workspace, targets: Tensor, n: number, params: UnitAccess, lossOut: Tensor, lossIndex: number, grads: GradSink | null, gradScale: number): Promise<void> {
    const d = this.config.d_model;
    const hu = this.layout.headUnit;
    const eu = this.layout.embedUnit;
    const tied = this.config.tie_embeddings;
    const headUnit = this.layout.units[hu]!;
    const head = this.unitWeights(headUnit, await params.acquire(hu));
    const headW = tied ? this.unitWeights(this.layout.units[eu]!, await params.acquire(eu)).embed! : head.lm_head!;
    const x = this.mat(ws.residual[this.config.n_layers]!, n, d);
    let g: { dx: Tensor; dNormW: Tensor; dHeadW: Tensor; gradScale: number } | undefined;
    if (grads) {
      const hg = this.unitWeights(headUnit, await grads.grad(hu));
      const dHeadW = tied ? this.unitWeights(this.layout.units[eu]!, await grads.grad(eu)).embed! : hg.lm_head!;
      g = { dx: this.mat(ws.dx, n, d), dNormW: hg.norm!, dHeadW, gradScale };
    }
    // Only bf16 rounds the head's GEMM inputs (headLoss's headWLowp); under f16 the head stays f32.
    const lowpHead = this.precision === 'bf16';
    if (lowpHead) {
      this.lowpHead ??= this.backend.alloc(headW.shape, 'bf16');
      this.backend.convert(this.lowpHead, headW);
    }
    this.backend.headLoss({
      x,
      normW: head.norm!,
      headW,
      ...(lowpHead && { headWLowp: this.lowpHead! }),
      targets,
      eps: this.config.norm_eps,
      lossOut,
      lossIndex,
      ...(g && { grads: g }),
      ...(this.options.chunkTokens !== undefined && { chunkTokens: this.options.chunkTokens }),
    });
    if (tied) await params.release(eu);
    await params.release(hu);
    if (grads) await grads.ready(hu);
  }

  /** `gradScale16`: the factor activation gradients are rounded with (precision f16; else 1). */
  private async backwardBlocks(ws: Workspace, tokens: Tensor, batch: number, seqLen: number, params: UnitAccess, grads: GradSink, gradScale16: number): Promise<void> {
    const n = batch * seqLen;
    const d = this.config.d_model;
    const dx = this.mat(ws.dx, n, d);
    for (let l = this.config.n_layers - 1; l >= 0; l--) {
      const u = this.layout.blockUnit(l);
      const unit = this.layout.units[u]!;
      const w = this.unitWeights(unit, await params.acquire(u));
      const c = this.cacheView(ws.caches[this.recompute ? 0 : l]!, n, batch);
      const lp = this.lowpBlock(ws, l, u, c);
      const xIn = this.mat(ws.residual[l]!, n, d);
      if (this.recompute) this.blockForward(w, c, lp, xIn, null, batch, seqLen);
      this.blockBackward(w, this.unitWeights(unit, await grads.grad(u)), c, lp, xIn, dx, ws, batch, seqLen, gradScale16);
      await params.release(u);
      await grads.ready(u);
    }
    const eu = this.layout.embedUnit;
    const ge = this.unitWeights(this.layout.units[eu]!, await grads.grad(eu));
    this.backend.embeddingBackward(ge.embed!, dx, tokens);
    await grads.ready(eu);
  }

  /** dx holds ∂loss/∂(block output) on entry and ∂loss/∂(block input) on exit (updated in place). */
  /**
   * With `lp` (precision bf16 or f16), GEMMs read 16-bit copies: the forward's inputs, and each
   * gradient rounded as it is used, multiplied by `s` (f16GradientScale) and divided again by the
   * GEMMs' alpha = 1/s.
   */
  private blockBackward(w: Record<string, Tensor>, g: Record<string, Tensor>, c: BlockCache, lp: LowpBlock | null, xIn: Tensor, dx: Tensor, ws: Workspace, batch: number, seqLen: number, s: number): void {
    const backend = this.backend;
    const { d_model: d, n_heads: H, n_kv_heads: Hkv, ffn_dim: F } = this.config;
    const n = batch * seqLen;
    const dh = this.mat(ws.dh, n, F);
    const dgu = this.mat(ws.dgu, n, 2 * F);
    const dxn = this.mat(ws.dxn, n, d);
    const dattn = this.mat(ws.dattn, n, H * this.hd);
    const dqkv = this.mat(ws.dqkv, n, this.qkvWidth);
    const lowGrad = ws.lowp?.grads;
    /** The operand a GEMM reads for gradient `t`: t itself, or its 16-bit copy (times s) made now. */
    const grad = (t: Tensor, k: keyof LowpGrads): Tensor => {
      if (!lowGrad) return t;
      const low = backend.view(lowGrad[k], 0, t.shape);
      backend.convert(low, t, s);
      return low;
    };
    const a = 1 / s;
    const weight = (k: LowpWeight): Tensor => (lp ? lp.w[k] : w[k]!);
    const saved = (k: keyof LowpCache): Tensor => (lp ? lp.c[k] : c[k]);
    // MLP: x' = h + down(swiglu(gate_up(norm₂(h))))
    let dxIn = grad(dx, 'dx');
    backend.matmul(dh, dxIn, weight('down'), false, false, a);
    backend.matmul(g.down!, dxIn, saved('h'), true, false, a, 1);
    backend.swigluBackward(dgu, dh, c.gu);
    const dguIn = grad(dgu, 'dgu');
    backend.matmul(dxn, dguIn, weight('gate_up'), false, false, a);
    backend.matmul(g.gate_up!, dguIn, saved('xn2'), true, false, a, 1);
    backend.rmsnormBackward(dx, g.ffn_norm!, dxn, c.xMid, w.ffn_norm!, c.rstd2, true);
    // Attention: h = x + o(attn(rope(qkv(norm₁(x)))))
    dxIn = grad(dx, 'dx');
    backend.matmul(dattn, dxIn, weight('o'), false, false, a);
    backend.matmul(g.o!, dxIn, saved('attn'), true, false, a, 1);
    backend.attentionBackward(dqkv, dattn, c.qkv, c.attn, c.lse, this.dims(batch, seqLen));
    const [cos, sin] = this.ropeTables(seqLen);
    backend.rope(dqkv, cos, sin, seqLen, H + Hkv, this.hd, true);
    const dqkvIn = grad(dqkv, 'dqkv');
    backend.matmul(dxn, dqkvIn, weight('qkv'), false, false, a);
    backend.matmul(g.qkv!, dqkvIn, saved('xn1'), true, false, a, 1);
    backend.rmsnormBackward(dx, g.attn_norm!, dxn, xIn, w.attn_norm!, c.rstd1, true);
  }
}

/** Elements of each activation buffer for a workspace of `tokens` tokens (shared with estimateMemory). */
export function workspaceSizes(c: ModelConfig, tokens: number): { residual: number; cache: Record<keyof BlockCache, number>; grads: Record<'dx' | 'dxn' | 'dqkv' | 'dattn' | 'dh' | 'dgu', number> } {
  const d = c.d_model;
  const hd = headDim(c);
  const qkv = (c.n_heads + 2 * c.n_kv_heads) * hd;
  const attn = c.n_heads * hd;
  return {
    residual: tokens * d,
    cache: {
      xn1: tokens * d,
      rstd1: tokens,
      qkv: tokens * qkv,
      attn: tokens * attn,
      lse: tokens * c.n_heads,
      xMid: tokens * d,
      xn2: tokens * d,
      rstd2: tokens,
      gu: tokens * 2 * c.ffn_dim,
      h: tokens * c.ffn_dim,
    },
    grads: { dx: tokens * d, dxn: tokens * d, dqkv: tokens * qkv, dattn: tokens * attn, dh: tokens * c.ffn_dim, dgu: tokens * 2 * c.ffn_dim },
  };
}
