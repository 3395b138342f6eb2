/**
 * Autoregressive decoding with a KV cache: each new token costs one pass through the blocks for a
 * single position, attending over the cached keys and values, so the cost per token is linear in
 * the current length (no re-computation of the prefix).
 */
import type { Backend, Tensor } from '../backend/backend.js';
import { Rng } from '../util/rng.js';
import { headDim, type ModelConfig } from './config.js';
import { buildLayout, type ModelLayout } from './layout.js';
import type { SyncUnitAccess } from './llama.js';
import { ropeTables } from './rope.js';

export interface SampleOptions {
  /** 0 = greedy (argmax). */
  temperature: number;
  /** Keep only the k most likely tokens (0 = all). */
  topK: number;
  seed: number;
  /**
   * Sample only ids below this (a model whose embedding is padded past its tokenizer: the extra ids
   * mean nothing and cannot be decoded). Default: every id.
   */
  vocabLimit?: number;
}

/** Picks a token from logits on the host (among the first o.vocabLimit when given). */
export function sampleToken(logits: Float32Array | Float64Array, o: SampleOptions, rng: Rng): number {
  const V = Math.min(logits.length, o.vocabLimit ?? logits.length);
  if (o.temperature <= 0) {
    let best = 0;
    for (let i = 1; i < V; i++) if (logits[i]! > logits[best]!) best = i;
    return best;
  }
  let idx = Array.from({ length: V }, (_, i) => i);
  if (o.topK > 0 && o.topK < V) idx = idx.sort((a, b) => logits[b]! - logits[a]!).slice(0, o.topK);
  let max = -Infinity;
  for (const i of idx) max = Math.max(max, logits[i]!);
  const w = idx.map((i) => Math.exp((logits[i]! - max) / o.temperature));
  const total = w.reduce((a, b) => a + b, 0);
  let r = rng.uniform() * total;
  for (let k = 0; k < idx.length; k++) {
    r -= w[k]!;
    if (r <= 0) return idx[k]!;
  }
  return idx[idx.length - 1]!;
}

export class Generator {
  readonly layout: ModelLayout;
  private readonly hd: number;
  private readonly width: number;
  private readonly allocations: Tensor[] = [];
  private readonly kCache: Tensor[];
  private readonly vCache: Tensor[];
  private readonly cos: Tensor;
  private readonly sin: Tensor;
  private readonly t: Record<'tok' | 'x' | 'xn' | 'qkv' | 'attn' | 'gu' | 'h' | 'rstd' | 'logits', Tensor>;
  /** Tokens already in the cache. */
  pos = 0;

  constructor(
    readonly backend: Backend,
    readonly config: ModelConfig,
    private readonly params: SyncUnitAccess,
    readonly maxSeqLen = config.seq_len,
  ) {
    if (maxSeqLen > config.seq_len) throw new Error(`maxSeqLen ${maxSeqLen} exceeds the model's seq_len ${config.seq_len}`);
    this.layout = buildLayout(config);
    this.hd = headDim(config);
    const { d_model: d, n_heads: H, n_kv_heads: Hkv, ffn_dim: F, vocab: V } = config;
    this.width = (H + 2 * Hkv) * this.hd;
    const a = (shape: number[], dtype: 'f32' | 'i32' = 'f32'): Tensor => {
      const t = backend.alloc(shape, dtype);
      this.allocations.push(t);
      return t;
    };
    this.kCache = Array.from({ length: config.n_layers }, () => a([maxSeqLen * Hkv * this.hd]));
    this.vCache = Array.from({ length: config.n_layers }, () => a([maxSeqLen * Hkv * this.hd]));
    const tables = ropeTables(maxSeqLen, this.hd, config.rope_theta);
    this.cos = a([maxSeqLen, this.hd / 2]);
    this.sin = a([maxSeqLen, this.hd / 2]);
    backend.upload(this.cos, tables.cos);
    backend.upload(this.sin, tables.sin);
    this.t = {
      tok: a([1], 'i32'),
      x: a([1, d]),
      xn: a([1, d]),
      qkv: a([1, this.width]),
      attn: a([1, H * this.hd]),
      gu: a([1, 2 * F]),
      h: a([1, F]),
      rstd: a([1]),
      logits: a([1, V]),
    };
  }

