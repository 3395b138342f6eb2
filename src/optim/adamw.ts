/**
 * AdamW over flat unit buffers. The moments mirror the parameters unit by unit; weight decay applies
 * to matrices and embeddings and (by default) not to norm weights, using the layout's ranges.
 */
import type { Backend, Tensor } from '../backend/backend.js';
import type { ModelLayout } from '../model/layout.js';
import { UnitBuffers } from '../model/params.js';

export interface AdamWConfig {
  beta1: number;
  beta2: number;
  eps: number;
  weight_decay: number;
  /** Apply weight decay to norm weights too (off by default, as is common for Llama training). */
  decay_norms: boolean;
}

export const ADAMW_DEFAULTS: AdamWConfig = { beta1: 0.9, beta2: 0.95, eps: 1e-8, weight_decay: 0.1, decay_norms: false };

/** The part of a unit this optimizer owns: the whole unit, or a shard [offset, offset + size). */
export interface UnitRange {
  offset: number;
  size: number;
}

export class AdamW {
  readonly m: UnitBuffers;
  readonly v: UnitBuffers;
  /** Optimizer steps taken (the bias-correction counter). */
  step = 0;

  constructor(
    readonly backend: Backend,
    readonly layout: ModelLayout,
    readonly config: AdamWConfig = ADAMW_DEFAULTS,
    readonly ranges?: UnitRange[],
  ) {
    const sizes = layout.units.map((u, i) => ranges?.[i]?.size ?? u.size);
    this.m = new UnitBuffers(backend, layout, 'f32', sizes);
    this.v = new UnitBuffers(backend, layout, 'f32', sizes);
  }

  /**
   * One update. params[u] and grads[u] hold the unit's owned range (the whole unit unless `ranges`
   * was given).
   */
  update(params: readonly Tensor[], grads: readonly Tensor[], lr: number): void {
    this.step++;
    const backend = this.backend;
    const { beta1, beta2, eps, weight_decay, decay_norms } = this.config;
    for (const unit of this.layout.units) {
      const own = this.ranges?.[unit.index] ?? { offset: 0, size: unit.size };
      const p = params[unit.index]!;
      const g = grads[unit.index]!;
      const m = this.m.unit(unit.index);
      const v = this.v.unit(unit.index);
      const groups: Array<[Array<[number, number]>, number]> = [
        [unit.decayRanges, weight_decay],
        [unit.noDecayRanges, decay_norms ? weight_decay : 0],
      ];
      for (const [ranges, wd] of groups) {
        for (const [start, end] of ranges) {
          // Intersect the parameter range with the owned range, in owned-range coordinates.
          const lo = Math.max(start, own.offset) - own.offset;
          const hi = Math.min(end, own.offset + own.size) - own.offset;
          if (hi <= lo) continue;
          const view = (t: Tensor): Tensor => backend.view(t, lo, [hi - lo]);
          backend.adamw(view(p), view(g), view(m), view(v), { lr, beta1, beta2, eps, weightDecay: wd, step: this.step });
        }
      }
    }
  }

  free(): void {
    this.m.free();
    this.v.free();
  }
}
