/**
 * The training loop. Each optimizer step:
 *   1. asks the batch schedule for a target global batch and realizes it as J ranks × M micro-steps
 *      × m sequences (the planner), shortening the step that would cross the sample budget;
 *   2. runs the micro-steps on this rank's contiguous share of the step's samples, accumulating the
 *      gradient and Σ‖g_t‖² as it goes;
 *   3. reduces gradients and statistics across ranks (one small float64 reduction for all scalars);
 *   4. skips the step if anything is non-finite (stopping after max_nonfinite in a row), otherwise
 *      tells the schedule, clips, and applies AdamW at the sample-indexed learning rate;
 *   5. writes a metrics row, evaluates every `eval.every_samples`, and reports progress.
 * Samples are addressed by global index, so changing m or M between steps neither skips nor repeats
 * data, and every rank derives its share from the same numbers.
 */
import { planBatch } from '../batch/planner.js';
import type { BatchLayout, BatchPlan, BatchSchedule, GradientStats, ScheduleDecision } from '../batch/types.js';
import type { MetricsRow } from '../io/metrics.js';
import { learningRate, type LrConfig } from '../optim/lr.js';
import type { StepScalars, TrainEngine } from './engine-api.js';
import { shardStep } from '../data/sampler.js';
import { collectiveSeconds } from '../dist/group.js';

export interface WindowSource {
  readonly seqLen: number;
  /** count windows of seqLen+1 tokens for global sample indices [start, start+count). */
  windows(start: number, count: number): Int32Array;
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
  row: MetricsRow;
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
  private valWindows: Int32Array | null = null;
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
    engine.prepareStatistics?.(schedule.needs);
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
    const clock = hooks.clock ?? (() => performance.now() / 1000);
    const t0 = clock();
    let overhead = 0;
    const st = this.state;
    const { seqLen } = this.cfg;
    const group = this.engine.group;
    const comm0 = collectiveSeconds(group);
    const coll0 = group.collectiveStats?.();

    const target = this.schedule.targetBatch(st.samples);
    let plan = planBatch(target, this.layout, this.schedule.needs.microSamples);
    const remaining = this.cfg.budgetSamples - st.samples;
    const shortened = plan.globalBatch > remaining;
    const stepSamples = Math.min(plan.globalBatch, remaining);
    if (shortened) plan = { ...plan, globalBatch: stepSamples };
    // Every rank runs the same number of micro-steps (some possibly empty on a shortened last step),
    // so per-micro-step collectives stay matched across ranks.
    const share = shardStep(st.samples, stepSamples, group.size, plan.microBatch)[group.rank]!.micro;
    overhead += clock() - t0;

    this.engine.beginStep();
    for (const micro of share) {
      if (micro.count === 0) {
        // Lockstep engines (FSDP) must join every collective: a zero-weight stand-in sample.
        if (this.engine.lockstep) await this.engine.microStep(this.train.windows(st.samples, 1), 1, seqLen, 0, true);
        continue;
      }
      const td = clock();
      const windows = this.train.windows(micro.start, micro.count);
      overhead += clock() - td;
      // Weight m_t·J/b: after the cross-rank average the accumulator is the mean over all b samples.
      await this.engine.microStep(windows, micro.count, seqLen, (micro.count * group.size) / stepSamples);
    }
    const after: LoopState = { ...st, step: st.step + 1, samples: st.samples + stepSamples, tokens: st.tokens + stepSamples * seqLen };
    const flags = [hooks.shouldStop?.() ? 1 : 0, hooks.checkpointDue?.(after) ? 1 : 0];
    const coord = this.schedule.needs.coordinates ? (this.schedule as { coordinate?: { quantile: number; threshold: number } }).coordinate : undefined;
    const scalars = await this.engine.finishStep({ localNorms: this.schedule.needs.localNorms, innerProducts: this.schedule.needs.innerProducts, flags, ...(coord && { coordinates: { ...coord, microBatch: plan.microBatch } }) });

