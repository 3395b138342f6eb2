/**
 * The coordinate-wise norm test's statistic (experimental; adaptive-batch-spec.md, "Inner-product
 * family"). Per coordinate i, with the J·M micro-step gradients as samples (each a mean of m
 * sequences):
 *     S_i = Σ_{j,t} g_{j,t,i}²                         (reduced across ranks)
 *     v_i = m · (1/(JM−1)) · max(0, S_i − JM·ḡ_i²)      per-sequence Var(∂_i) estimate
 *     r_i = v_i / ḡ_i²                                  the batch coordinate i asks for, times η²
 * The test is Var(∂_i)/(η² ḡ_i²) ≤ b for every i. A plain max over ~10⁶ noisy ratios (and 0/0 for
 * embedding rows absent from the batch) jumps to b_max at once, so two safeguards:
 *   - only coordinates with |ḡ_i| > minAbsMean count (ḡ_i = 0 is always skipped), and
 *   - a high quantile q of the kept r_i replaces the max.
 * The result (without η) reaches the schedule as GradientStats.collected, computed by the
 * schedule's CoordinateCollector (below); the schedule divides by η².
 *
 * Two implementations: coordinateNormStat, exact (sorts the kept ratios: for small models and tests),
 * and CoordinateHistogram, O(d) with a fixed-size log histogram that can be filled block by block and
 * shard by shard and summed across ranks (one all-reduce of HISTOGRAM_BINS float64), accurate to
 * ±3.1% of the value.
 */

import type { CollectorStep, GradientCollector } from './types.js';

type Vec = Float64Array | Float32Array;

export interface CoordinateCounts {
  /** J·M: the number of micro-step gradients behind S_i (≥ 2). */
  samples: number;
  /** m: sequences per micro-step gradient. */
  microBatch: number;
}

export interface CoordinateOptions {
  /** q in (0, 1]: the nearest-rank quantile of the kept ratios (1 = the max). */
  quantile: number;
  /** Keep coordinates with |ḡ_i| > minAbsMean (absolute; see coordinateThreshold). */
  minAbsMean: number;
}

/** An absolute threshold τ·RMS(ḡ) = τ·√(‖ḡ‖²/d) from a relative one, so that the default is scale-free. */
export function coordinateThreshold(relative: number, globalSqNorm: number, paramCount: number): number {
  if (!(relative >= 0)) throw new Error(`coordinateThreshold: relative threshold must be ≥ 0, got ${relative}`);
  if (!Number.isInteger(paramCount) || paramCount < 1) throw new Error(`coordinateThreshold: paramCount must be a positive integer, got ${paramCount}`);
  return relative * Math.sqrt(Math.max(0, globalSqNorm) / paramCount);
}

function checkCounts(c: CoordinateCounts): void {
  if (!Number.isInteger(c.samples) || c.samples < 2) throw new Error(`coordinate statistic needs at least 2 micro-step gradients (J·M ≥ 2), got ${c.samples}`);
  if (!Number.isInteger(c.microBatch) || c.microBatch < 1) throw new Error(`coordinate statistic: microBatch must be a positive integer, got ${c.microBatch}`);
}

function checkLengths(sqSum: Vec, mean: Vec): void {
  if (sqSum.length !== mean.length) throw new Error(`coordinate statistic: sqSum has ${sqSum.length} entries, mean has ${mean.length}`);
}

/** v_i = m/(JM−1) · max(0, S_i − JM·ḡ_i²) for every coordinate: the per-sequence Var(∂_i) estimates. */
export function coordinateVariances(sqSum: Vec, mean: Vec, counts: CoordinateCounts): Float64Array {
  checkCounts(counts);
  checkLengths(sqSum, mean);
  const n = counts.samples;
  const scale = counts.microBatch / (n - 1);
  const out = new Float64Array(mean.length);
  for (let i = 0; i < mean.length; i++) out[i] = scale * Math.max(0, sqSum[i]! - n * mean[i]! * mean[i]!);
  return out;
}

/** The ratios r_i = v_i/ḡ_i² of the kept coordinates (|ḡ_i| > minAbsMean), in coordinate order. */
export function coordinateRatios(sqSum: Vec, mean: Vec, counts: CoordinateCounts, minAbsMean: number): Float64Array {
  const v = coordinateVariances(sqSum, mean, counts);
  const out = new Float64Array(mean.length);
  let k = 0;
  for (let i = 0; i < mean.length; i++) {
    const g = mean[i]!;
    if (Math.abs(g) > minAbsMean) out[k++] = v[i]! / (g * g);
  }
  return out.slice(0, k);
}

function checkQuantile(q: number): void {
  if (!(q > 0 && q <= 1)) throw new Error(`coordinate statistic: quantile must be in (0, 1], got ${q}`);
}

/** Nearest-rank quantile: the ⌈q·N⌉-th smallest value. */
function rankOf(q: number, n: number): number {
  return Math.min(n, Math.max(1, Math.ceil(q * n - 1e-9)));
}

/** Exact statistic: the q-quantile of the kept r_i; null when no coordinate passes the threshold. */
export function coordinateNormStat(sqSum: Vec, mean: Vec, counts: CoordinateCounts, opts: CoordinateOptions): number | null {
  checkQuantile(opts.quantile);
  const r = coordinateRatios(sqSum, mean, counts, opts.minAbsMean);
  if (r.length === 0) return null;
  r.sort();
  return r[rankOf(opts.quantile, r.length) - 1]!;
}