  /** Appends one token at the current position and returns the next-token logits. */
  step(token: number): Float32Array {
    const c = this.config;
    if (!Number.isInteger(token) || token < 0 || token >= c.vocab) throw new Error(`token ${token} is outside the vocabulary [0, ${c.vocab})`);
    if (this.pos >= this.maxSeqLen) throw new Error(`context full: the cache holds ${this.maxSeqLen} tokens`);
    const backend = this.backend;
    const { t } = this;
    const L = this.layout;
    const fused = (u: number, flat: Tensor): Record<string, Tensor> => {
      const w: Record<string, Tensor> = {};
      for (const [k, v] of Object.entries(L.units[u]!.fused)) w[k] = backend.view(flat, v.offset, v.shape);
      return w;
    };
    backend.upload(t.tok, [token]);
    const emb = fused(L.embedUnit, this.params.acquire(L.embedUnit));
    backend.embeddingForward(t.x, emb.embed!, t.tok);
    this.params.release(L.embedUnit);
    const half = this.hd / 2;
    const cos = backend.view(this.cos, this.pos * half, [1, half]);
    const sin = backend.view(this.sin, this.pos * half, [1, half]);
    const dims = { batch: 1, maxSeqLen: this.maxSeqLen, nHeads: c.n_heads, nKvHeads: c.n_kv_heads, headDim: this.hd };
    for (let l = 0; l < c.n_layers; l++) {
      const u = L.blockUnit(l);
      const w = fused(u, this.params.acquire(u));
      backend.rmsnormForward(t.xn, t.rstd, t.x, w.attn_norm!, c.norm_eps);
      backend.matmul(t.qkv, t.xn, w.qkv!, false, true);
      // A one-row view of the rotary tables at this position: the kernel sees position 0 of it.
      backend.rope(t.qkv, cos, sin, 1, c.n_heads + c.n_kv_heads, this.hd, false);
      backend.attentionDecode(t.attn, t.qkv, this.kCache[l]!, this.vCache[l]!, this.pos, dims);
      backend.matmul(t.x, t.attn, w.o!, false, true, 1, 1);
      backend.rmsnormForward(t.xn, t.rstd, t.x, w.ffn_norm!, c.norm_eps);
      backend.matmul(t.gu, t.xn, w.gate_up!, false, true);
      backend.swigluForward(t.h, t.gu);
      backend.matmul(t.x, t.h, w.down!, false, true, 1, 1);
      this.params.release(u);
    }
    const head = fused(L.headUnit, this.params.acquire(L.headUnit));
    const headW = c.tie_embeddings ? fused(L.embedUnit, this.params.acquire(L.embedUnit)).embed! : head.lm_head!;
    backend.rmsnormForward(t.xn, t.rstd, t.x, head.norm!, c.norm_eps);
    backend.matmul(t.logits, t.xn, headW, false, true);
    if (c.tie_embeddings) this.params.release(L.embedUnit);
    this.params.release(L.headUnit);
    this.pos++;
    return backend.download(t.logits) as Float32Array;
  }

  /** Feeds the prompt, then samples up to maxNew tokens (stopping at `stop` when given). */
  generate(prompt: readonly number[], maxNew: number, o: SampleOptions, stop?: number, onToken?: (id: number) => void): number[] {
    if (prompt.length === 0) throw new Error('the prompt must hold at least one token (e.g. BOS)');
    if (prompt.length + maxNew > this.maxSeqLen) throw new Error(`prompt (${prompt.length}) + new tokens (${maxNew}) exceed the context of ${this.maxSeqLen}`);
    const rng = new Rng(o.seed);
    let logits: Float32Array = new Float32Array(0);
    for (const id of prompt) logits = this.step(id);
    const out: number[] = [];
    for (let i = 0; i < maxNew; i++) {
      const next = sampleToken(logits, o, rng);
      out.push(next);
      onToken?.(next);
      if (next === stop) break;
      if (i + 1 < maxNew) logits = this.step(next);
    }
    return out;
  }

  reset(): void {
    this.pos = 0;
  }

  dispose(): void {
    for (const t of this.allocations) this.backend.free(t);
    this.allocations.length = 0;
  }
}
