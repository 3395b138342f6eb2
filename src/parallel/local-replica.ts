/**
 * A full replica of the parameters with a gradient accumulator: the UnitAccess and GradSink of
 * single-process training (and of each DDP rank).
 *
 * Within an optimizer step, micro-step t's gradient g_t is produced unit by unit; when a unit is
 * complete it is added into the accumulator with its weight (acc += w_t · g_t) and its squared norm
 * is added to a float64 statistic in the same pass, so Σ_t ‖g_t‖² costs no extra sweep over memory.
 * The first micro-step writes straight into the accumulator; later ones use a per-unit scratch buffer
 * (at most one block, the embedding and the head are open at once).
 */
import type { Backend, Tensor } from '../backend/backend.js';
import type { GradSink, UnitAccess } from '../model/llama.js';
import type { ModelLayout } from '../model/layout.js';
import { UnitBuffers } from '../model/params.js';
import { Spans } from '../util/spans.js';

export class LocalReplica implements UnitAccess, GradSink {
  readonly params: UnitBuffers;
  /** The step's accumulated gradient Σ_t w_t·g_t (the mean gradient when Σ w_t = 1). */
  readonly grads: UnitBuffers;
  private readonly scratchPool = new Map<number, Tensor[]>();
  private readonly open = new Map<number, Tensor>();
  private microIndex = -1;
  private weight = 1;
  private stats: Tensor | null = null;
  private statSlot = 0;
  /** Sees every micro-step gradient of a unit before it is weighted and accumulated (coordinate statistics). */
  onMicroGrad: ((unit: number, grad: Tensor) => void) | null = null;

  constructor(
    readonly backend: Backend,
    readonly layout: ModelLayout,
    /** Where statistic-only kernels (the first micro-step's norm) count their seconds, for overhead reports. */
    readonly spans: Spans<'stats'> = new Spans(['stats']),
  ) {
    this.params = new UnitBuffers(backend, layout);
    this.grads = new UnitBuffers(backend, layout);
  }

  /** Starts an optimizer step: the next micro-step overwrites the accumulator. */
  beginStep(): void {
    this.microIndex = -1;
  }

  /**
   * Starts a micro-step whose gradient enters the accumulator with weight `weight`; Σ‖g_t‖² of
   * this micro-step is added to stats[slot].
   */
  beginMicroStep(weight: number, stats: Tensor, slot: number): void {
    if (this.open.size) throw new Error(`micro-step started while units ${[...this.open.keys()].join(', ')} are still open`);
    this.microIndex++;
    this.weight = weight;
    this.stats = stats;
    this.statSlot = slot;
  }

  acquire(unit: number): Tensor {
    return this.params.unit(unit);
  }

  release(_unit: number): void {}

  grad(unit: number): Tensor {
    const existing = this.open.get(unit);
    if (existing) return existing;
    if (this.microIndex < 0) throw new Error('grad() called outside a micro-step (call beginMicroStep first)');
    const t = this.microIndex === 0 ? this.grads.unit(unit) : this.takeScratch(unit);
    this.backend.fill(t, 0);
    this.open.set(unit, t);
    return t;
  }

  ready(unit: number): void {
    const t = this.open.get(unit);
    if (!t) throw new Error(`ready(${unit}) for a unit with no open gradient`);
    this.open.delete(unit);
    const backend = this.backend;
    this.onMicroGrad?.(unit, t);
    if (this.microIndex === 0) {
      this.spans.time('stats', () => backend.sumSquares(t, this.stats!, this.statSlot));
      if (this.weight !== 1) backend.scale(t, this.weight);
    } else {
      backend.accumulateWithNorm(this.grads.unit(unit), this.weight, t, this.stats!, this.statSlot);
      this.returnScratch(unit, t);
    }
  }

  private takeScratch(unit: number): Tensor {
    const size = this.layout.units[unit]!.size;
    const pool = this.scratchPool.get(size);
    return pool?.pop() ?? this.backend.alloc([size]);
  }

  private returnScratch(unit: number, t: Tensor): void {
    const size = this.layout.units[unit]!.size;
    const pool = this.scratchPool.get(size) ?? [];
    pool.push(t);
    this.scratchPool.set(size, pool);
  }

  /** Frees the scratch buffers (they are re-created on demand). */
  releaseScratch(): void {
    for (const pool of this.scratchPool.values()) for (const t of pool) this.backend.free(t);
    this.scratchPool.clear();
  }

  free(): void {
    this.releaseScratch();
    this.params.free();
    this.grads.free();
  }
}
