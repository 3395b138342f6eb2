/**
 * The contract between batch-size schedules and the training loop. Pure data: no backends, no I/O.
 * Notation follows docs/adaptive-batch-spec.md: J ranks, M micro-steps of m sequences each,
 * global batch b = J·M·m; g_{j,t} a micro-step gradient, g_j a rank's accumulated gradient,
 * ḡ the global gradient.
 */

/** How a global batch is realized. */
export interface BatchPlan {
  /** b = ranks · accumSteps · microBatch, in sequences. */
  globalBatch: number;
  /** m: sequences per micro-step on each rank. */
  microBatch: number;
  /** M: micro-steps per optimizer step on each rank. */
  accumSteps: number;
  /** J: data-parallel ranks. */
  ranks: number;
}

/** The data-parallel layout a schedule runs in. */
export interface BatchLayout {
  ranks: number;
  /** Largest micro batch a rank can hold (memory). */
  maxMicroBatch: number;
  /** Largest global batch allowed. */
  maxBatch: number;
}

/**
 * Gradient statistics of one optimizer step, already reduced across ranks, so that every rank sees
 * the same numbers and reaches the same decision. All from raw (unclipped, not LR-scaled) gradients,
 * accumulated in float64. Every gradient here is a mean over its sequences (not a sum), so that
 * g_j = (1/M) Σ_t g_{j,t} and ḡ = (1/J) Σ_j g_j.
 */
export interface GradientStats {
  /** The plan the step actually ran with (J, M, m and b = J·M·m). */
  plan: BatchPlan;
  /**
   * Σ_{j,t} ‖g_{j,t}‖² over the J·M micro-step gradients (each the mean over its m sequences).
   * Rank j takes ‖g_{j,t}‖² of each micro-step's gradient as it is produced, before it is added into
   * the accumulator (FSDP: before that micro-step's reduce-scatter), sums over its M micro-steps, and
   * the J partial sums are then summed across ranks. Always measured (the noise-scale log needs it).
   */
  microSqNormSum: number;
  /**
   * Σ_j ‖g_j‖² over the ranks' accumulated local gradients g_j = (1/M) Σ_t g_{j,t}: each rank's
   * squared norm taken before the gradient all-reduce, then summed across ranks; null when not
   * measured (needs.localNorms false).
   */
  localSqNormSum: number | null;
  /** ‖ḡ‖² of the global gradient ḡ = (1/J) Σ_j g_j (after the all-reduce; under FSDP the sum over ranks of ‖shard‖²). */
  globalSqNorm: number;
  /**
   * Σ_j ⟨g_j, ḡ⟩ (inner-product family): each rank's local dot product with the reduced ḡ, summed
   * across ranks; null when not measured. Equal to J·‖ḡ‖² up to rounding.
   */
  dotSum: number | null;
  /** Σ_j ⟨g_j, ḡ⟩² (inner-product family): each rank squares its own dot product, then summed across ranks; null when not measured. */
  dotSqSum: number | null;
  /**
   * What the schedule's statistics collector computed this step (the same on every rank), or null
   * when the schedule has none. The coordinate-wise test's collector (batch/coordinate.ts) gives a
   * quantile of the per-coordinate ratios Var_i/ḡ_i², in samples, without η.
   */
  collected: number | null;
}

/** What a schedule needs measured (the trainer measures nothing more than this). */
export interface StatisticNeeds {
  /** Σ‖g_j‖² of accumulated local gradients (per-sample and paper estimators). */
  localNorms: boolean;
  /** ⟨g_j, ḡ⟩ after the reduction (inner-product, orthogonality, augmented tests). */
  innerProducts: boolean;
  /** Micro-step samples are the estimator's samples, so J·M must be ≥ 2. */
  microSamples: boolean;
}

/**
 * Per-step statistics beyond the scalar norms, for a schedule that needs them (the coordinate-wise
 * test). The schedule owns the collector; the engine feeds it every micro-step gradient and, after
 * the gradient reduction, lets it reduce its own sums across ranks and compute its statistic, which
 * reaches the schedule as GradientStats.collected. Engines that cannot show it full micro-step
 * gradients (FSDP) refuse it.
 */
export interface GradientCollector {
  /** Called once by the engine, before the first step: the sizes of the units whose gradients it will see. */
  attach(unitSizes: readonly number[]): void;
  beginStep(): void;
  /** One micro-step's gradient of one unit (a host copy; the mean over its m sequences), before it is weighted and accumulated. */
  addMicroGradient(unit: number, grad: Float32Array): void;
  /** On every rank after the gradient reduction (a collective: every rank calls it every step). */
  finishStep(step: CollectorStep): Promise<number | null>;
}

/** What a collector gets to finish a step. */
export interface CollectorStep {
  /** J: data-parallel ranks. */
  ranks: number;
  /** M: this rank's micro-steps this step. */
  microSteps: number;
  /** m: sequences per micro-step. */
  microBatch: number;
  /** ‖ḡ‖² of the reduced gradient. */
  globalSqNorm: number;
  /** Element-wise sums over ranks (one all-reduce; identity on one rank). */
  allReduceSum(values: Float64Array): Promise<Float64Array>;
  /** The reduced gradient ḡ of one unit, on the host. */
  reducedGradient(unit: number): Float32Array;
}

/** One step's decision, logged in metrics.jsonl. */
export interface ScheduleDecision {
  /** The test statistic T (null when no test ran this step). */
  testStat: number | null;
  /**
   * The variance estimate in the numerator of T, after any smoothing (null when no test ran):
   * tr(Σ̂) for the norm test's `microbatch` and `per-sample` estimators, V for `paper`,
   * Var_s(⟨g_s,ḡ⟩)·m_s for the inner-product test, the orthogonal-component variance for the
   * orthogonality test (for the augmented test: that of the larger statistic), tr(Σ̂) for `gns`, and
   * null for the coordinate test.
   */
  gradVar: number | null;
  /** true when the test passed (batch kept), false when it failed (batch grows), null when not tested. */
  testPassed: boolean | null;
  /** Target global batch for the next step (before the planner rounds it). */
  nextBatch: number;
  /** Why no test ran, when that is worth a log line (e.g. 'at max batch: testing stopped'). Optional. */
  note?: string;
}

/** JSON-serialisable schedule state, saved in checkpoints. */
export type ScheduleState = Record<string, unknown>;

export interface BatchSchedule {
  readonly name: string;
  readonly needs: StatisticNeeds;
  /** Extra per-step statistics the schedule needs (absent for most). */
  readonly collector?: GradientCollector;
  /** Throws an Error explaining why, when the schedule cannot work in this layout. */
  validate(layout: BatchLayout): void;
  /** Target global batch for the step about to run, given the samples already seen. */
  targetBatch(samplesSeen: number): number;
  /** Told the statistics of the step just taken (samplesSeen counts it); returns what to log. */
  observe(stats: GradientStats, samplesSeen: number): ScheduleDecision;
  state(): ScheduleState;
  restore(state: ScheduleState): void;
}
