/**
 * Adaptive batch size schedules: a statistic T (in sequences) is computed from each step's reduced
 * gradient scalars; when T exceeds the batch, the next batch is ⌈T⌉ (only ever increasing, capped at
 * the maximum). The machinery shared by every test lives in AdaptiveSchedule:
 *   - testing begins with the first step that starts at or after `startAfterSamples` samples;
 *   - a test runs on every `testInterval`-th such step (the k-th, 2k-th, …);
 *   - optional bias-corrected EMAs smooth the numerator(s) and denominator of T separately, updated on
 *     every eligible step (not only on test steps);
 *   - hysteresis h: the test fails only when T > (1+h)·b;
 *   - once the batch reaches the maximum, testing stops (paper).
 * The subclasses say what to measure and how T is formed: the norm test (three estimators), the
 * inner-product family, the coordinate-wise norm test, and the gradient-noise-scale schedule.
 */
import { CoordinateCollector } from './coordinate.js';
import { Ema } from './ema.js';
import {
  checkPlan,
  innerProductVariance,
  orthogonalVariance,
  paperVariance,
  safeRatio,
  statsFinite,
  traceSigmaMicrobatch,
  traceSigmaPerSample,
  twoBatchEstimate,
  required,
  type NoiseScaleSource,
} from './estimators.js';
import type { BatchLayout, BatchSchedule, GradientStats, ScheduleDecision, ScheduleState, StatisticNeeds } from './types.js';

export interface AdaptiveOptions {
  /** Batch of the first step, and the smallest batch ever used. */
  initial: number;
  /** Largest target batch; testing stops once it is reached. */
  max: number;
  /** Test every k-th eligible step (1 = every step). */
  testInterval: number;
  /** No test on a step that began before this many samples had been seen. */
  startAfterSamples: number;
  /** Bias-corrected EMA of T's numerator(s) and denominator, separately; null = no smoothing. */
  ema: { beta: number } | null;
  /** Fail only when T > (1 + hysteresis)·b. */
  hysteresis: number;
}

/** T and the variance estimate behind it, from the (smoothed) components. */
interface Statistic {
  stat: number | null;
  gradVar: number | null;
}

interface LastTest {
  samplesSeen: number;
  /** null when T was not finite (JSON cannot hold ∞). */
  stat: number | null;
  passed: boolean;
}

const NO_TEST = { testStat: null, gradVar: null, testPassed: null } as const;

export abstract class AdaptiveSchedule implements BatchSchedule {
  abstract readonly name: string;
  abstract readonly needs: StatisticNeeds;

  private batch: number;
  private readonly ema: Ema;
  private steps = 0;
  private eligibleSteps = 0;
  private tests = 0;
  private growths = 0;
  private lastTest: LastTest | null = null;

  constructor(
    readonly opts: AdaptiveOptions,
    componentCount: number,
  ) {
    const who = 'adaptive schedule';
    for (const k of ['initial', 'max', 'testInterval'] as const) {
      if (!Number.isInteger(opts[k]) || opts[k] < 1) throw new Error(`${who}: ${k} must be a positive integer, got ${opts[k]}`);
    }
    if (opts.initial > opts.max) throw new Error(`${who}: initial batch ${opts.initial} exceeds max ${opts.max}`);
    if (!(opts.startAfterSamples >= 0)) throw new Error(`${who}: startAfterSamples must be ≥ 0, got ${opts.startAfterSamples}`);
    if (!(opts.hysteresis >= 0)) throw new Error(`${who}: hysteresis must be ≥ 0, got ${opts.hysteresis}`);
    this.batch = opts.initial;
    this.ema = new Ema(opts.ema?.beta ?? 0, componentCount);
  }

  /** The raw quantities to smooth, for this step (each independent of b where the formula allows). */
  protected abstract components(stats: GradientStats): number[];
  /** T (in sequences) from the smoothed components; null when it cannot be formed. */
  protected abstract statistic(smoothed: readonly number[], stats: GradientStats): Statistic;
  /** Layout refusals specific to the test. */
  protected abstract validateTest(layout: BatchLayout): void;
  /** The batch T is compared with: the realized batch of the step (tests) or the current target (gns). */
  protected reference(stats: GradientStats, current: number): number {
    void current;
    return stats.plan.globalBatch;
  }

