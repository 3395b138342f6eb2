/**
 * The training loop. Each optimizer step:
 *   1. asks the batch schedule for a target global batch and realizes it as J ranks × M micro-steps
 *      × m sequences (the planner), shortening the step that would cross the sample budget;
 *   2. runs the micro-steps on this rank's contiguous share of the step's samples, accumulating the
 *      gradient and Σ‖g_t‖² as it goes;
 *   3. reduces gradients and statistics across ranks (one small float64 reduction for all scalars);
 *   4. skips the step if anything is non-finite (stopping after max_nonfinite in a row), otherwise
 *      tells the schedule, clips, and applies AdamW at the learning rate of the LR schedule;
 *   5. writes a metrics row, evaluates every `eval.every_samples`, and reports progress.
 * Samples are addressed by global index, so changing m or M between steps neither skips nor repeats
 * data, and every rank derives its share from the same numbers.
 */
import { planBatch } from '../batch/planner.js';
import type { BatchLayout, BatchPlan, BatchSchedule, GradientStats, ScheduleDecision } from '../batch/types.js';
import { shardStep, type SampleRange } from '../data/sampler.js';
import { learningRate, type LrConfig } from '../optim/lr.js';
import type { StepScalars, TrainEngine } from '../parallel/engine.js';
import { type CollectiveStats, collectiveSeconds } from '../parallel/group.js';
import { secondsClock, Spans } from '../util/spans.js';
import type { StepMetrics } from './step-metrics.js';

export interface WindowSource {
  readonly seqLen: number;
  /** count windows of seqLen+1 tokens for global sample indices [start, start+count). */
  windows(start: number, count: number): Int32Array;
  /** A mixture's tokens from each source in samples [0, samples), written to every metrics row. */
  tokensBySource?(samples: number): Record<string, number>;
}

export interface LoopConfig {
  seqLen: number;
  budgetSamples: number;
  lr: LrConfig;
  /** Learning-rate multiplier for a global batch (the scaling rule relative to the initial batch). */
  lrScale: (globalBatch: number) => number;
  clip: number;
  maxMicroBatch: number;
  maxBatch: number;
  evalEverySamples: number;
  evalWindows: number;
  maxNonFinite: number;
  /**
   * Measure Σ‖g_j‖² even when the schedule does not need it: the noise-scale diagnostic with
   * per-rank small batches (batch.noise_scale.source: rank).
   */
  localNorms?: boolean;
  /**
   * Plan batches as if for this many ranks (default: the group's size). One rank with planRanks = J
   * runs exactly the batch sequence of a J-rank run, as J·M micro-steps: for equivalence checks and
   * for debugging a distributed run on one process.
   */
  planRanks?: number;
}

/** Where the loop starts (zero for a fresh run; a checkpoint's counters on resume). */
export interface LoopState {
  step: number;
  samples: number;
  tokens: number;
  skippedInARow: number;
  elapsedS: number;
}

export interface StepRecord {
  row: StepMetrics;
  plan: BatchPlan;
  decision: ScheduleDecision | null;
  /** Some rank asked to stop: the loop ends after this step on every rank. */
  stop: boolean;
  /** Some rank found a checkpoint due: every rank checkpoints after this step. */
  checkpoint: boolean;
}

export interface LoopHooks {
  /** Called after every step's metrics row is complete (write it, update progress…). */
  onStep?(rec: StepRecord, state: LoopState): void | Promise<void>;
  /**
   * Polled before each step's reduction: true asks to stop. The requests of all ranks are summed in
   * the step's scalar reduction, so every rank stops after the same step.
   */
  shouldStop?(): boolean;
  /** Polled likewise: true asks for a checkpoint after this step (agreed across ranks the same way). */
  checkpointDue?(state: LoopState): boolean;
  /** Noise-scale tracker fed every step (for every schedule). */
  noiseScale?(stats: GradientStats): number | null;
  log?(message: string): void;
  /** Measures the loop's own per-step overhead (data, schedule, metrics) when given. */
  clock?: () => number;
}

