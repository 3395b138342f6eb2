/**
 * The up-front GPU memory check of the webgpu backend. WebGPU does not report a device's memory,
 * so the user states it (ADABATCH_WEBGPU_MEMORY_GIB, the memory of one GPU: a property of the
 * machine, not of the run, so it is not a config field that a resume on another GPU would carry
 * along); a run whose memory estimate (model/memory.ts, as the host check uses) exceeds it is
 * refused before anything is allocated, naming the numbers and the largest micro batch that fits.
 */
import { MEMORY_VARIABLE } from '../backend/webgpu/device-memory.js';
import type { ModelConfig } from '../model/config.js';
import type { MemoryEstimate } from '../model/memory.js';
import { formatBytes } from '../util/format.js';
import { UserError } from '../util/errors.js';
import { processEstimate, type MemoryCheckOptions } from './memory-check.js';

/**
 * Refuses the run when the estimate for the ranks on one GPU exceeds `deviceBytes`.
 * `o.ranksInProcess` is the number of this process's ranks that share this rank's GPU.
 */
export function checkDeviceMemory(config: ModelConfig, microBatch: number, o: MemoryCheckOptions, deviceBytes: number, adapter: string): MemoryEstimate {
  const e = processEstimate(config, microBatch, o);
  if (e.total <= deviceBytes) return e;
  let fit = 0;
  let tooBig = microBatch;
  while (tooBig - fit > 1) {
    const m = Math.floor((fit + tooBig) / 2);
    if (processEstimate(config, m, o).total <= deviceBytes) fit = m;
    else tooBig = m;
  }
  const parts = `parameters ${formatBytes(e.params)}, gradients ${formatBytes(e.grads)}, optimizer ${formatBytes(e.optimizer)}, activations ${formatBytes(e.activations)}, ${e.gathered ? `gathered units ${formatBytes(e.gathered)}, ` : ''}scratch ${formatBytes(e.gradScratch + e.headScratch)}${e.lowPrecision ? `, low-precision copies ${formatBytes(e.lowPrecision)}` : ''}`;
  const shared = o.ranksInProcess > 1 ? ` (${o.ranksInProcess} ranks of this process share this GPU × ${formatBytes(e.perRank)})` : '';
  const advice = fit > 0
    ? `the largest micro batch that fits is ${fit} (set batch.max_micro=${fit}; the global batch is reached by accumulation)`
    : `no micro batch fits: even 1 sequence needs ${formatBytes(processEstimate(config, 1, o).total)}; use recompute: true, parallel.strategy: fsdp with more ranks, or a smaller model`;
  throw new UserError(`not enough GPU memory: the estimate is ${formatBytes(e.total)}${shared} for micro batch ${microBatch} (${parts}), but ${MEMORY_VARIABLE} says the GPU (${adapter}) has ${formatBytes(deviceBytes)}; ${advice}`);
}