  validate(layout: BatchLayout): void {
    if (this.opts.max > layout.maxBatch) {
      throw new Error(`${this.name} schedule: max batch ${this.opts.max} exceeds the layout's maximum global batch ${layout.maxBatch}`);
    }
    this.validateTest(layout);
  }

  targetBatch(_samplesSeen?: number): number {
    return this.batch;
  }

  observe(stats: GradientStats, samplesSeen: number): ScheduleDecision {
    checkPlan(stats, `${this.name} schedule`);
    this.steps++;
    if (this.batch >= this.opts.max) return { ...NO_TEST, nextBatch: this.batch, note: 'at max batch: testing stopped' };
    const stepStart = samplesSeen - stats.plan.globalBatch;
    if (stepStart < this.opts.startAfterSamples) return { ...NO_TEST, nextBatch: this.batch, note: 'before start_after_samples' };
    if (!statsFinite(stats)) return { ...NO_TEST, nextBatch: this.batch, note: 'non-finite gradient statistics: step ignored' };
    const comps = this.components(stats);
    if (!comps.every(Number.isFinite)) return { ...NO_TEST, nextBatch: this.batch, note: 'non-finite test components: step ignored' };
    this.ema.update(comps);
    this.eligibleSteps++;
    if (this.eligibleSteps % this.opts.testInterval !== 0) return { ...NO_TEST, nextBatch: this.batch };

    const { stat, gradVar } = this.statistic(this.ema.value()!, stats);
    if (stat === null || Number.isNaN(stat)) return { ...NO_TEST, nextBatch: this.batch, note: 'statistic not estimable this step' };
    this.tests++;
    const failed = stat > (1 + this.opts.hysteresis) * this.reference(stats, this.batch);
    if (failed) {
      const next = Math.min(this.opts.max, Math.max(this.batch, Math.ceil(stat)));
      if (next > this.batch) this.growths++;
      this.batch = next;
    }
    this.lastTest = { samplesSeen, stat: Number.isFinite(stat) ? stat : null, passed: !failed };
    return { testStat: stat, gradVar, testPassed: !failed, nextBatch: this.batch };
  }

  state(): ScheduleState {
    return {
      schedule: this.name,
      batch: this.batch,
      steps: this.steps,
      eligibleSteps: this.eligibleSteps,
      tests: this.tests,
      growths: this.growths,
      lastTest: this.lastTest === null ? null : { ...this.lastTest },
      ema: this.ema.state(),
    };
  }

  restore(state: ScheduleState): void {
    const who = `${this.name} schedule`;
    if (state.schedule !== this.name) throw new Error(`${who}: checkpoint holds the state of schedule '${String(state.schedule)}'`);
    const int = (k: string, min: number): number => {
      const v = state[k];
      if (typeof v !== 'number' || !Number.isInteger(v) || v < min) throw new Error(`${who}: checkpoint field '${k}' must be an integer ≥ ${min}, got ${JSON.stringify(v)}`);
      return v;
    };
    const batch = int('batch', 1);
    if (batch < this.opts.initial || batch > this.opts.max) {
      throw new Error(`${who}: checkpoint batch ${batch} lies outside the configured [initial, max] = [${this.opts.initial}, ${this.opts.max}]`);
    }
    const steps = int('steps', 0);
    const eligibleSteps = int('eligibleSteps', 0);
    const tests = int('tests', 0);
    const growths = int('growths', 0);
    const lt = state.lastTest as LastTest | null | undefined;
    if (lt !== null && (typeof lt !== 'object' || lt === undefined || typeof lt.passed !== 'boolean' || typeof lt.samplesSeen !== 'number')) {
      throw new Error(`${who}: malformed checkpoint field 'lastTest': ${JSON.stringify(lt)}`);
    }
    this.ema.restore(state.ema, who);
    this.batch = batch;
    this.steps = steps;
    this.eligibleSteps = eligibleSteps;
    this.tests = tests;
    this.growths = growths;
    this.lastTest = lt === null ? null : { samplesSeen: lt.samplesSeen, stat: lt.stat ?? null, passed: lt.passed };
  }
}

function requireRanks(name: string, layout: BatchLayout, why: string): void {
  if (layout.ranks < 2) {
    throw new Error(`${name}: needs at least 2 data-parallel ranks (${why}); this layout has ${layout.ranks}`);
  }
}

function positive(who: string, k: string, v: number): void {
  if (!(v > 0) || !Number.isFinite(v)) throw new Error(`${who}: ${k} must be a positive number, got ${v}`);
}

