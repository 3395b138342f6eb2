/**
 * LAMB (You et al., "Large Batch Optimization for Deep Learning: Training BERT in 76 minutes",
 * ICLR 2020, Algorithm 2), per parameter tensor x⁽ⁱ⁾ (each Hugging Face tensor, not a flat unit):
 *   m ← β₁m + (1−β₁)g,  v ← β₂v + (1−β₂)g²,  m̂ = m/(1−β₁ᵗ),  v̂ = v/(1−β₂ᵗ)
 *   u = m̂/(√v̂ + ε) + λx                     (λ: weight_decay; norms undecayed unless decay_norms)
 *   x ← x − η·(‖x‖/‖u‖)·u                    (trust ratio 1 when either norm is 0)
 * The paper's φ(‖x‖) is the identity here (no clamping), as in most implementations.
 * Backend.lambDirection updates m, v and writes u over the gradient; the two squared norms per
 * tensor are summed over this rank's slice on the device (float64), downloaded once, summed over the
 * shards of every tensor (one all-reduce of a float64 vector under FSDP), and the ratios applied
 * with axpy.
 */
import type { Backend, Tensor } from '../backend/backend.js';
import type { ModelLayout } from '../model/layout.js';
import { UnitBuffers } from '../model/params.js';
import { ADAMW_STATE } from './adamw.js';
import type { LambConfig } from './config.js';
import type { Optimizer, OptimizerStateBuffer, UpdateContext } from './optimizer.js';
import { ownedRange, ownedSizes, ownedSlices, piece, type OwnedSlice, type UnitRange } from './owned.js';

export class Lamb implements Optimizer {
  readonly name = 'lamb';
  readonly m: UnitBuffers;
  readonly v: UnitBuffers;
  readonly state: readonly OptimizerStateBuffer[];
  step = 0;
  /** Every owned tensor slice, unit by unit: slot 2k and 2k+1 of `norms` hold its ‖x‖² and ‖u‖². */
  private readonly slices: Array<{ unit: number; slice: OwnedSlice; k: number }>;
  private readonly norms: Tensor;

  constructor(
    readonly backend: Backend,
    readonly layout: ModelLayout,
    readonly config: LambConfig,
    readonly ranges?: readonly UnitRange[],
  ) {
    const sizes = ownedSizes(layout, ranges);
    this.m = new UnitBuffers(backend, layout, 'f32', sizes);
    this.v = new UnitBuffers(backend, layout, 'f32', sizes);
    // The same names as AdamW's moments: they are Adam's moments (the checkpoint records the optimizer).
    this.state = [
      { prefix: ADAMW_STATE.m, buffers: this.m },
      { prefix: ADAMW_STATE.v, buffers: this.v },
    ];
    // Slot k of every tensor in layout order, the same on every rank (tensors a rank owns no part of
    // keep theirs), so the ranks' vectors add up element by element.
    const slotOf = new Map([...layout.byName.keys()].map((name, k) => [name, k]));
    this.slices = layout.units.flatMap((u) => ownedSlices(u, ownedRange(layout, ranges, u.index)).map((slice) => ({ unit: u.index, slice, k: slotOf.get(slice.view.name)! })));
    this.norms = backend.alloc([Math.max(1, 2 * layout.byName.size)], 'f64');
  }

  scalars(): Record<string, number> {
    return {};
  }

  loadScalars(): void {}

  async update(params: readonly Tensor[], grads: readonly Tensor[], lr: number, ctx: UpdateContext): Promise<void> {
    this.step++;
    const backend = this.backend;
    const { beta1, beta2, eps, weight_decay, decay_norms } = this.config;
    backend.fill(this.norms, 0);
    for (const { unit, slice, k } of this.slices) {
      const p = piece(backend, params[unit]!, slice);
      const u = piece(backend, grads[unit]!, slice);
      const weightDecay = slice.view.decay || decay_norms ? weight_decay : 0;
      backend.lambDirection(p, u, piece(backend, this.m.unit(unit), slice), piece(backend, this.v.unit(unit), slice), { beta1, beta2, eps, weightDecay, step: this.step });
      backend.sumSquares(p, this.norms, 2 * k);
      backend.sumSquares(u, this.norms, 2 * k + 1);
    }
    const sums = await ctx.sumOverShards(Float64Array.from(backend.download(this.norms)));
    for (const { unit, slice, k } of this.slices) {
      const w = Math.sqrt(sums[2 * k]!);
      const u = Math.sqrt(sums[2 * k + 1]!);
      const ratio = w > 0 && u > 0 ? w / u : 1;
      backend.axpy(piece(backend, params[unit]!, slice), -lr * ratio, piece(backend, grads[unit]!, slice));
    }
  }

  free(): void {
    this.m.free();
    this.v.free();
    this.backend.free(this.norms);
  }
}
