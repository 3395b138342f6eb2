/**
 * Global-norm gradient clipping (as torch.nn.utils.clip_grad_norm_): the squared norm of all
 * gradient buffers is accumulated into a float64 slot on the device, and each buffer is scaled by
 * min(1, maxNorm / (norm + 1e-6)) there, with no host round trip.
 */
import type { Backend, Tensor } from '../backend/backend.js';

/** stats[slot] += Σ over buffers of ‖g‖² (float64). */
export function addSquaredNorm(backend: Backend, grads: readonly Tensor[], stats: Tensor, slot: number): void {
  for (const g of grads) backend.sumSquares(g, stats, slot);
}

/** Scales every buffer so that the global norm (whose square is in stats[slot]) is at most maxNorm. */
export function clipToNorm(backend: Backend, grads: readonly Tensor[], stats: Tensor, slot: number, maxNorm: number): void {
  if (!(maxNorm > 0) || !Number.isFinite(maxNorm)) return;
  for (const g of grads) backend.clipByGlobalNorm(g, stats, slot, maxNorm);
}

/** ‖g‖² after clipToNorm with the same maxNorm (the factor computed as the kernels do, in float64). */
export function clippedSqNorm(sqNorm: number, maxNorm: number): number {
  if (!(maxNorm > 0) || !Number.isFinite(maxNorm)) return sqNorm;
  const coef = Math.min(1, maxNorm / (Math.sqrt(sqNorm) + 1e-6));
  return sqNorm * coef * coef;
}
