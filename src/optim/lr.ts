/**
 * Learning-rate schedules, indexed by how far the run is (not by steps), so they survive batch-size
 * changes and resumes. Linear warmup over `warmup` samples, then
 *   cosine:   from lr down to min_lr at the sample budget (the paper's schedule);
 *   constant: lr;
 *   wsd:      warmup–stable–decay: lr until the last `decay` fraction of the budget, then linear to min_lr;
 *   power:    the Power scheduler, a power law in the tokens seen (below).
 *
 * The Power scheduler: Shen et al., "Power Scheduler: A Batch Size and Token Number Agnostic Learning
 * Rate Scheduler" (arXiv 2408.13359, 2024), as IBM implements it (dolomite-engine,
 * dolomite_engine/optimization/scheduler.py: PowerScheduler, and ExponentialScheduler for the decay).
 * The paper fits the best constant rate of a WSD run over T tokens at batch β (sequences) as
 * η_opt ≈ β·a·T^b, and turns it into a schedule in the tokens seen n:
 *     η_power(n) = min(lr, β·a·n^b)              a = 4, b = −0.51 (the paper's fit, with μP)
 *     n < N_w:            (n/N_w)·η_power(N_w)   linear warmup to where the power law takes over
 *     N_w ≤ n ≤ N − N_d:  η_power(n)
 *     n > N − N_d:        from η_power(N − N_d) down to min_lr over the last N_d tokens, with
 *                         τ = (n − (N − N_d))/N_d ∈ [0, 1] and
 *                           exponential: end + (start − end)·(e^{1−τ} − 1)/(e − 1)   (IBM's shape)
 *                           linear:      start + (end − start)·τ
 * "Batch size agnostic" means that a and b carry over to other batch sizes because β is in the
 * formula: below the cap the rate grows linearly with the batch (IBM's `a` takes it in: documented as
 * {"a": batch_size, "b": -0.51, "c": batch_size * sequence_length}, c the tokens per step). So β is
 * the step's global batch here, and batch.lr_scaling must not scale it again
 * (train/lr-rules.ts refuses that). n = samples × seq_len, so N_w and N_d are `warmup` and `decay`
 * of the budget as for the other schedules.
 * [ours] warmup counts the step's own samples, (s+1)/(W+1), so that no step runs at lr = 0 (all
 * schedules); the decay ends at min_lr (IBM's at a factor of the rate it starts from), or at its
 * start when that is lower, so it never rises.
 */
import { z } from 'zod';

export const LR_SCHEDULES = ['cosine', 'constant', 'wsd', 'power'] as const;
export type LrSchedule = (typeof LR_SCHEDULES)[number];
export const DECAY_SHAPES = ['exponential', 'linear'] as const;
export type DecayShape = (typeof DECAY_SHAPES)[number];

/** The power schedule's defaults: the paper's fitted exponent and coefficient, IBM's decay shape. */
export const POWER_DEFAULTS = { a: 4, b: -0.51, decay_shape: 'exponential' } as const satisfies { a: number; b: number; decay_shape: DecayShape };
const POWER_KEYS = ['a', 'b', 'decay_shape'] as const;

export const lrConfigSchema = z
  .object({
    schedule: z.enum(LR_SCHEDULES).default('cosine'),
    /** The peak rate (power: the cap η_max). */
    lr: z.number().positive().default(2e-3),
    min_lr: z.number().nonnegative().default(2e-4),
    /** Warmup length: a fraction of the budget when < 1, else a number of samples. */
    warmup: z.number().nonnegative().default(0.02),
    /** wsd and power: fraction of the budget spent decaying. */
    decay: z.number().gt(0).lte(1).default(0.2),
    /** power: coefficient a of η = min(lr, β·a·n^b). */
    a: z.number().positive().optional(),
    /** power: exponent b < 0 (the rate falls with the tokens seen). */
    b: z.number().lt(0).optional(),
    /** power: shape of the final decay. */
    decay_shape: z.enum(DECAY_SHAPES).optional(),
  })
  .strict()
  .superRefine((c, ctx) => {
    if (c.min_lr > c.lr) ctx.addIssue({ code: 'custom', path: ['min_lr'], message: 'min_lr must not exceed lr' });
    if (c.schedule === 'power') return;
    for (const k of POWER_KEYS) {
      if (c[k] !== undefined) ctx.addIssue({ code: 'custom', path: [k], message: `${k} is a parameter of schedule power, not of ${c.schedule}` });
    }
  })
  // A power run records the a, b and shape it used (config.yaml, checkpoints), defaults included.
  .transform((c) => (c.schedule === 'power' ? { ...c, ...powerParams(c) } : c));

