/**
 * The `optim` section: which optimizer (`name`) and its hyper-parameters, each optimizer with its
 * own keys and defaults (docs/optimizers.md gives the update equations and sources). Like the lr
 * section, the keys are flat: a key that belongs to another optimizer is refused naming both, and
 * the output records every parameter of the chosen optimizer, defaults included (config.yaml and
 * checkpoints say exactly what ran).
 */
import { z } from 'zod';

export const OPTIMIZERS = ['adamw', 'lamb', 'adagrad', 'adagrad_norm', 'muon'] as const;
export type OptimizerName = (typeof OPTIMIZERS)[number];

export interface AdamWConfig {
  beta1: number;
  beta2: number;
  eps: number;
  weight_decay: number;
  /** Apply weight decay to norm weights too (off by default, as is common for Llama training). */
  decay_norms: boolean;
}

/** LAMB: Adam's moments and decoupled decay, with a per-tensor trust ratio (You et al. 2020). */
export type LambConfig = AdamWConfig;

export interface AdagradConfig {
  lr_decay: number;
  initial_accumulator_value: number;
  eps: number;
  /** L2 penalty added to the gradient (torch.optim.Adagrad's weight_decay). */
  weight_decay: number;
  decay_norms: boolean;
}

export interface AdagradNormConfig {
  /** b₀²: the scalar accumulator's starting value. */
  initial_accumulator_value: number;
  eps: number;
}

/** Muon for the blocks' matrices; AdamW (beta1, beta2, eps) for embeddings, head and norms. */
export interface MuonConfig extends AdamWConfig {
  momentum: number;
  nesterov: boolean;
  ns_steps: number;
}

export type OptimizerParams =
  | ({ name: 'adamw' } & AdamWConfig)
  | ({ name: 'lamb' } & LambConfig)
  | ({ name: 'adagrad' } & AdagradConfig)
  | ({ name: 'adagrad_norm' } & AdagradNormConfig)
  | ({ name: 'muon' } & MuonConfig);

const ADAMW = { beta1: 0.9, beta2: 0.95, eps: 1e-8, weight_decay: 0.1, decay_norms: false };

/** Each optimizer's keys and defaults (AdamW's as before; the others from their papers or torch). */
export const OPTIMIZER_DEFAULTS = {
  adamw: ADAMW,
  // You et al. 2020 (BERT pre-training): β₂ 0.999, ε 1e-6, λ 0.01.
  lamb: { beta1: 0.9, beta2: 0.999, eps: 1e-6, weight_decay: 0.01, decay_norms: false },
  // torch.optim.Adagrad's defaults.
  adagrad: { lr_decay: 0, initial_accumulator_value: 0, eps: 1e-10, weight_decay: 0, decay_norms: false },
  adagrad_norm: { initial_accumulator_value: 0, eps: 1e-10 },
  // KellerJordan/Muon: momentum 0.95, Nesterov, 5 steps; Moonshot's weight decay 0.1 for both groups.
  muon: { momentum: 0.95, nesterov: true, ns_steps: 5, ...ADAMW },
} as const satisfies { [K in OptimizerName]: Omit<Extract<OptimizerParams, { name: K }>, 'name'> };

/** Parameter-sized state buffers each optimizer keeps (memory estimates; Optimizer.state's length). */
export const OPTIMIZER_STATE_BUFFERS: { [K in OptimizerName]: number } = { adamw: 2, lamb: 2, adagrad: 1, adagrad_norm: 0, muon: 3 };

const beta = z.number().min(0).lt(1);

export const optimConfigSchema = z
  .object({
    name: z.enum(OPTIMIZERS).default('adamw'),
    /** Global-norm clipping threshold; 0 disables clipping (every optimizer). */
    clip: z.number().nonnegative().default(1.0),
    beta1: beta.optional(),
    beta2: beta.optional(),
    eps: z.number().positive().optional(),
    weight_decay: z.number().nonnegative().optional(),
    decay_norms: z.boolean().optional(),
    lr_decay: z.number().nonnegative().optional(),
    initial_accumulator_value: z.number().nonnegative().optional(),
    momentum: beta.optional(),
    nesterov: z.boolean().optional(),
    ns_steps: z.number().int().min(1).max(20).optional(),
  })
  .strict()
  .superRefine((c, ctx) => {
    const own = OPTIMIZER_DEFAULTS[c.name];
    for (const [k, v] of Object.entries(c)) {
      if (k === 'name' || k === 'clip' || v === undefined || k in own) continue;
      const owners = OPTIMIZERS.filter((n) => k in OPTIMIZER_DEFAULTS[n]);
      ctx.addIssue({ code: 'custom', path: [k], message: `${k} is a parameter of ${owners.join(', ')}, not of ${c.name}` });
    }
  })
  .transform((c): OptimizerParams & { clip: number } => {
    const own: Record<string, unknown> = { ...OPTIMIZER_DEFAULTS[c.name] };
    for (const k of Object.keys(own)) {
      const v = (c as Record<string, unknown>)[k];
      if (v !== undefined) own[k] = v;
    }
    return { name: c.name, clip: c.clip, ...own } as OptimizerParams & { clip: number };
  });

export type OptimConfig = z.output<typeof optimConfigSchema>;
