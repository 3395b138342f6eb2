/**
 * Learning-rate schedules indexed by samples seen (not steps), so they survive batch-size changes and
 * resumes: linear warmup over `warmup` samples, then
 *   cosine:   from lr down to min_lr at the sample budget (the paper's schedule);
 *   constant: lr;
 *   wsd:      warmup–stable–decay: lr until the last `decay` fraction of the budget, then linear to min_lr.
 */
import { z } from 'zod';

export const lrConfigSchema = z
  .object({
    schedule: z.enum(['cosine', 'constant', 'wsd']).default('cosine'),
    lr: z.number().positive().default(2e-3),
    min_lr: z.number().nonnegative().default(2e-4),
    /** Warmup length: a fraction of the budget when < 1, else a number of samples. */
    warmup: z.number().nonnegative().default(0.02),
    /** wsd only: fraction of the budget spent decaying. */
    decay: z.number().gt(0).lte(1).default(0.2),
  })
  .strict()
  .refine((c) => c.min_lr <= c.lr, { message: 'min_lr must not exceed lr', path: ['min_lr'] });

export type LrConfig = z.output<typeof lrConfigSchema>;

export function warmupSamples(c: LrConfig, budgetSamples: number): number {
  return c.warmup < 1 ? Math.round(c.warmup * budgetSamples) : c.warmup;
}

/** Learning rate for the step that starts after `samples` samples, with the run's sample budget. */
export function learningRate(c: LrConfig, samples: number, budgetSamples: number): number {
  const warm = warmupSamples(c, budgetSamples);
  // Warmup counts the step's own samples, so the first step does not run at lr = 0.
  if (samples < warm) return (c.lr * (samples + 1)) / (warm + 1);
  const progress = Math.min(1, (samples - warm) / Math.max(1, budgetSamples - warm));
  switch (c.schedule) {
    case 'constant':
      return c.lr;
    case 'cosine':
      return c.min_lr + 0.5 * (c.lr - c.min_lr) * (1 + Math.cos(Math.PI * progress));
    case 'wsd': {
      const decayStart = budgetSamples * (1 - c.decay);
      if (samples < decayStart) return c.lr;
      const t = Math.min(1, (samples - decayStart) / Math.max(1, budgetSamples - decayStart));
      return c.lr + (c.min_lr - c.lr) * t;
    }
  }
}
