/**
 * The `batch:` section of the training config (snake_case, strict, with defaults), and the factory
 * that turns it into a BatchSchedule. The trainer embeds batchConfigSchema in its own schema (or calls
 * parseBatchConfig), then uses createSchedule, createNoiseScaleTracker, batchLayout and lrMultiplier.
 */
import { z } from 'zod';
import { parseOrThrow } from '../util/errors.js';
import { CoordinateNormSchedule, InnerProductSchedule, NoiseScaleSchedule, NormTestSchedule, type AdaptiveOptions } from './adaptive.js';
import { ConstantSchedule } from './constant.js';
import { LR_SCALINGS, lrScale } from './lr.js';
import { NoiseScaleTracker } from './noise-scale.js';
import { LinearRampSchedule, StagewiseSchedule } from './stagewise.js';
import type { BatchLayout, BatchSchedule } from './types.js';

const posInt = z.number().int().positive();
const nonNegInt = z.number().int().min(0);
const posNum = z.number().positive();

/** Keys every schedule has. */
const common = {
  /** Largest micro batch (sequences) a rank runs at once (memory). */
  max_micro: posInt.default(4),
  /** LR multiplier on a batch change, relative to the initial batch. */
  lr_scaling: z.enum(LR_SCALINGS).default('none'),
  /** The gradient-noise-scale diagnostic logged every step (all schedules). */
  noise_scale: z
    .strictObject({
      beta: z.number().min(0).lt(1).default(0.9),
      source: z.enum(['micro', 'rank']).default('micro'),
    })
    .prefault({}),
};

const emaSchema = z.strictObject({ beta: z.number().gt(0).lt(1) }).nullable();

/** Keys of every adaptive schedule. */
const adaptive = {
  ...common,
  initial: posInt.default(16),
  max: posInt.default(256),
  test_interval: posInt.default(1),
  start_after_samples: nonNegInt.default(0),
  ema: emaSchema.default(null),
  hysteresis: z.number().min(0).default(0),
};

const batchConfigUnion = z
  .discriminatedUnion('schedule', [
    z.strictObject({ schedule: z.literal('constant'), ...common, batch: posInt }),
    z.strictObject({
      schedule: z.literal('stagewise'),
      ...common,
      stages: z.array(z.strictObject({ batch: posInt, fraction: z.number().gt(0).max(1) })).min(1),
    }),
    z.strictObject({ schedule: z.literal('ramp'), ...common, start: posInt, increment: posInt, ramp_samples: nonNegInt, max: posInt }),
    z.strictObject({
      schedule: z.literal('norm'),
      ...adaptive,
      // The batch settles near B_noise·(1−η²)/η²: 0.8 keeps it a little below the noise scale.
      eta: posNum.default(0.8),
      estimator: z.enum(['microbatch', 'per-sample', 'paper']).default('microbatch'),
    }),
    z.strictObject({ schedule: z.literal('inner_product'), ...adaptive, theta: posNum }),
    z.strictObject({ schedule: z.literal('orthogonality'), ...adaptive, nu: posNum }),
    z.strictObject({ schedule: z.literal('augmented'), ...adaptive, theta: posNum, nu: posNum }),
    z.strictObject({
      schedule: z.literal('gns'),
      ...adaptive,
      ema: emaSchema.default({ beta: 0.9 }),
      multiplier: posNum.default(1),
      source: z.enum(['micro', 'rank']).default('micro'),
    }),
    z.strictObject({
      schedule: z.literal('coordinate'),
      ...adaptive,
      eta: posNum.default(0.2),
      quantile: z.number().gt(0).max(1).default(0.95),
      threshold: z.number().min(0).default(0.1),
    }),
  ])
  .superRefine((c, ctx) => {
    const issue = (path: Array<string | number>, message: string): void => void ctx.addIssue({ code: 'custom', path, message });
    if ('initial' in c && c.initial > c.max) issue(['initial'], `initial (${c.initial}) must not exceed max (${c.max})`);
    if (c.schedule === 'ramp') {
      if (c.start > c.max) issue(['start'], `start (${c.start}) must not exceed max (${c.max})`);
      else if ((c.max - c.start) % c.increment !== 0) issue(['increment'], `max − start = ${c.max - c.start} must be a multiple of increment (${c.increment})`);
    }
    if (c.schedule === 'stagewise') {
      const sum = c.stages.reduce((s, st) => s + st.fraction, 0);
      if (Math.abs(sum - 1) > 1e-6) issue(['stages'], `stage fractions must sum to 1, got ${sum}`);
      c.stages.forEach((st, i) => {
        if (i > 0 && st.batch < c.stages[i - 1]!.batch) issue(['stages', i, 'batch'], `batch ${st.batch} is smaller than the previous stage's ${c.stages[i - 1]!.batch} (the batch never decreases)`);
      });
    }
  });

/**
 * The `batch:` section. `schedule` defaults to 'norm' (the method adabatch exists for), and a missing
 * section means `{ schedule: 'norm' }` with every default, so `--set batch.eta=0.15` works alone.
 */
