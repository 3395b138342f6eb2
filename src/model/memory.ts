/**
 * Memory estimates, in bytes, from the same size tables the model allocates with.
 */
import type { ModelConfig } from './config.js';
import { buildLayout } from './layout.js';
import { workspaceSizes } from './llama.js';

export interface MemoryOptions {
  /** Activation recomputation (only block inputs are kept). */
  recompute?: boolean;
  /** Ways the parameters, gradients and optimizer state are sharded (FSDP); 1 = a full replica. */
  shards?: number;
  /** Bytes per element of parameters, gradients and moments (float32). */
  bytesPerElement?: number;
}

export interface MemoryEstimate {
  params: number;
  grads: number;
  /** AdamW's two moments. */
  optimizer: number;
  /** Forward caches and backward scratch for one micro-batch. */
  activations: number;
  /** Micro-step gradient scratch (the largest unit, plus the embedding and head while open). */
  gradScratch: number;
  /** Chunk × vocab logits scratch of the fused head kernel (at its default 1024-token chunk). */
  headScratch: number;
  total: number;
}

export function estimateMemory(config: ModelConfig, microBatch: number, opts: MemoryOptions = {}): MemoryEstimate {
  if (!Number.isInteger(microBatch) || microBatch < 1) throw new Error(`microBatch must be a positive integer, got ${microBatch}`);
  const bytes = opts.bytesPerElement ?? 4;
  const shards = opts.shards ?? 1;
  const layout = buildLayout(config);
  const unitSizes = layout.units.map((u) => u.size);
  const paramElems = unitSizes.reduce((a, b) => a + b, 0);
  const owned = Math.ceil(paramElems / shards);
  const tokens = microBatch * config.seq_len;
  const ws = workspaceSizes(config, tokens);
  const cache = Object.values(ws.cache).reduce((a, b) => a + b, 0);
  const grads = Object.values(ws.grads).reduce((a, b) => a + b, 0);
  const caches = opts.recompute ? 1 : config.n_layers;
  const activations = ((config.n_layers + 1) * ws.residual + caches * cache + grads) * bytes;
  const blockSize = Math.max(...unitSizes.slice(1, -1));
  const gradScratch = (blockSize + unitSizes[0]! + unitSizes[unitSizes.length - 1]!) * bytes;
  const headScratch = Math.min(tokens, 1024) * config.vocab * bytes * 2;
  const params = owned * bytes;
  const gradsBytes = owned * bytes;
  const optimizer = 2 * owned * bytes;
  return { params, grads: gradsBytes, optimizer, activations, gradScratch, headScratch, total: params + gradsBytes + optimizer + activations + gradScratch + headScratch };
}

export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i++;
  }
  return `${n.toFixed(i === 0 ? 0 : 1)} ${units[i]}`;
}
