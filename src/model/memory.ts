/**
 * Memory estimates, in bytes, from the same size tables the model allocates with.
 */
import type { ModelConfig } from './config.js';
import { buildLayout } from './layout.js';
import { LOWP_ONLY_IN_BACKWARD, workspaceSizes, type Precision } from './llama.js';

export interface MemoryOptions {
  /** Activation recomputation (only block inputs are kept). */
  recompute?: boolean;
  /** Ways the parameters, gradients and optimizer state are sharded (FSDP); 1 = a full replica. */
  shards?: number;
  /** FSDP details (with shards > 1): what is gathered at once and whether a full local gradient is kept. */
  fsdp?: { reshardAfterForward: boolean; unshardedAccumulation: boolean };
  /** Bytes per element of parameters, gradients and moments (float32). */
  bytesPerElement?: number;
  /** Parameter-sized optimizer state buffers (default 2, AdamW's moments; optim/config.ts has each optimizer's). */
  optimizerBuffers?: number;
  /** GEMM input precision: bf16 / f16 add 16-bit copies of the block weight matrices and of the GEMM inputs. */
  precision?: Precision;
}

export interface MemoryEstimate {
  params: number;
  grads: number;
  /** The optimizer's state (AdamW: its two moments). */
  optimizer: number;
  /** Forward caches and backward scratch for one micro-batch. */
  activations: number;
  /** Micro-step gradient scratch (the largest unit, plus the embedding and head while open). */
  gradScratch: number;
  /** FSDP: full parameters of the units gathered at once (0 for a replica). */
  gathered: number;
  /** Chunk × vocab logits scratch of the fused head kernel (at its default 1024-token chunk). */
  headScratch: number;
  /**
   * precision bf16 or f16: 16-bit copies of every block's weight matrices and (bf16 only) of the LM
   * head's (whole, also under FSDP) and of the activations and gradients the GEMMs read; 0 for f32.
   */
  lowPrecision: number;
  total: number;
}

export function estimateMemory(config: ModelConfig, microBatch: number, opts: MemoryOptions = {}): MemoryEstimate {
  if (!Number.isInteger(microBatch) || microBatch < 1) throw new Error(`microBatch must be a positive integer, got ${microBatch}`);
  const bytes = opts.bytesPerElement ?? 4;
  const shards = opts.shards ?? 1;
  const layout = buildLayout(config);
  const unitSizes = layout.units.map((u) => u.size);
  // A sharded unit is padded to shards·⌈S/shards⌉ elements; each rank owns one slice.
  const padded = unitSizes.map((s) => Math.ceil(s / shards) * shards);
  const owned = padded.reduce((a, b) => a + Math.ceil(b / shards), 0);
  const tokens = microBatch * config.seq_len;
  const ws = workspaceSizes(config, tokens);
  const cache = Object.values(ws.cache).reduce((a, b) => a + b, 0);
  const grads = Object.values(ws.grads).reduce((a, b) => a + b, 0);
  const caches = opts.recompute ? 1 : config.n_layers;
  // precision bf16 or f16: the float32 GEMM inputs backward reads only as 16-bit copies are one
  // scratch shared by all blocks.
  const lowp = opts.precision === 'bf16' || opts.precision === 'f16';
  const sharedF32 = lowp ? LOWP_ONLY_IN_BACKWARD.reduce((s, k) => s + ws.cache[k], 0) : 0;
  const activations = ((config.n_layers + 1) * ws.residual + caches * (cache - sharedF32) + sharedF32 + grads) * bytes;
  const embed = padded[0]!;
  const head = padded[padded.length - 1]!;
  const block = Math.max(...padded.slice(1, -1));
  let gradScratch: number;
  let gathered = 0;
  if (shards > 1 || opts.fsdp) {
    const f = opts.fsdp ?? { reshardAfterForward: true, unshardedAccumulation: false };
    const tied = config.tie_embeddings;
    // Gathered parameters: one unit at a time (the head with the embedding when tied), or all of them
    // between forward and backward without resharding.
    gathered = (f.reshardAfterForward ? Math.max(block, embed, head + (tied ? embed : 0)) : padded.reduce((a, b) => a + b, 0)) * bytes;
    // Open full gradients: one block, or the head, with the (tied) embedding's open since the head.
    gradScratch = ((tied ? embed : 0) + Math.max(block, head, tied ? 0 : embed)) * bytes;
    if (f.unshardedAccumulation) gradScratch += padded.reduce((a, b) => a + b, 0) * bytes;
  } else {
    gradScratch = (block + embed + head) * bytes;
  }
  const headScratch = Math.min(tokens, 1024) * config.vocab * bytes * 2;
  let lowPrecision = 0;
  if (lowp) {
    const c = ws.cache;
    const g = ws.grads;
    const matrices = layout.units.slice(1, -1).reduce((a, u) => a + ['qkv', 'o', 'gate_up', 'down'].reduce((s, k) => s + (u.fused[k]?.size ?? 0), 0), 0);
    // The block matrices, the saved GEMM inputs, the gradient operands, and under bf16 the LM head's
    // weight and the head kernel's rounded x̂ and logit gradients of one chunk (f16 keeps the head f32).
    const chunk = Math.min(tokens, 1024);
    const head = opts.precision === 'bf16' ? config.vocab * config.d_model + chunk * (config.d_model + config.vocab) : 0;
    lowPrecision = 2 * (matrices + caches * (c.xn1 + c.attn + c.xn2 + c.h) + g.dx + g.dgu + g.dqkv + head);
  }
  const params = owned * bytes;
  const gradsBytes = owned * bytes;
  const optimizer = (opts.optimizerBuffers ?? 2) * owned * bytes;
  return { params, grads: gradsBytes, optimizer, activations, gradScratch, gathered, headScratch, lowPrecision, total: params + gradsBytes + optimizer + activations + gradScratch + gathered + headScratch + lowPrecision };
}
