/**
 * AdamW over flat unit buffers (torch.optim.AdamW). The moments mirror the parameters unit by unit;
 * weight decay applies to matrices and embeddings and (by default) not to norm weights, using the
 * layout's ranges.
 */
import type { Backend, Tensor } from '../backend/backend.js';
import type { ModelLayout } from '../model/layout.js';
import { UnitBuffers } from '../model/params.js';
import { OPTIMIZER_DEFAULTS, type AdamWConfig } from './config.js';
import type { Optimizer, OptimizerStateBuffer } from './optimizer.js';
import { ownedDecayRuns, ownedRange, ownedSizes, piece, type UnitRange } from './owned.js';

export type { AdamWConfig } from './config.js';
export type { UnitRange } from './owned.js';

/**
 * The moments' checkpoint names, as torch's AdamW state names them. Sharded checkpoints that predate
 * shard_index.json's optimizer_state hold these (io/checkpoint-format.ts's ADAMW_STATE: equal).
 */
export const ADAMW_STATE = { m: 'exp_avg.', v: 'exp_avg_sq.' } as const;

export const ADAMW_DEFAULTS = { name: 'adamw', ...OPTIMIZER_DEFAULTS.adamw } as const satisfies AdamWConfig & { name: 'adamw' };

export class AdamW implements Optimizer {
  readonly name = 'adamw';
  readonly m: UnitBuffers;
  readonly v: UnitBuffers;
  readonly state: readonly OptimizerStateBuffer[];
  /** Optimizer steps taken (the bias-correction counter). */
  step = 0;

  constructor(
    readonly backend: Backend,
    readonly layout: ModelLayout,
    readonly config: AdamWConfig = ADAMW_DEFAULTS,
    readonly ranges?: readonly UnitRange[],
  ) {
    const sizes = ownedSizes(layout, ranges);
    this.m = new UnitBuffers(backend, layout, 'f32', sizes);
    this.v = new UnitBuffers(backend, layout, 'f32', sizes);
    this.state = [
      { prefix: ADAMW_STATE.m, buffers: this.m },
      { prefix: ADAMW_STATE.v, buffers: this.v },
    ];
  }

  scalars(): Record<string, number> {
    return {};
  }

  loadScalars(): void {}

  /** The Optimizer protocol's update (AdamW needs nothing from the context). */
  async update(params: readonly Tensor[], grads: readonly Tensor[], lr: number): Promise<void> {
    this.updateSync(params, grads, lr);
  }

  /**
   * One update. params[u] and grads[u] hold the unit's owned range (the whole unit unless `ranges`
   * was given).
   */
  updateSync(params: readonly Tensor[], grads: readonly Tensor[], lr: number): void {
    this.step++;
    const { beta1, beta2, eps, weight_decay, decay_norms } = this.config;
    for (const unit of this.layout.units) {
      const own = ownedRange(this.layout, this.ranges, unit.index);
      this.updateRuns(params[unit.index]!, grads[unit.index]!, unit.index, ownedDecayRuns(unit, own, weight_decay, decay_norms), lr, { beta1, beta2, eps });
    }
  }

  /** AdamW on the given [lo, hi) runs of one unit (Muon uses it for what it does not orthogonalise). */
  updateRuns(p: Tensor, g: Tensor, unit: number, runs: ReadonlyArray<{ lo: number; hi: number; wd: number }>, lr: number, h: { beta1: number; beta2: number; eps: number }): void {
    const backend = this.backend;
    const m = this.m.unit(unit);
    const v = this.v.unit(unit);
    for (const run of runs) {
      backend.adamw(piece(backend, p, run), piece(backend, g, run), piece(backend, m, run), piece(backend, v, run), { lr, beta1: h.beta1, beta2: h.beta2, eps: h.eps, weightDecay: run.wd, step: this.step });
    }
  }

  free(): void {
    this.m.free();
    this.v.free();
  }
}