export const batchConfigSchema = z.preprocess((v) => {
  if (v === undefined) return { schedule: 'norm' };
  if (v !== null && typeof v === 'object' && !Array.isArray(v) && !('schedule' in v)) return { schedule: 'norm', ...v };
  return v;
}, batchConfigUnion);

export type BatchConfig = z.output<typeof batchConfigUnion>;
/** A `batch:` section as written (before defaults); `schedule` may be omitted (→ 'norm'). */
export type BatchConfigInput = z.input<typeof batchConfigUnion> | Omit<Extract<z.input<typeof batchConfigUnion>, { schedule: 'norm' }>, 'schedule'>;
export const SCHEDULE_NAMES = ['constant', 'stagewise', 'ramp', 'norm', 'inner_product', 'orthogonality', 'augmented', 'gns', 'coordinate'] as const;

/** Validates a raw `batch:` section; a UserError names every offending field as batch.<key>. */
export function parseBatchConfig(raw: unknown): BatchConfig {
  return parseOrThrow(batchConfigSchema, raw, 'batch config', 'batch');
}

/** The batch of the first step (b₀ of the LR scaling rule). */
export function initialBatchOf(cfg: BatchConfig): number {
  switch (cfg.schedule) {
    case 'constant':
      return cfg.batch;
    case 'stagewise':
      return cfg.stages[0]!.batch;
    case 'ramp':
      return cfg.start;
    default:
      return cfg.initial;
  }
}

/** The largest target batch the schedule can ask for. */
export function maxBatchOf(cfg: BatchConfig): number {
  switch (cfg.schedule) {
    case 'constant':
      return cfg.batch;
    case 'stagewise':
      return Math.max(...cfg.stages.map((s) => s.batch));
    default:
      return cfg.max;
  }
}

/** The layout the trainer passes to validate() and planBatch(). */
export function batchLayout(cfg: BatchConfig, ranks: number): BatchLayout {
  return { ranks, maxMicroBatch: cfg.max_micro, maxBatch: maxBatchOf(cfg) };
}

/** LR multiplier for a step of global batch `batch` under cfg.lr_scaling (relative to the initial batch). */
export function lrMultiplier(cfg: BatchConfig, batch: number): number {
  return lrScale(cfg.lr_scaling, batch, initialBatchOf(cfg));
}

/** The LR rule of cfg as a function of the step's global batch (what the trainer's LoopConfig.lrScale takes). */
export function lrScaleFor(raw: BatchConfigInput | BatchConfig): (globalBatch: number) => number {
  const cfg = parseBatchConfig(raw);
  const b0 = initialBatchOf(cfg);
  return (globalBatch: number) => lrScale(cfg.lr_scaling, globalBatch, b0);
}

export interface ScheduleContext {
  /** Total samples of the run; required by `stagewise`. */
  sampleBudget?: number;
}

/** Builds the schedule of a `batch:` section (raw or already parsed). Call validate(layout) before use. */
export function createSchedule(raw: BatchConfigInput | BatchConfig, ctx: ScheduleContext = {}): BatchSchedule {
  const cfg = parseBatchConfig(raw);
  if (cfg.schedule === 'constant') return new ConstantSchedule(cfg.batch);
  if (cfg.schedule === 'stagewise') {
    if (ctx.sampleBudget === undefined) throw new Error('createSchedule: the stagewise schedule needs the sample budget (ctx.sampleBudget)');
    return new StagewiseSchedule(cfg.stages, ctx.sampleBudget);
  }
  if (cfg.schedule === 'ramp') return new LinearRampSchedule(cfg.start, cfg.increment, cfg.ramp_samples, cfg.max);
  const opts: AdaptiveOptions = {
    initial: cfg.initial,
    max: cfg.max,
    testInterval: cfg.test_interval,
    startAfterSamples: cfg.start_after_samples,
    ema: cfg.ema,
    hysteresis: cfg.hysteresis,
  };
  switch (cfg.schedule) {
    case 'norm':
      return new NormTestSchedule(opts, cfg.eta, cfg.estimator);
    case 'inner_product':
      return new InnerProductSchedule(opts, 'inner_product', cfg.theta, null);
    case 'orthogonality':
      return new InnerProductSchedule(opts, 'orthogonality', null, cfg.nu);
    case 'augmented':
      return new InnerProductSchedule(opts, 'augmented', cfg.theta, cfg.nu);
    case 'gns':
      return new NoiseScaleSchedule(opts, cfg.multiplier, cfg.source);
    case 'coordinate':
      return new CoordinateNormSchedule(opts, cfg.eta, { quantile: cfg.quantile, threshold: cfg.threshold });
  }
}

/** The per-step noise-scale diagnostic configured by cfg.noise_scale (independent of the schedule). */
export function createNoiseScaleTracker(raw: BatchConfigInput | BatchConfig): NoiseScaleTracker {
  const cfg = parseBatchConfig(raw);
  return new NoiseScaleTracker({ beta: cfg.noise_scale.beta, source: cfg.noise_scale.source });
}
