/**
 * AdaGrad as torch.optim.Adagrad (Duchi, Hazan and Singer 2011; torch's single-tensor path):
 *   clr = lr / (1 + (t−1)·lr_decay)
 *   g ← g + λx                   (λ: weight_decay, an L2 penalty; norms undecayed unless decay_norms)
 *   s ← s + g²                   (s₀ = initial_accumulator_value)
 *   x ← x − clr·g/(√s + ε)
 * Purely elementwise, so shards need nothing from other ranks. State: `sum.<name>` (torch's name).
 */
import type { Backend, Tensor } from '../backend/backend.js';
import type { ModelLayout } from '../model/layout.js';
import { UnitBuffers } from '../model/params.js';
import type { AdagradConfig } from './config.js';
import type { Optimizer, OptimizerStateBuffer } from './optimizer.js';
import { ownedDecayRuns, ownedRange, ownedSizes, piece, type UnitRange } from './owned.js';

export const ADAGRAD_PREFIX = 'sum.';

export class Adagrad implements Optimizer {
  readonly name = 'adagrad';
  readonly sum: UnitBuffers;
  readonly state: readonly OptimizerStateBuffer[];
  step = 0;

  constructor(
    readonly backend: Backend,
    readonly layout: ModelLayout,
    readonly config: AdagradConfig,
    readonly ranges?: readonly UnitRange[],
  ) {
    this.sum = new UnitBuffers(backend, layout, 'f32', ownedSizes(layout, ranges));
    for (const t of this.sum.units) backend.fill(t, config.initial_accumulator_value);
    this.state = [{ prefix: ADAGRAD_PREFIX, buffers: this.sum }];
  }

  scalars(): Record<string, number> {
    return {};
  }

  loadScalars(): void {}

  async update(params: readonly Tensor[], grads: readonly Tensor[], lr: number): Promise<void> {
    this.step++;
    const backend = this.backend;
    const { lr_decay, eps, weight_decay, decay_norms } = this.config;
    const clr = lr / (1 + (this.step - 1) * lr_decay);
    for (const unit of this.layout.units) {
      const own = ownedRange(this.layout, this.ranges, unit.index);
      for (const run of ownedDecayRuns(unit, own, weight_decay, decay_norms)) {
        const u = unit.index;
        backend.adagrad(piece(backend, params[u]!, run), piece(backend, grads[u]!, run), piece(backend, this.sum.unit(u), run), { lr: clr, eps, weightDecay: run.wd });
      }
    }
  }

  free(): void {
    this.sum.free();
  }
}
