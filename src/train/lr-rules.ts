/**
 * Which learning-rate rule on a batch change (batch.lr_scaling) the literature justifies for each
 * optimizer, as data that the config validation consults (docs/learning-rate.md has the table).
 * The sources:
 *   - Goyal et al. 2017, "Accurate, Large Minibatch SGD": the linear rule, derived for SGD;
 *   - Malladi et al. 2022, "On the SDEs and Scaling Rules for Adaptive Gradient Algorithms": for
 *     Adam and RMSprop the square-root rule, η·√κ for a batch κ times larger (their full rule also
 *     rescales 1−β₁, 1−β₂ and ε, which adabatch leaves alone);
 *   - You et al. 2020, "Large Batch Optimization for Deep Learning" (LAMB): the layer-wise trust
 *     ratio ‖w‖/‖update‖ fixes each layer's step relative to its weights, so LAMB is far less
 *     sensitive to the batch; they scale its rate by the square root of the batch;
 *   - Lau et al. 2024, AdAdaGrad: batches grown by the norm and inner-product tests under AdaGrad and
 *     AdaGrad-Norm with a fixed step size (the accumulated Σ‖g‖² adapts the step by itself);
 *   - Shen et al. 2024, the Power scheduler (optim/lr.ts): β·a·n^b already scales the rate linearly
 *     with the batch, so any lr_scaling on top counts the batch twice.
 * One row per optim.name (optim/config.ts; docs/optimizers.md).
 */
import { initialBatchOf, maxBatchOf, type BatchConfig } from '../batch/config.js';
import type { LrScaling } from '../batch/lr.js';
import type { LrSchedule } from '../optim/lr.js';

/** recommended: the rule the literature derives; allowed: defensible; discouraged: warned about. */
export type Verdict = 'recommended' | 'allowed' | 'discouraged';

export interface OptimizerLrRules {
  scaling: Record<LrScaling, { verdict: Verdict; why: string }>;
  /** Whether the Power scheduler's a and b were fitted with this optimizer. */
  powerFitted: boolean;
}

const SGD_RULE = 'the linear rule is derived for SGD (Goyal et al. 2017)';
const NO_ADAGRAD_RULE = "no scaling rule is derived for AdaGrad's accumulator, which never forgets; AdAdaGrad (Lau et al. 2024) keeps the step size fixed while the batch grows";

export const LR_RULES: Readonly<Record<string, OptimizerLrRules>> = {
  adamw: {
    scaling: {
      none: { verdict: 'allowed', why: 'the protocol of the adaptive-batch paper (Lau et al. 2024): the AdamW rate ignores the batch' },
      sqrt: { verdict: 'recommended', why: 'the square-root rule of the SDE analysis of Adam (Malladi et al. 2022)' },
      linear: { verdict: 'discouraged', why: `${SGD_RULE}; Adam divides by √v, so its gradient noise falls like 1/√κ, not 1/κ, and the linear rule over-scales (Malladi et al. 2022 derive the square-root rule)` },
    },
    powerFitted: true,
  },
  lamb: {
    scaling: {
      none: { verdict: 'allowed', why: 'the layer-wise trust ratio makes LAMB far less sensitive to the batch (You et al. 2020)' },
      sqrt: { verdict: 'recommended', why: 'You et al. 2020 scale the LAMB rate by the square root of the batch' },
      linear: { verdict: 'discouraged', why: `${SGD_RULE}; LAMB's trust ratio already bounds each layer's step` },
    },
    powerFitted: false,
  },
  adagrad: {
    scaling: {
      none: { verdict: 'recommended', why: 'AdAdaGrad (Lau et al. 2024) grows the batch under AdaGrad with a fixed step size' },
      sqrt: { verdict: 'discouraged', why: NO_ADAGRAD_RULE },
      linear: { verdict: 'discouraged', why: NO_ADAGRAD_RULE },
    },
    powerFitted: false,
  },
  adagrad_norm: {
    scaling: {
      none: { verdict: 'recommended', why: 'AdAdaGrad (Lau et al. 2024) grows the batch under AdaGrad-Norm with a fixed step size; η/√Σ‖g‖² adapts by itself' },
      sqrt: { verdict: 'discouraged', why: NO_ADAGRAD_RULE },
      linear: { verdict: 'discouraged', why: NO_ADAGRAD_RULE },
    },
    powerFitted: false,
  },
  muon: {
    scaling: {
      none: { verdict: 'allowed', why: "no batch scaling rule is derived for Muon; its orthogonalised update has a fixed size whatever the gradient's scale" },
      sqrt: { verdict: 'allowed', why: 'no batch scaling rule is derived for Muon; the square-root rule is the adaptive-method rule, untested for Muon' },
      linear: { verdict: 'discouraged', why: `${SGD_RULE}; Muon's update has a fixed size, so the noise argument behind it does not apply` },
    },
    powerFitted: false,
  },
};

export interface LrRuleFinding {
  severity: 'error' | 'warning';
  /** The config field to change, as a dotted path. */
  field: string;
  message: string;
}

export interface LrRuleInput {
  optimizer: string;
  schedule: LrSchedule;
  scaling: LrScaling;
  /** Whether the schedule ever changes the batch (lr_scaling is 1 otherwise). */
  batchChanges: boolean;
}

/** Combinations the table refuses (errors) or warns about, each naming the field to change. */
export function checkLrRules(x: LrRuleInput): LrRuleFinding[] {
  const found: LrRuleFinding[] = [];
  if (x.schedule === 'power' && x.scaling !== 'none') {
    const power = x.scaling === 'linear' ? 'β²' : 'β^1.5';
    found.push({ severity: 'error', field: 'batch.lr_scaling', message: `lr.schedule power already scales the rate linearly with the batch β (η = min(lr, β·a·n^b), Shen et al. 2024); lr_scaling ${x.scaling} would count the batch twice (${power}): use lr_scaling none` });
  }
  const rules = LR_RULES[x.optimizer];
  if (!rules) return found;
  if (x.schedule === 'power' && !rules.powerFitted) {
    found.push({ severity: 'warning', field: 'lr.schedule', message: `the Power scheduler's a and b were fitted with AdamW (Shen et al. 2024), not with ${x.optimizer}: refit a (and b) before trusting them` });
  }
  const rule = rules.scaling[x.scaling];
  if (x.batchChanges && x.schedule !== 'power' && rule.verdict === 'discouraged') {
    const better = (Object.keys(rules.scaling) as LrScaling[]).find((k) => rules.scaling[k].verdict === 'recommended');
    found.push({ severity: 'warning', field: 'batch.lr_scaling', message: `lr_scaling ${x.scaling} with ${x.optimizer}: ${rule.why}${better ? `; recommended: ${better}` : ''}` });
  }
  return found;
}

/** The findings for a training config (its lr, batch and optim sections). */
export function lrRuleFindings(c: { lr: { schedule: LrSchedule }; batch: BatchConfig; optim: object }): LrRuleFinding[] {
  return checkLrRules({ optimizer: optimizerName(c.optim), schedule: c.lr.schedule, scaling: c.batch.lr_scaling, batchChanges: initialBatchOf(c.batch) < maxBatchOf(c.batch) });
}

/** The optimizer a config trains with (optim.name; adamw when the section is not parsed yet). */
function optimizerName(optim: object): string {
  const name = (optim as { name?: unknown }).name;
  return typeof name === 'string' ? name : 'adamw';
}
