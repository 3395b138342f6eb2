/**
 * AdaGrad-Norm (Ward, Wu and Bottou, "AdaGrad stepsizes: sharp convergence over nonconvex
 * landscapes", JMLR 2020; the optimizer of Lau et al.'s AdAdaGrad-Norm with adaptive batches): one
 * scalar step size for the whole model,
 *   b² ← b² + ‖g‖²               (b₀² = initial_accumulator_value; ‖g‖ over every parameter)
 *   x ← x − lr·g/(√b² + ε)
 * ‖g‖² is the engine's global norm of the reduced gradient, after clipping (UpdateContext.gradSqNorm:
 * under FSDP the sum of the shards' norms, already all-reduced with the step's scalars), so the
 * accumulator is the same float64 on every rank and lives on the host; it is checkpointed in
 * trainer_state.json. ε (not in the papers) only guards the first step of an all-zero gradient.
 */
import type { Backend, Tensor } from '../backend/backend.js';
import type { ModelLayout } from '../model/layout.js';
import type { AdagradNormConfig } from './config.js';
import type { Optimizer, UpdateContext } from './optimizer.js';
import type { UnitRange } from './owned.js';

export class AdagradNorm implements Optimizer {
  readonly name = 'adagrad_norm';
  readonly state = [];
  step = 0;
  /** b², in float64. */
  sumSqNorm: number;

  constructor(
    readonly backend: Backend,
    readonly layout: ModelLayout,
    readonly config: AdagradNormConfig,
    // Elementwise with a global scalar: shards need no ranges (their padding has zero gradient).
    _ranges?: readonly UnitRange[],
  ) {
    this.sumSqNorm = config.initial_accumulator_value;
  }

  scalars(): Record<string, number> {
    return { sum_sq_norm: this.sumSqNorm };
  }

  loadScalars(values: Readonly<Record<string, number>>): void {
    const b2 = values.sum_sq_norm;
    if (typeof b2 !== 'number' || !Number.isFinite(b2) || b2 < 0) throw new Error(`adagrad_norm: the checkpoint's sum_sq_norm is ${String(b2)}, expected a finite number ≥ 0`);
    this.sumSqNorm = b2;
  }

  async update(params: readonly Tensor[], grads: readonly Tensor[], lr: number, ctx: UpdateContext): Promise<void> {
    this.step++;
    this.sumSqNorm += ctx.gradSqNorm;
    const alpha = -lr / (Math.sqrt(this.sumSqNorm) + this.config.eps);
    params.forEach((p, u) => this.backend.axpy(p, alpha, grads[u]!));
  }

  free(): void {}
}