export class NonFiniteError extends Error {}

export class Trainer {
  readonly state: LoopState;
  /** The fixed validation windows, read when the trainer is built (a problem shows before any step). */
  private readonly valWindows: Int32Array | null;
  private lastEvalBucket: number;

  constructor(
    readonly engine: TrainEngine,
    readonly schedule: BatchSchedule,
    readonly train: WindowSource,
    readonly validation: WindowSource | null,
    readonly cfg: LoopConfig,
    start?: LoopState,
  ) {
    this.state = start ? { ...start } : { step: 0, samples: 0, tokens: 0, skippedInARow: 0, elapsedS: 0 };
    this.lastEvalBucket = this.evalBucket(this.state.samples);
    this.valWindows = validation ? validation.windows(0, cfg.evalWindows) : null;
    if (schedule.collector) engine.registerCollector(schedule.collector);
  }

  get layout(): BatchLayout {
    return { ranks: this.cfg.planRanks ?? this.engine.group.size, maxMicroBatch: this.cfg.maxMicroBatch, maxBatch: this.cfg.maxBatch };
  }

  done(): boolean {
    return this.state.samples >= this.cfg.budgetSamples;
  }

  /** Runs until the budget is spent or hooks.shouldStop() says so. */
  async run(hooks: LoopHooks = {}): Promise<void> {
    while (!this.done()) {
      const rec = await this.step(hooks);
      if (rec.stop) break;
      // Let the event loop run (signals, worker messages): a step's awaits are only microtasks.
      await new Promise<void>((resolve) => setImmediate(resolve));
    }
  }

  /** One optimizer step (or a skipped one when the gradient is non-finite). */
  async step(hooks: LoopHooks = {}): Promise<StepRecord> {
    const clock = hooks.clock ?? secondsClock;
    // overhead: the loop's own work; decide: the schedule and noise-scale updates (also overhead).
    const spans = new Spans(['overhead', 'decide', 'eval', 'hooks'], clock);
    const t0 = clock();
    const st = this.state;
    const { seqLen } = this.cfg;
    const group = this.engine.group;
    const comm0 = collectiveSeconds(group);
    const coll0 = group.collectiveStats?.();

    const { plan, stepSamples, shortened, share } = spans.time('overhead', () => this.planStep());
    await this.runMicroSteps(share, stepSamples, spans);
    const after: LoopState = { ...st, step: st.step + 1, samples: st.samples + stepSamples, tokens: st.tokens + stepSamples * seqLen };
    const flags = [hooks.shouldStop?.() ? 1 : 0, hooks.checkpointDue?.(after) ? 1 : 0];
    const localNorms = this.schedule.needs.localNorms || (this.cfg.localNorms ?? false);
    const scalars = await this.engine.finishStep({ localNorms, innerProducts: this.schedule.needs.innerProducts, microBatch: plan.microBatch, flags });

    const lr = spans.time('overhead', () => learningRate(this.cfg.lr, { samples: st.samples, seqLen, batch: stepSamples }, this.cfg.budgetSamples) * this.cfg.lrScale(stepSamples));
    let decision: ScheduleDecision | null = null;
    let noiseScale: number | null = null;
    if (scalars.finite) {
      const stats = this.gradientStats(plan, scalars, share.length);
      spans.time('decide', () => {
        noiseScale = hooks.noiseScale?.(stats) ?? null;
        // A shortened last step is not a test sample: its layout differs from the plan's.
        if (!shortened) decision = this.schedule.observe(stats, st.samples + stepSamples);
      });
      await this.engine.update(lr, this.cfg.clip);
      st.skippedInARow = 0;
    } else {
      st.skippedInARow++;
      hooks.log?.(`step ${st.step + 1}: non-finite loss or gradient (loss sum ${scalars.lossSum}, ‖g‖² ${scalars.globalSqNorm}); step skipped (${st.skippedInARow} in a row)`);
    }
    st.step++;
    st.samples += stepSamples;
    st.tokens += stepSamples * seqLen;
    const stepTime = clock() - t0;
    st.elapsedS += stepTime;

    const row = spans.time('overhead', () => this.metricsRow({ plan, stepSamples, accumSteps: share.length, lr, scalars, decision, noiseScale, stepTime }));
    const bucket = this.evalBucket(st.samples);
    if (this.validation && (bucket > this.lastEvalBucket || this.done())) {
      this.lastEvalBucket = bucket;
      const v = await spans.timeAsync('eval', () => this.evaluate());
      st.elapsedS += spans.seconds.eval;
      Object.assign(row, { val_loss: v, val_ppl: Math.exp(v), eval_s: spans.seconds.eval, elapsed_s: st.elapsedS });
    }
    row.overhead_s = spans.seconds.overhead + spans.seconds.decide;
    // Statistics for the batch test (norms beyond what clipping needs) plus the decision itself.
    row.stats_s = scalars.statsSeconds + spans.seconds.decide;
    if (comm0 !== null) row.comm_s = collectiveSeconds(group)! - comm0;
    if (coll0) Object.assign(row, this.collectiveSeconds(coll0));
    const rec: StepRecord = { row, plan, decision, stop: scalars.flags[0]! > 0, checkpoint: scalars.flags[1]! > 0 };
    // Metrics and progress output belong to the run's wall clock too.
    await spans.timeAsync('hooks', async () => hooks.onStep?.(rec, st));
    st.elapsedS += spans.seconds.hooks;
    if (st.skippedInARow >= this.cfg.maxNonFinite) {
      throw new NonFiniteError(`stopping: ${st.skippedInARow} consecutive steps had a non-finite loss or gradient (last at step ${st.step}); try a lower learning rate or stronger clipping`);
    }
    return rec;
  }

