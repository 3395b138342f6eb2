/**
 * The estimators of adaptive-batch-spec.md as pure functions of one step's reduced scalars.
 * Notation: J ranks, M micro-steps of m sequences, b = J·M·m; g_{j,t} micro-step gradients,
 * g_j = (1/M) Σ_t g_{j,t}, ḡ = (1/J) Σ_j g_j.
 *
 * Only scalars cross the network, through the identity
 *     Σ_i ‖x_i − x̄‖² = Σ_i ‖x_i‖² − n‖x̄‖²
 * (x̄ the mean of the n samples x_i), clamped at ≥ 0 because rounding can make it slightly negative.
 */
import type { GradientStats } from './types.js';

/** Σ_i ‖x_i − x̄‖² from Σ_i ‖x_i‖², n and ‖x̄‖², clamped at ≥ 0. */
export function centeredSqSum(sqNormSum: number, n: number, meanSqNorm: number): number {
  return Math.max(0, sqNormSum - n * meanSqNorm);
}

/** Reads a statistic the estimator needs, refusing a missing one (a trainer bug, never a silent zero). */
export function required(stats: GradientStats, field: 'localSqNormSum' | 'dotSum' | 'dotSqSum' | 'collected', who: string): number {
  const v = stats[field];
  if (v === null || v === undefined) throw new Error(`${who} needs stats.${field}, which was not measured (null)`);
  return v;
}

/**
 * `microbatch` estimator: the J·M micro-step gradients are the samples, each a mean of m sequences,
 *     tr(Σ̂) = m · (1/(JM−1)) · Σ_{j,t} ‖g_{j,t} − ḡ‖².
 * Unbiased for the per-sequence tr(Σ) when sequences are i.i.d.; needs J·M ≥ 2.
 */
export function traceSigmaMicrobatch(stats: GradientStats): number {
  const { ranks: J, accumSteps: M, microBatch: m } = stats.plan;
  const n = J * M;
  if (n < 2) throw new Error(`microbatch estimator needs J·M ≥ 2 micro-step gradients, got J=${J}, M=${M}`);
  return (m / (n - 1)) * centeredSqSum(stats.microSqNormSum, n, stats.globalSqNorm);
}

/**
 * `per-sample` estimator: the J ranks' accumulated gradients are the samples, each a mean of b/J
 * sequences,
 *     tr(Σ̂) = (b/J) · (1/(J−1)) · Σ_j ‖g_j − ḡ‖².
 * Unbiased for tr(Σ); needs J ≥ 2 and Σ_j ‖g_j‖².
 */
export function traceSigmaPerSample(stats: GradientStats): number {
  const { ranks: J, globalBatch: b } = stats.plan;
  if (J < 2) throw new Error(`per-sample estimator needs J ≥ 2 ranks, got J=${J}`);
  const local = required(stats, 'localSqNormSum', 'per-sample estimator');
  return (b / J / (J - 1)) * centeredSqSum(local, J, stats.globalSqNorm);
}

/**
 * `paper` statistic's numerator (DDP-Norm / FSDP-Norm, eq. 5 read literally):
 *     V = (1/J) · Σ_j ‖g_j − ḡ‖²,    E[V] = (J−1)·tr(Σ)/b.
 */
export function paperVariance(stats: GradientStats): number {
  const { ranks: J } = stats.plan;
  if (J < 2) throw new Error(`paper estimator needs J ≥ 2 ranks, got J=${J}`);
  const local = required(stats, 'localSqNormSum', 'paper estimator');
  return centeredSqSum(local, J, stats.globalSqNorm) / J;
}

/**
 * Inner-product test numerator: the sample variance over the n = J ranks of ⟨g_s, ḡ⟩ (1/(n−1)),
 * times m_s = b/J, the sequences behind each g_s, so that it estimates the per-sequence
 * Var_i(⟨g_i, ḡ⟩):
 *     Var_s = (Σ_s ⟨g_s,ḡ⟩² − (Σ_s ⟨g_s,ḡ⟩)²/n) / (n−1),   returns Var_s · m_s.
 */
export function innerProductVariance(stats: GradientStats): number {
  const { ranks: n, globalBatch: b } = stats.plan;
  if (n < 2) throw new Error(`inner-product test needs J ≥ 2 ranks, got J=${n}`);
  const dotSum = required(stats, 'dotSum', 'inner-product test');
  const dotSqSum = required(stats, 'dotSqSum', 'inner-product test');
  const varS = Math.max(0, dotSqSum - (dotSum * dotSum) / n) / (n - 1);
  return varS * (b / n);
}

