/**
 * Realizing a target batch size as ranks × accumulation × micro batch (adaptive-batch-spec.md):
 *   t = min(target, b_max);  M = ⌈t / (J·m_max)⌉;  m = ⌈t / (J·M)⌉;  b = J·M·m
 * so b ≥ t and b − t < J·M. When the estimator's samples are micro-step gradients and J·M < 2,
 * M = 2 (halving m) so that there are at least two samples.
 */
import type { BatchLayout, BatchPlan } from './types.js';

export function planBatch(target: number, layout: BatchLayout, needMicroSamples = false): BatchPlan {
  const { ranks: J, maxMicroBatch: mMax, maxBatch: bMax } = layout;
  for (const [k, v] of [['ranks', J], ['maxMicroBatch', mMax], ['maxBatch', bMax]] as const) {
    if (!Number.isInteger(v) || v < 1) throw new Error(`planBatch: ${k} must be a positive integer, got ${v}`);
  }
  if (!Number.isFinite(target) || target < 1) throw new Error(`planBatch: target must be ≥ 1, got ${target}`);
  const t = Math.min(Math.ceil(target), bMax);
  let M = Math.ceil(t / (J * mMax));
  if (needMicroSamples && J * M < 2) M = 2;
  const m = Math.ceil(t / (J * M));
  return { globalBatch: J * M * m, microBatch: m, accumSteps: M, ranks: J };
}