  /**
   * The step's plan: the schedule's target realized as J × M × m, shortened to land on the sample
   * budget, and this rank's share of the step's samples. Every rank runs the same number of
   * micro-steps (some possibly empty on a shortened last step), so per-micro-step collectives stay
   * matched across ranks.
   */
  private planStep(): { plan: BatchPlan; stepSamples: number; shortened: boolean; share: SampleRange[] } {
    const st = this.state;
    const group = this.engine.group;
    const target = this.schedule.targetBatch(st.samples);
    let plan = planBatch(target, this.layout, this.schedule.needs.microSamples);
    const remaining = this.cfg.budgetSamples - st.samples;
    const shortened = plan.globalBatch > remaining;
    const stepSamples = Math.min(plan.globalBatch, remaining);
    if (shortened) plan = { ...plan, globalBatch: stepSamples };
    const share = shardStep(st.samples, stepSamples, group.size, plan.microBatch)[group.rank]!.micro;
    return { plan, stepSamples, shortened, share };
  }

  /** This rank's micro-steps; reading the data counts as the loop's overhead. */
  private async runMicroSteps(share: readonly SampleRange[], stepSamples: number, spans: Spans<'overhead'>): Promise<void> {
    const { seqLen } = this.cfg;
    const J = this.engine.group.size;
    this.engine.beginStep();
    for (const micro of share) {
      if (micro.count === 0) {
        // Lockstep engines (FSDP) must join every collective: a zero-weight stand-in sample.
        if (this.engine.lockstep) await this.engine.microStep(this.train.windows(this.state.samples, 1), 1, seqLen, 0, true);
        continue;
      }
      const windows = spans.time('overhead', () => this.train.windows(micro.start, micro.count));
      // Weight m_t·J/b: after the cross-rank average the accumulator is the mean over all b samples.
      await this.engine.microStep(windows, micro.count, seqLen, (micro.count * J) / stepSamples);
    }
  }