export type LrConfig = z.output<typeof lrConfigSchema>;

function powerParams(c: { a?: number | undefined; b?: number | undefined; decay_shape?: DecayShape | undefined }): { a: number; b: number; decay_shape: DecayShape } {
  return { a: c.a ?? POWER_DEFAULTS.a, b: c.b ?? POWER_DEFAULTS.b, decay_shape: c.decay_shape ?? POWER_DEFAULTS.decay_shape };
}

/** Where a step stands: what the schedules are indexed by. */
export interface LrStep {
  /** Samples seen before the step. */
  samples: number;
  /** Tokens per sample: the power schedule is indexed by tokens = samples × seqLen. */
  seqLen: number;
  /** The step's global batch in sequences: β of the power schedule (the others ignore it). */
  batch: number;
}

export function warmupSamples(c: LrConfig, budgetSamples: number): number {
  return c.warmup < 1 ? Math.round(c.warmup * budgetSamples) : c.warmup;
}

/** Samples seen when the final decay starts (wsd, power). */
export function decayStartSamples(c: LrConfig, budgetSamples: number): number {
  return budgetSamples * (1 - c.decay);
}

/**
 * Settings that are valid alone but not for this budget, each naming its field: a warmup longer than
 * the budget, or one that runs into the final decay.
 */
export function lrScheduleProblems(c: LrConfig, budgetSamples: number): Array<{ field: string; message: string }> {
  const warmup = warmupSamples(c, budgetSamples);
  if (warmup > budgetSamples) {
    return [{ field: 'lr.warmup', message: `lr.warmup is ${c.warmup} samples, longer than the whole budget of ${budgetSamples} samples: the learning rate would never reach lr.lr; give a fraction of the budget (< 1) or fewer samples` }];
  }
  const decayStart = decayStartSamples(c, budgetSamples);
  if ((c.schedule === 'wsd' || c.schedule === 'power') && warmup > decayStart) {
    return [{ field: 'lr.warmup', message: `lr.warmup (${warmup} samples) runs into the final decay, which starts at ${Math.round(decayStart)} samples (lr.decay ${c.decay} of ${budgetSamples}): shorten the warmup or the decay` }];
  }
  return [];
}

/** The power law η_power(n) = min(lr, β·a·n^b) at `tokens` seen (0 tokens gives lr: b < 0). */
function powerLaw(c: LrConfig, tokens: number, batch: number): number {
  const { a, b } = powerParams(c);
  return Math.min(c.lr, batch * a * tokens ** b);
}

/** Learning rate for the step that starts at `step`, in a run of `budgetSamples` samples. */
export function learningRate(c: LrConfig, step: LrStep, budgetSamples: number): number {
  const { samples, seqLen, batch } = step;
  const warm = warmupSamples(c, budgetSamples);
  // The rate the warmup climbs to: lr, or the power law where the warmup ends.
  const peak = c.schedule === 'power' ? powerLaw(c, warm * seqLen, batch) : c.lr;
  // Warmup counts the step's own samples, so the first step does not run at lr = 0.
  if (samples < warm) return (peak * (samples + 1)) / (warm + 1);
  switch (c.schedule) {
    case 'constant':
      return c.lr;
    case 'cosine': {
      const progress = Math.min(1, (samples - warm) / Math.max(1, budgetSamples - warm));
      return c.min_lr + 0.5 * (c.lr - c.min_lr) * (1 + Math.cos(Math.PI * progress));
    }
    case 'wsd':
    case 'power': {
      const decayStart = decayStartSamples(c, budgetSamples);
      const stable = c.schedule === 'wsd' ? c.lr : powerLaw(c, Math.min(samples, decayStart) * seqLen, batch);
      if (samples < decayStart) return stable;
      const t = Math.min(1, (samples - decayStart) / Math.max(1, budgetSamples - decayStart));
      const end = Math.min(c.min_lr, stable);
      if (c.schedule === 'power' && powerParams(c).decay_shape === 'exponential') return end + ((stable - end) * (Math.exp(1 - t) - 1)) / (Math.E - 1);
      return stable + (end - stable) * t;
    }
  }
}
