/**
 * The contract between batch-size schedules and the training loop. Pure data: no backends, no I/O.
 * Notation follows ../shared/adaptive-batch-spec.md: J ranks, M micro-steps of m sequences each,
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
 * the same numbers and reaches the same decision. All from raw (unclipped) gradients, float64.
 */
export interface GradientStats {
  plan: BatchPlan;
  /** Σ_{j,t} ‖g_{j,t}‖² over the J·M micro-step gradients (each the mean over its m sequences). */
  microSqNormSum: number;
  /** Σ_j ‖g_j‖² over the ranks' accumulated local gradients; null when not measured. */
  localSqNormSum: number | null;
  /** ‖ḡ‖² of the global gradient. */
  globalSqNorm: number;
  /** Σ_j ⟨g_j, ḡ⟩ (inner-product family); null when not measured. */
  dotSum: number | null;
  /** Σ_j ⟨g_j, ḡ⟩² (inner-product family); null when not measured. */
  dotSqSum: number | null;
  /**
   * Coordinate-wise statistic for the experimental coordinate norm test, computed by the trainer with
   * batch/coordinate.ts from per-coordinate sums; null when not measured.
   */
  coordinateStat: number | null;
}

/** What a schedule needs measured (the trainer measures nothing more than this). */
export interface StatisticNeeds {
  /** Σ‖g_j‖² of accumulated local gradients (per-sample and paper estimators). */
  localNorms: boolean;
  /** ⟨g_j, ḡ⟩ after the reduction (inner-product, orthogonality, augmented tests). */
  innerProducts: boolean;
  /** Per-coordinate sums of squares (coordinate-wise norm test). */
  coordinates: boolean;
  /** Micro-step samples are the estimator's samples, so J·M must be ≥ 2. */
  microSamples: boolean;
}

/** One step's decision, logged in metrics.jsonl. */
export interface ScheduleDecision {
  /** The test statistic T (null when no test ran this step). */
  testStat: number | null;
  /** The tr(Σ) estimate used by the test (null when none). */
  gradVar: number | null;
  /** true when the test passed (batch kept), false when it failed (batch grows), null when not tested. */
  testPassed: boolean | null;
  /** Target global batch for the next step (before the planner rounds it). */
  nextBatch: number;
}

/** JSON-serialisable schedule state, saved in checkpoints. */
export type ScheduleState = Record<string, unknown>;

export interface BatchSchedule {
  readonly name: string;
  readonly needs: StatisticNeeds;
  /** Throws an Error explaining why, when the schedule cannot work in this layout. */
  validate(layout: BatchLayout): void;
  /** Target global batch for the step about to run, given the samples already seen. */
  targetBatch(samplesSeen: number): number;
  /** Told the statistics of the step just taken (samplesSeen counts it); returns what to log. */
  observe(stats: GradientStats, samplesSeen: number): ScheduleDecision;
  state(): ScheduleState;
  restore(state: ScheduleState): void;
}