  private metricsRow(s: { plan: BatchPlan; stepSamples: number; accumSteps: number; lr: number; scalars: StepScalars; decision: ScheduleDecision | null; noiseScale: number | null; stepTime: number }): StepMetrics {
    const st = this.state;
    return {
      step: st.step,
      samples: st.samples,
      tokens: st.tokens,
      ...(this.train.tokensBySource && { tokens_by_source: this.train.tokensBySource(st.samples) }),
      batch_size: s.stepSamples,
      micro_batch: s.plan.microBatch,
      accum_steps: s.accumSteps,
      ranks: this.engine.group.size,
      lr: s.lr,
      loss: s.scalars.lossSum / s.scalars.tokens,
      grad_norm: Math.sqrt(s.scalars.globalSqNorm),
      grad_sq_norm: s.scalars.globalSqNorm,
      test_stat: s.decision?.testStat ?? null,
      grad_var: s.decision?.gradVar ?? null,
      noise_scale: s.noiseScale,
      test_passed: s.decision?.testPassed ?? null,
      next_batch: s.decision?.nextBatch ?? null,
      skipped: !s.scalars.finite,
      tok_per_s: (s.stepSamples * this.cfg.seqLen) / s.stepTime,
      step_time_s: s.stepTime,
      elapsed_s: st.elapsedS,
    };
  }

  /** Seconds per collective since `before`, for those this step used: DDP's all-reduce, FSDP's gathers and scatters. */
  private collectiveSeconds(before: CollectiveStats): Pick<StepMetrics, 'allreduce_s' | 'allgather_s' | 'reduce_scatter_s'> {
    const now = this.engine.group.collectiveStats!();
    const out: Pick<StepMetrics, 'allreduce_s' | 'allgather_s' | 'reduce_scatter_s'> = {};
    for (const [k, field] of [['allReduce', 'allreduce_s'], ['allGather', 'allgather_s'], ['reduceScatter', 'reduce_scatter_s']] as const) {
      if (now[k].count > before[k].count) out[field] = now[k].seconds - before[k].seconds;
    }
    return out;
  }

  /** Mean validation loss over the fixed validation subset. */
  async evaluate(): Promise<number> {
    if (!this.valWindows) throw new Error('no validation data');
    const n = this.cfg.evalWindows;
    const group = this.engine.group;
    if (group.size > 1 && !this.engine.lockstep) {
      // DDP: each rank evaluates its share of the windows; one scalar reduction sums them.
      const w = this.cfg.seqLen + 1;
      const [lo, hi] = [Math.floor((n * group.rank) / group.size), Math.floor((n * (group.rank + 1)) / group.size)];
      const part = hi > lo ? await this.engine.evalLoss(this.valWindows.subarray(lo * w, hi * w), hi - lo, this.cfg.seqLen, this.cfg.maxMicroBatch) : { lossSum: 0, tokens: 0 };
      const r = await group.allReduceScalars(Float64Array.of(part.lossSum, part.tokens), 'sum');
      return r[0]! / r[1]!;
    }
    const r = await this.engine.evalLoss(this.valWindows, n, this.cfg.seqLen, this.cfg.maxMicroBatch);
    return r.lossSum / r.tokens;
  }

  private evalBucket(samples: number): number {
    return this.cfg.evalEverySamples > 0 ? Math.floor(samples / this.cfg.evalEverySamples) : 0;
  }

  private gradientStats(plan: BatchPlan, s: StepScalars, microSteps: number): GradientStats {
    return {
      // The layout actually run: J ranks of M micro-steps of m (a planRanks run differs from the plan).
      plan: { ...plan, ranks: this.engine.group.size, accumSteps: microSteps },
      microSqNormSum: s.microSqNormSum,
      localSqNormSum: s.localSqNormSum,
      globalSqNorm: s.globalSqNorm,
      dotSum: s.dotSum,
      dotSqSum: s.dotSqSum,
      collected: s.collected,
    };
  }
}
