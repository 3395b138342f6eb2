/**
 * Gradient noise scale (McCandlish et al. 2018) as a per-step diagnostic for every schedule:
 *     B_simple = tr(Σ)/‖G‖²,
 * from the two-batch unbiased estimates of batch/estimators.ts (small batches: the J·M micro-steps,
 * or the J ranks), with numerator and denominator smoothed separately by bias-corrected EMAs before
 * dividing. The trainer calls observe() once per step with the reduced stats and logs its result as
 * `noise_scale`; state()/restore() go in the checkpoint next to the schedule's.
 */
import { Ema } from './ema.js';
import { statsFinite, twoBatchEstimate, type NoiseScaleSource } from './estimators.js';
import type { GradientStats, ScheduleState, StatisticNeeds } from './types.js';

export interface NoiseScaleOptions {
  /** EMA factor for tr(Σ) and ‖G‖² (0 = this step only). */
  beta: number;
  /** Small batches: the J·M micro-step gradients (default), or the J ranks' gradients (needs Σ‖g_j‖²). */
  source: NoiseScaleSource;
}

export interface NoiseScaleEstimate {
  /** Smoothed B_simple = max(0, EMA tr Σ)/EMA ‖G‖² in sequences; null while not estimable (no step with two small batches yet, or EMA ‖G‖² ≤ 0). */
  bSimple: number | null;
  /** This step's unbiased tr(Σ) estimate (may be negative); null when the step has one small batch or non-finite stats. */
  traceSigma: number | null;
  /** This step's unbiased ‖G‖² estimate = ‖ḡ‖² − tr(Σ̂)/b (may be negative); null as traceSigma. */
  gradSqNorm: number | null;
  /** Bias-corrected EMA of tr(Σ); null before the first usable step. */
  traceSigmaSmoothed: number | null;
  /** Bias-corrected EMA of ‖G‖²; null before the first usable step. */
  gradSqNormSmoothed: number | null;
}

function emptyEstimate(): NoiseScaleEstimate {
  return { bSimple: null, traceSigma: null, gradSqNorm: null, traceSigmaSmoothed: null, gradSqNormSmoothed: null };
}

export class NoiseScaleTracker {
  private readonly ema: Ema;
  readonly needs: StatisticNeeds;

  constructor(readonly opts: NoiseScaleOptions = { beta: 0.9, source: 'micro' }) {
    this.ema = new Ema(opts.beta, 2);
    this.needs = { localNorms: opts.source === 'rank', innerProducts: false, microSamples: false };
  }

  private last: NoiseScaleEstimate = emptyEstimate();

  /**
   * Feeds one step and returns the smoothed B_simple to log as `noise_scale` (null while not
   * estimable); lastEstimate() has the step's tr(Σ) and ‖G‖² estimates as well. A step with a single
   * small batch, non-finite statistics, or a plan with b ≠ J·M·m (a shortened last step with uneven
   * micro batches, where the two-batch formulas do not hold) leaves the averages unchanged.
   */
  observe(stats: GradientStats): number | null {
    const { ranks: J, accumSteps: M, microBatch: m, globalBatch: b } = stats.plan;
    const even = b === J * M * m;
    const est = even && statsFinite(stats) ? twoBatchEstimate(stats, this.opts.source) : null;
    if (est !== null && Number.isFinite(est.traceSigma) && Number.isFinite(est.gradSqNorm)) {
      this.ema.update([est.traceSigma, est.gradSqNorm]);
      this.last = { ...this.current(), traceSigma: est.traceSigma, gradSqNorm: est.gradSqNorm };
    } else {
      this.last = { ...this.current(), traceSigma: null, gradSqNorm: null };
    }
    return this.last.bSimple;
  }

  /** Everything about the last observed step: smoothed B_simple, raw and smoothed tr(Σ) and ‖G‖². */
  lastEstimate(): NoiseScaleEstimate {
    return { ...this.last };
  }

  /** The smoothed estimates as they stand (without a new step). */
  current(): NoiseScaleEstimate {
    const v = this.ema.value();
    if (v === null) return emptyEstimate();
    const [tr, gSq] = v as [number, number];
    return { bSimple: gSq > 0 ? Math.max(0, tr) / gSq : null, traceSigma: null, gradSqNorm: null, traceSigmaSmoothed: tr, gradSqNormSmoothed: gSq };
  }

  state(): ScheduleState {
    return { source: this.opts.source, ema: this.ema.state() };
  }

  restore(state: ScheduleState): void {
    if (state.source !== this.opts.source) throw new Error(`noise-scale tracker: checkpoint has source '${String(state.source)}', config has '${this.opts.source}'`);
    this.ema.restore(state.ema, 'noise-scale tracker');
    this.last = { ...this.current(), traceSigma: null, gradSqNorm: null };
  }
}
