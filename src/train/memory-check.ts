/**
 * Refuses a configuration whose estimated memory exceeds what the machine has available, before
 * anything large is allocated, naming the estimate and the largest micro batch that would fit.
 */
import { readFileSync } from 'node:fs';
import { freemem } from 'node:os';
import type { ModelConfig } from '../model/config.js';
import { buildLayout } from '../model/layout.js';
import { workspaceSizes, type Precision } from '../model/llama.js';
import { estimateMemory, type MemoryEstimate } from '../model/memory.js';
import { formatBytes } from '../util/format.js';
import { UserError } from '../util/errors.js';

/** MemAvailable from /proc/meminfo, capped by a cgroup v2 memory limit when one is set. */
export function availableMemoryBytes(): number {
  let avail = freemem();
  try {
    const m = /MemAvailable:\s+(\d+) kB/.exec(readFileSync('/proc/meminfo', 'utf8'));
    if (m) avail = Number(m[1]) * 1024;
  } catch {
    /* not Linux: keep os.freemem() */
  }
  try {
    const max = readFileSync('/sys/fs/cgroup/memory.max', 'utf8').trim();
    const cur = Number(readFileSync('/sys/fs/cgroup/memory.current', 'utf8').trim());
    if (max !== 'max' && Number.isFinite(Number(max))) avail = Math.min(avail, Number(max) - cur);
  } catch {
    /* no cgroup limit */
  }
  return avail;
}

export interface MemoryCheckOptions {
  recompute: boolean;
  /** Replicas (or shards) living in this process: threads-DDP ranks share one address space. */
  ranksInProcess: number;
  /** FSDP shard count (1 for DDP/local). */
  shards: number;
  fsdp?: { reshardAfterForward: boolean; unshardedAccumulation: boolean };
  precision?: Precision;
  /** Parameter-sized optimizer state buffers (default 2, AdamW's). */
  optimizerBuffers?: number;
}

export function processEstimate(config: ModelConfig, microBatch: number, o: MemoryCheckOptions): MemoryEstimate & { perRank: number } {
  const e = estimateMemory(config, microBatch, { recompute: o.recompute, shards: o.shards, ...(o.fsdp && { fsdp: o.fsdp }), ...(o.precision && { precision: o.precision }), ...(o.optimizerBuffers !== undefined && { optimizerBuffers: o.optimizerBuffers }) });
  return { ...e, perRank: e.total, total: e.total * o.ranksInProcess };
}

/**
 * Whether a backend keeps the run's tensors in host memory (the host check applies); the webgpu
 * backend keeps them on the GPU (ADABATCH_WEBGPU_MEMORY_GIB checks that) and only staging copies here.
 */
export function usesHostMemory(backend: string): boolean {
  return backend !== 'webgpu';
}

export function checkMemory(config: ModelConfig, microBatch: number, o: MemoryCheckOptions, available = availableMemoryBytes()): MemoryEstimate {
  const e = processEstimate(config, microBatch, o);
  if (e.total <= available) return e;
  // The estimate grows with the micro batch: bisect for the largest that fits (0 when none does).
  let fit = 0;
  let tooBig = microBatch;
  while (tooBig - fit > 1) {
    const m = Math.floor((fit + tooBig) / 2);
    if (processEstimate(config, m, o).total <= available) fit = m;
    else tooBig = m;
  }
  const parts = `parameters ${formatBytes(e.params)}, gradients ${formatBytes(e.grads)}, optimizer ${formatBytes(e.optimizer)}, activations ${formatBytes(e.activations)}, ${e.gathered ? `gathered units ${formatBytes(e.gathered)}, ` : ''}scratch ${formatBytes(e.gradScratch + e.headScratch)}${e.lowPrecision ? `, bf16 copies ${formatBytes(e.lowPrecision)}` : ''}`;
  const per = o.ranksInProcess > 1 ? ` (${o.ranksInProcess} ranks in this process × ${formatBytes(e.perRank)})` : '';
  const advice = fit > 0
    ? `the largest micro batch that fits is ${fit} (set batch.max_micro=${fit}; the global batch is reached by accumulation)`
    : `no micro batch fits: even 1 sequence needs ${formatBytes(processEstimate(config, 1, o).total)}; use recompute: true, parallel.strategy: fsdp with more ranks, or a smaller model`;
  throw new UserError(`not enough memory: the estimate is ${formatBytes(e.total)}${per} for micro batch ${microBatch} (${parts}), but only ${formatBytes(available)} is available; ${advice}`);
}

/**
 * Refuses, before anything is allocated, a model or micro batch whose largest tensor exceeds what the
 * backend's kernels can address (`limit` bytes: a GPU's storage binding limit), naming the tensor.
 * The fused head's logits chunk is not checked: the backend sizes its chunks to fit.
 */
export function checkTensorLimit(config: ModelConfig, microBatch: number, limit: number, backend: string): void {
  const units = buildLayout(config).units;
  const unit = units.reduce((a, u) => (u.size > a.size ? u : a));
  const ws = workspaceSizes(config, microBatch * config.seq_len);
  const acts: Array<[string, number]> = [['residual stream', ws.residual], ...Object.entries(ws.cache), ...Object.entries(ws.grads)];
  const [actName, actSize] = acts.reduce((a, b) => (b[1] > a[1] ? b : a));
  const problems: string[] = [];
  const unitName = unit.kind === 'block' ? `block ${unit.layer}` : unit.kind;
  if (4 * unit.size > limit) problems.push(`the parameters of the ${unitName} unit (${formatBytes(4 * unit.size)}) form one tensor larger than the ${formatBytes(limit)} ${backend} can address in one kernel; a smaller model (d_model, ffn_dim, vocab) is needed`);
  if (4 * actSize > limit) problems.push(`the activation ${actName} of a micro batch of ${microBatch} × ${config.seq_len} tokens (${formatBytes(4 * actSize)}) exceeds the ${formatBytes(limit)} ${backend} can address in one kernel; lower batch.max_micro`);
  if (problems.length) throw new UserError(`too large for this device:\n${problems.join('\n')}`);
}