// ---------------------------------------------------------------------------------------------
// The norm test

export type NormEstimator = 'microbatch' | 'per-sample' | 'paper';

/**
 * Norm test (Byrd et al. 2012): passes when tr(Σ)/b ≤ η²‖∇L‖², i.e. T = tr(Σ̂)/(η²‖ḡ‖²) ≤ b; on
 * failure the next batch is ⌈T⌉. The `paper` estimator uses T = V/(η²‖ḡ‖²) with
 * V = (1/J)Σ_j‖g_j − ḡ‖² in the same rule. Smoothing [ours]: for `paper`, whose V scales like 1/b,
 * the EMA averages b·V (≈ (J−1)·tr Σ, independent of b) and divides by the current b, so that a
 * batch change does not leave stale V values in the average; without EMA this is exactly V.
 */
export class NormTestSchedule extends AdaptiveSchedule {
  readonly name = 'norm';
  readonly needs: StatisticNeeds;

  constructor(
    opts: AdaptiveOptions,
    readonly eta: number,
    readonly estimator: NormEstimator = 'microbatch',
  ) {
    super(opts, 2);
    positive('norm test', 'eta', eta);
    if (!['microbatch', 'per-sample', 'paper'].includes(estimator)) {
      throw new Error(`norm test: estimator must be one of 'microbatch', 'per-sample', 'paper', got '${String(estimator)}'`);
    }
    const micro = estimator === 'microbatch';
    this.needs = { localNorms: !micro, innerProducts: false, microSamples: micro };
  }

  protected validateTest(layout: BatchLayout): void {
    if (this.estimator !== 'microbatch') {
      requireRanks(
        `norm test estimator '${this.estimator}'`,
        layout,
        "its samples are the ranks' accumulated gradients; with one rank Σ_j‖g_j − ḡ‖² is always 0 — use estimator 'microbatch'",
      );
    }
  }

  protected components(stats: GradientStats): number[] {
    switch (this.estimator) {
      case 'microbatch':
        return [traceSigmaMicrobatch(stats), stats.globalSqNorm];
      case 'per-sample':
        return [traceSigmaPerSample(stats), stats.globalSqNorm];
      case 'paper':
        return [paperVariance(stats) * stats.plan.globalBatch, stats.globalSqNorm];
    }
  }

  protected statistic([num, gSq]: readonly number[], stats: GradientStats): Statistic {
    const variance = this.estimator === 'paper' ? num! / stats.plan.globalBatch : num!;
    return { stat: safeRatio(variance, this.eta * this.eta * gSq!), gradVar: variance };
  }
}

// ---------------------------------------------------------------------------------------------
// The inner-product family (samples: the J ranks, each g_s a mean of m_s = b/J sequences)

export type InnerProductKind = 'inner_product' | 'orthogonality' | 'augmented';

/**
 * - inner_product: T = Var_s(⟨g_s,ḡ⟩)·m_s / (θ²‖ḡ‖⁴)
 * - orthogonality: T = Σ_s‖g_s − proj_ḡ g_s‖²·m_s / ((n−1)·ν²‖ḡ‖²)
 * - augmented:     T = max of the two.
 * With EMA, ‖ḡ‖² is smoothed and then squared for the inner-product denominator.
 */
export class InnerProductSchedule extends AdaptiveSchedule {
  readonly needs: StatisticNeeds;

  constructor(
    opts: AdaptiveOptions,
    readonly kind: InnerProductKind,
    readonly theta: number | null,
    readonly nu: number | null,
  ) {
    super(opts, kind === 'augmented' ? 3 : 2);
    if (kind !== 'orthogonality') positive(`${kind} test`, 'theta', theta ?? NaN);
    if (kind !== 'inner_product') positive(`${kind} test`, 'nu', nu ?? NaN);
    this.needs = { localNorms: kind !== 'inner_product', innerProducts: true, microSamples: false };
  }

  get name(): string {
    return this.kind;
  }

  protected validateTest(layout: BatchLayout): void {
    requireRanks(
      `${this.kind} test`,
      layout,
      'its samples are the ranks’ gradients g_j, and their variance needs n ≥ 2; with 2 ranks it has one degree of freedom and is very noisy',
    );
  }