// Histogram over the float64 bit pattern: 16 sub-bins per power of two from the top 4 mantissa bits
// (relative width ≤ 1/16), for 2^MIN_EXP ≤ r < 2^(MAX_EXP); bin 0 holds r < 2^MIN_EXP (zeros), the
// last bin r ≥ 2^MAX_EXP.
const MIN_EXP = -64;
const MAX_EXP = 192;
const SUB = 16;
export const HISTOGRAM_BINS = (MAX_EXP - MIN_EXP) * SUB + 2;
const scratch = new Float64Array(1);
const littleEndian = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
/** The high word of `scratch`: sign, exponent and the top mantissa bits. */
const scratchHi = new Uint32Array(scratch.buffer, littleEndian ? 4 : 0, 1);

function binOf(r: number): number {
  if (r < 2 ** MIN_EXP) return 0;
  if (r >= 2 ** MAX_EXP) return HISTOGRAM_BINS - 1;
  scratch[0] = r;
  const hi = scratchHi[0]!;
  const exp = ((hi >>> 20) & 0x7ff) - 1023;
  const sub = (hi >>> 16) & 0xf;
  return (exp - MIN_EXP) * SUB + sub + 1;
}

/** Representative value of a bin: the midpoint of [2^e(1 + s/16), 2^e(1 + (s+1)/16)). */
function binValue(bin: number): number {
  if (bin === 0) return 0;
  if (bin === HISTOGRAM_BINS - 1) return 2 ** MAX_EXP;
  const e = Math.floor((bin - 1) / SUB) + MIN_EXP;
  const s = (bin - 1) % SUB;
  return 2 ** e * (1 + (s + 0.5) / SUB);
}

export class CoordinateHistogram {
  /** Counts per bin, float64 so that ranks can sum them with an ordinary all-reduce. */
  readonly counts = new Float64Array(HISTOGRAM_BINS);

  constructor(
    readonly sampleCounts: CoordinateCounts,
    readonly minAbsMean: number,
  ) {
    checkCounts(sampleCounts);
  }

  /** Adds one block (or shard) of coordinates: S_i and ḡ_i for the same coordinates. */
  add(sqSum: Vec, mean: Vec): void {
    checkLengths(sqSum, mean);
    const n = this.sampleCounts.samples;
    const scale = this.sampleCounts.microBatch / (n - 1);
    const thr = this.minAbsMean;
    for (let i = 0; i < mean.length; i++) {
      const g = mean[i]!;
      if (!(Math.abs(g) > thr)) continue;
      const g2 = g * g;
      this.counts[binOf((scale * Math.max(0, sqSum[i]! - n * g2)) / g2)]!++;
    }
  }

  /** Adds another histogram's counts (e.g. after an all-reduce, or from another block). */
  merge(counts: Float64Array): void {
    if (counts.length !== HISTOGRAM_BINS) throw new Error(`CoordinateHistogram.merge: expected ${HISTOGRAM_BINS} bins, got ${counts.length}`);
    for (let i = 0; i < HISTOGRAM_BINS; i++) this.counts[i]! += counts[i]!;
  }

  /** Number of kept coordinates. */
  total(): number {
    let n = 0;
    for (let i = 0; i < HISTOGRAM_BINS; i++) n += this.counts[i]!;
    return n;
  }

  /** The q-quantile (nearest rank) to within ±3.1%; null when no coordinate was kept. */
  quantile(q: number): number | null {
    checkQuantile(q);
    const n = this.total();
    if (n === 0) return null;
    const rank = rankOf(q, n);
    let cum = 0;
    for (let i = 0; i < HISTOGRAM_BINS; i++) {
      cum += this.counts[i]!;
      if (cum >= rank) return binValue(i);
    }
    return binValue(HISTOGRAM_BINS - 1);
  }
}

/**
 * The coordinate test's statistics collector: per unit, S_i = Σ_t g_{t,i}² over this rank's
 * micro-step gradients on the host (slow: experimental), then summed over ranks (a reduction of the
 * whole model's size) and binned against the reduced ḡ in a CoordinateHistogram; the step's
 * statistic is its q-quantile.
 */
export class CoordinateCollector implements GradientCollector {
  private sqSums: Float64Array[] = [];

  constructor(readonly options: { quantile: number; threshold: number }) {}

  attach(unitSizes: readonly number[]): void {
    this.sqSums = unitSizes.map((n) => new Float64Array(n));
  }

  beginStep(): void {
    for (const a of this.sqSums) a.fill(0);
  }

  addMicroGradient(unit: number, grad: Float32Array): void {
    const acc = this.sqSums[unit];
    if (!acc || acc.length !== grad.length) throw new Error(`coordinate collector: unit ${unit} has ${grad.length} gradient entries, attached with ${acc?.length ?? 'no'} unit of that index`);
    for (let i = 0; i < acc.length; i++) acc[i] += grad[i]! * grad[i]!;
  }

  async finishStep(step: CollectorStep): Promise<number | null> {
    const samples = step.ranks * step.microSteps;
    const paramCount = this.sqSums.reduce((n, a) => n + a.length, 0);
    // Every rank joins every unit's reduction, even one without micro-steps this step.
    const reduced: Float64Array[] = [];
    for (const sq of this.sqSums) reduced.push(step.ranks > 1 ? await step.allReduceSum(sq) : sq);
    if (samples < 2 || paramCount === 0) return null;
    const hist = new CoordinateHistogram({ samples, microBatch: step.microBatch }, coordinateThreshold(this.options.threshold, step.globalSqNorm, paramCount));
    reduced.forEach((sq, u) => hist.add(sq, step.reducedGradient(u)));
    // No coordinate above the threshold: none asks for a larger batch.
    return hist.quantile(this.options.quantile) ?? 0;
  }
}