    const ts = clock();
    const lr = learningRate(this.cfg.lr, st.samples, this.cfg.budgetSamples) * this.cfg.lrScale(stepSamples);
    const stats = this.gradientStats(plan, scalars, share.length);
    let decision: ScheduleDecision | null = null;
    let noiseScale: number | null = null;
    overhead += clock() - ts;
    let decideTime = 0;

    if (scalars.finite) {
      const tsched = clock();
      noiseScale = hooks.noiseScale?.(stats) ?? null;
      // A shortened last step is not a test sample: its layout differs from the plan's.
      if (!shortened) decision = this.schedule.observe(stats, st.samples + stepSamples);
      decideTime = clock() - tsched;
      overhead += decideTime;
      this.engine.update(lr, this.cfg.clip);
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

    const tm = clock();
    const row: MetricsRow = {
      step: st.step,
      samples: st.samples,
      tokens: st.tokens,
      batch_size: stepSamples,
      micro_batch: plan.microBatch,
      accum_steps: share.length,
      ranks: group.size,
      lr,
      loss: scalars.lossSum / scalars.tokens,
      grad_norm: Math.sqrt(scalars.globalSqNorm),
      grad_sq_norm: scalars.globalSqNorm,
      test_stat: decision?.testStat ?? null,
      grad_var: decision?.gradVar ?? null,
      noise_scale: noiseScale,
      test_passed: decision?.testPassed ?? null,
      next_batch: decision?.nextBatch ?? null,
      skipped: !scalars.finite,
      tok_per_s: (stepSamples * seqLen) / stepTime,
      step_time_s: stepTime,
      elapsed_s: st.elapsedS,
    };
    const bucket = this.evalBucket(st.samples);
    if (this.validation && (bucket > this.lastEvalBucket || this.done())) {
      this.lastEvalBucket = bucket;
      overhead += clock() - tm;
      const te = clock();
      const v = await this.evaluate();
      const evalTime = clock() - te;
      st.elapsedS += evalTime;
      row.val_loss = v;
      row.val_ppl = Math.exp(v);
      row.eval_s = evalTime;
      row.elapsed_s = st.elapsedS;
    } else {
      overhead += clock() - tm;
    }
    row.overhead_s = overhead;
    // Statistics for the batch test (norms beyond what clipping needs) plus the decision itself.
    row.stats_s = scalars.statsSeconds + decideTime;
    // Seconds in collectives (waiting for peers included) where the group measures them.
    if (comm0 !== null) row.comm_s = collectiveSeconds(group)! - comm0;
    if (coll0) {
      // Per collective, where they were used: DDP's gradient all-reduce, FSDP's gathers and scatters.
      const coll = group.collectiveStats!();
      for (const [k, field] of [['allReduce', 'allreduce_s'], ['allGather', 'allgather_s'], ['reduceScatter', 'reduce_scatter_s']] as const) {
        const d = coll[k].seconds - coll0[k].seconds;
        if (coll[k].count > coll0[k].count) row[field] = d;
      }
    }
    const rec: StepRecord = { row, plan, decision, stop: scalars.flags[0]! > 0, checkpoint: scalars.flags[1]! > 0 };
    const th = clock();
    await hooks.onStep?.(rec, st);
    // Metrics and progress output belong to the run's wall clock too.
    st.elapsedS += clock() - th;
    if (st.skippedInARow >= this.cfg.maxNonFinite) {
      throw new NonFiniteError(`stopping: ${st.skippedInARow} consecutive steps had a non-finite loss or gradient (last at step ${st.step}); try a lower learning rate or stronger clipping`);
    }
    return rec;
  }

  /** Mean validation loss over the fixed validation subset. */
  async evaluate(): Promise<number> {
    if (!this.validation) throw new Error('no validation data');
    const n = this.cfg.evalWindows;
    this.valWindows ??= this.validation.windows(0, n);
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
      coordinateStat: s.coordinateStat,
    };
  }
}