/**
 * Orthogonality test numerator: the per-sequence variance of the component of a gradient orthogonal
 * to ḡ, from the n = J ranks,
 *     Σ_s ‖g_s − (⟨g_s,ḡ⟩/‖ḡ‖²) ḡ‖² · m_s / (n−1),   ‖g_s − proj‖² = ‖g_s‖² − ⟨g_s,ḡ⟩²/‖ḡ‖².
 * (The orthogonal components sum to zero over s, so no centring is needed.) Infinite when ḡ = 0 and
 * some g_s is not.
 */
export function orthogonalVariance(stats: GradientStats): number {
  const { ranks: n, globalBatch: b } = stats.plan;
  if (n < 2) throw new Error(`orthogonality test needs J ≥ 2 ranks, got J=${n}`);
  const local = required(stats, 'localSqNormSum', 'orthogonality test');
  const dotSqSum = required(stats, 'dotSqSum', 'orthogonality test');
  const g2 = stats.globalSqNorm;
  const orth = g2 > 0 ? Math.max(0, local - dotSqSum / g2) : local;
  return (orth * (b / n)) / (n - 1);
}

/** num / den for a statistic whose denominator may vanish: 0/0 → 0 (nothing to test), x/0 → ∞. */
export function safeRatio(num: number, den: number): number {
  if (den > 0) return num / den;
  return num > 0 ? Infinity : 0;
}

/** Which small batches the two-batch noise-scale estimate uses. */
export type NoiseScaleSource = 'micro' | 'rank';

/** One step's unbiased two-batch estimates (McCandlish et al. 2018), unclamped so that averages stay unbiased. */
export interface TwoBatchEstimate {
  /** B_small: sequences behind each small-batch gradient (m, or b/J for 'rank'). */
  smallBatch: number;
  /** Number of small batches (J·M or J). */
  smallCount: number;
  /** tr(Σ) ≈ (‖g_small‖² − ‖g_big‖²)/(1/B_small − 1/B_big); may be negative on a single step. */
  traceSigma: number;
  /** ‖G‖² ≈ (B_big‖g_big‖² − B_small‖g_small‖²)/(B_big − B_small) = ‖ḡ‖² − tr(Σ̂)/b; may be negative. */
  gradSqNorm: number;
}

/**
 * The spec's two-batch estimates of tr(Σ) and ‖G‖² for one step, with B_big = b, ‖g_big‖² = ‖ḡ‖²,
 * and ‖g_small‖² the average squared norm of the J·M micro-step (or J rank) gradients. The tr(Σ)
 * estimate equals the `microbatch` (or `per-sample`) estimator before its clamp. null when there is
 * only one small batch (or, for 'rank', when Σ_j ‖g_j‖² was not measured).
 */
export function twoBatchEstimate(stats: GradientStats, source: NoiseScaleSource = 'micro'): TwoBatchEstimate | null {
  const { ranks: J, accumSteps: M, microBatch: m, globalBatch: b } = stats.plan;
  let n: number;
  let sqSum: number;
  if (source === 'micro') {
    n = J * M;
    sqSum = stats.microSqNormSum;
  } else {
    if (stats.localSqNormSum === null) return null;
    n = J;
    sqSum = stats.localSqNormSum;
  }
  if (n < 2) return null;
  const bSmall = source === 'micro' ? m : b / J;
  const gSmall2 = sqSum / n;
  const gBig2 = stats.globalSqNorm;
  const traceSigma = (gSmall2 - gBig2) / (1 / bSmall - 1 / b);
  const gradSqNorm = (b * gBig2 - bSmall * gSmall2) / (b - bSmall);
  return { smallBatch: bSmall, smallCount: n, traceSigma, gradSqNorm };
}

/** True when every scalar the step reported is finite (a NaN/Inf step must not move the batch). */
export function statsFinite(stats: GradientStats): boolean {
  const vals = [stats.microSqNormSum, stats.localSqNormSum, stats.globalSqNorm, stats.dotSum, stats.dotSqSum, stats.collected];
  return vals.every((v) => v === null || v === undefined || Number.isFinite(v));
}

/** Checks that the plan in the stats is self-consistent (b = J·M·m, positive integers). */
export function checkPlan(stats: GradientStats, who: string): void {
  const { ranks: J, accumSteps: M, microBatch: m, globalBatch: b } = stats.plan;
  for (const [k, v] of [['ranks', J], ['accumSteps', M], ['microBatch', m], ['globalBatch', b]] as const) {
    if (!Number.isInteger(v) || v < 1) throw new Error(`${who}: stats.plan.${k} must be a positive integer, got ${v}`);
  }
  if (b !== J * M * m) throw new Error(`${who}: stats.plan.globalBatch ${b} ≠ ranks·accumSteps·microBatch = ${J}·${M}·${m}`);
}