  protected components(stats: GradientStats): number[] {
    switch (this.kind) {
      case 'inner_product':
        return [innerProductVariance(stats), stats.globalSqNorm];
      case 'orthogonality':
        return [orthogonalVariance(stats), stats.globalSqNorm];
      case 'augmented':
        return [innerProductVariance(stats), orthogonalVariance(stats), stats.globalSqNorm];
    }
  }

  protected statistic(c: readonly number[]): Statistic {
    const gSq = c[c.length - 1]!;
    const ip = (v: number): number => safeRatio(v, this.theta! ** 2 * gSq * gSq);
    const orth = (v: number): number => safeRatio(v, this.nu! ** 2 * gSq);
    switch (this.kind) {
      case 'inner_product':
        return { stat: ip(c[0]!), gradVar: c[0]! };
      case 'orthogonality':
        return { stat: orth(c[0]!), gradVar: c[0]! };
      case 'augmented': {
        const tIp = ip(c[0]!);
        const tOrth = orth(c[1]!);
        return tIp >= tOrth ? { stat: tIp, gradVar: c[0]! } : { stat: tOrth, gradVar: c[1]! };
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Coordinate-wise norm test (experimental)

/**
 * T = q-quantile over coordinates of Var_i/(η² ḡ_i²). The quantile (without η) is computed by the
 * schedule's own statistics collector (CoordinateCollector in batch/coordinate.ts), which the engine
 * feeds every micro-step gradient; it arrives as stats.collected.
 */
export class CoordinateNormSchedule extends AdaptiveSchedule {
  readonly name = 'coordinate';
  readonly needs: StatisticNeeds = { localNorms: false, innerProducts: false, microSamples: true };
  readonly collector: CoordinateCollector;

  constructor(
    opts: AdaptiveOptions,
    readonly eta: number,
    coordinate: { quantile: number; threshold: number },
  ) {
    super(opts, 1);
    positive('coordinate test', 'eta', eta);
    if (!(coordinate.quantile > 0 && coordinate.quantile <= 1)) throw new Error(`coordinate test: quantile must be in (0, 1], got ${coordinate.quantile}`);
    if (!(coordinate.threshold >= 0)) throw new Error(`coordinate test: threshold must be ≥ 0, got ${coordinate.threshold}`);
    this.collector = new CoordinateCollector(coordinate);
  }

  protected validateTest(): void {}

  protected components(stats: GradientStats): number[] {
    return [required(stats, 'collected', 'coordinate test')];
  }

  protected statistic([q]: readonly number[]): Statistic {
    return { stat: q! / (this.eta * this.eta), gradVar: null };
  }
}

// ---------------------------------------------------------------------------------------------
// Gradient-noise-scale schedule

/**
 * b = clamp(c·B_simple) with B_simple = EMA(tr Σ̂)/EMA(‖G‖²) from the two-batch estimates (smoothed
 * separately; `ema` null means the single-step ratio). Only ever increases, so the comparison is with
 * the current target rather than the realized batch. Not estimable (no decision) while the smoothed
 * ‖G‖² ≤ 0.
 */
export class NoiseScaleSchedule extends AdaptiveSchedule {
  readonly name = 'gns';
  readonly needs: StatisticNeeds;

  constructor(
    opts: AdaptiveOptions,
    readonly multiplier: number,
    readonly source: NoiseScaleSource = 'micro',
  ) {
    super(opts, 2);
    positive('gns schedule', 'multiplier', multiplier);
    this.needs = { localNorms: source === 'rank', innerProducts: false, microSamples: source === 'micro' };
  }

  protected validateTest(layout: BatchLayout): void {
    if (this.source === 'rank') requireRanks("gns schedule with source 'rank'", layout, 'the small batches are the ranks’ gradients');
  }

  protected override reference(_stats: GradientStats, current: number): number {
    return current;
  }

  protected components(stats: GradientStats): number[] {
    const est = twoBatchEstimate(stats, this.source);
    if (est === null) {
      throw new Error(`gns schedule: the step has a single small batch (J=${stats.plan.ranks}, M=${stats.plan.accumSteps}, source '${this.source}'); two are needed`);
    }
    return [est.traceSigma, est.gradSqNorm];
  }

  protected statistic([tr, gSq]: readonly number[]): Statistic {
    if (!(gSq! > 0)) return { stat: null, gradVar: null };
    return { stat: (this.multiplier * Math.max(0, tr!)) / gSq!, gradVar: tr! };
  }
}
