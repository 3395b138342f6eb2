/**
 * Muon (Keller Jordan, github.com/KellerJordan/Muon, muon.py; "Muon: An optimizer for hidden layers
 * in neural networks", 2024) for the blocks' 2-D weight matrices, with the update scale of Moonshot AI
 * (Liu et al., "Muon is Scalable for LLM Training", 2025) so one learning rate serves both groups:
 *   B ← B + (1−μ)(G − B)                     momentum as an EMA (muon.py's lerp)
 *   U = G + μ(B − G)  (Nesterov) or B
 *   O = NewtonSchulz5(U)                     (newton-schulz.ts, float32)
 *   W ← W(1 − ηλ) − η·0.2·√max(rows, cols)·O  the 0.2·√max scale matches AdamW's update RMS
 * Matrices are the Hugging Face tensors (q, k, v, o, gate, up, down): the fused qkv and gate_up
 * buffers are orthogonalised per original matrix, as a model with separate projections would be
 * (and as muon.py sees them). Embeddings, the head and norm weights take AdamW with beta1, beta2,
 * eps and the same lr and weight decay (norms undecayed unless decay_norms).
 *
 * Under FSDP the momentum is elementwise on each shard; Newton–Schulz needs whole matrices, so each
 * block's update U is all-gathered (one unit all-gather, as for a forward), every rank orthogonalises
 * the matrices it owns a slice of, and applies its slice. Cost per step: one extra all-gather of the
 * blocks (the size of their parameters) and up to J× redundant Newton–Schulz work (a matrix split
 * across ranks is orthogonalised on each of them).
 *
 * State: `momentum_buffer.<name>` (torch's name) and AdamW's `exp_avg.` / `exp_avg_sq.`, each
 * unit-shaped: the momentum is unused for embedding and head, the moments for the matrices (zero in
 * checkpoints), a simplicity kept at the price of one parameter-sized buffer.
 */
import type { Backend, Tensor } from '../backend/backend.js';
import type { ModelLayout, ParamView } from '../model/layout.js';
import { UnitBuffers } from '../model/params.js';
import { AdamW } from './adamw.js';
import type { MuonConfig } from './config.js';
import { NewtonSchulz } from './newton-schulz.js';
import type { Optimizer, OptimizerStateBuffer, UpdateContext } from './optimizer.js';
import { ownedRange, ownedSizes, ownedSlices, piece, type OwnedSlice, type UnitRange } from './owned.js';

export const MUON_PREFIX = 'momentum_buffer.';

/** Moonshot's RMS-matching scale for a rows × cols update. */
export function muonScale(rows: number, cols: number): number {
  return 0.2 * Math.sqrt(Math.max(rows, cols));
}

/** Which tensors Muon orthogonalises: the blocks' 2-D matrices. */
export function isMuonMatrix(layout: ModelLayout, view: ParamView): boolean {
  return layout.units[view.unit]!.kind === 'block' && view.shape.length === 2;
}

export class Muon implements Optimizer {
  readonly name = 'muon';
  readonly momentum: UnitBuffers;
  /** AdamW for what is not orthogonalised; its step counter is Muon's. */
  private readonly adamw: AdamW;
  readonly state: readonly OptimizerStateBuffer[];
  private readonly ns: NewtonSchulz;
  /** Per unit: the owned slices of its matrices, and AdamW's runs for the rest. */
  private readonly plan: Array<{ matrices: OwnedSlice[]; adam: Array<{ lo: number; hi: number; wd: number }> }>;

  constructor(
    readonly backend: Backend,
    readonly layout: ModelLayout,
    readonly config: MuonConfig,
    readonly ranges?: readonly UnitRange[],
  ) {
    this.momentum = new UnitBuffers(backend, layout, 'f32', ownedSizes(layout, ranges));
    this.adamw = new AdamW(backend, layout, config, ranges);
    this.state = [{ prefix: MUON_PREFIX, buffers: this.momentum }, ...this.adamw.state];
    this.ns = new NewtonSchulz(backend);
    this.plan = layout.units.map((u) => {
      const slices = ownedSlices(u, ownedRange(layout, ranges, u.index));
      const matrices = slices.filter((s) => isMuonMatrix(layout, s.view));
      const adam = slices.filter((s) => !isMuonMatrix(layout, s.view)).map((s) => ({ lo: s.lo, hi: s.hi, wd: s.view.decay || config.decay_norms ? config.weight_decay : 0 }));
      return { matrices, adam };
    });
  }

  get step(): number {
    return this.adamw.step;
  }

  set step(n: number) {
    this.adamw.step = n;
  }

  scalars(): Record<string, number> {
    return {};
  }

  loadScalars(): void {}

  async update(params: readonly Tensor[], grads: readonly Tensor[], lr: number, ctx: UpdateContext): Promise<void> {
    this.adamw.step++;
    const backend = this.backend;
    const { momentum: beta, nesterov, ns_steps, weight_decay } = this.config;
    for (const unit of this.layout.units) {
      const u = unit.index;
      const { matrices, adam } = this.plan[u]!;
      this.adamw.updateRuns(params[u]!, grads[u]!, u, adam, lr, this.config);
      // Every rank takes part in the gather of every block, whether or not it owns a matrix slice.
      if (unit.kind !== 'block') continue;
      for (const s of matrices) backend.muonMomentum(piece(backend, grads[u]!, s), piece(backend, this.momentum.unit(u), s), { beta, nesterov });
      const full = await ctx.gatherUnit(u, grads[u]!);
      try {
        for (const s of matrices) {
          const [rows, cols] = s.view.shape as [number, number];
          const o = this.ns.run(backend.view(full, s.view.offset, [rows * cols]), rows, cols, ns_steps);
          const p = piece(backend, params[u]!, s);
          backend.scale(p, 1 - lr * weight_decay);
          backend.axpy(p, -lr * muonScale(rows, cols), backend.view(o, s.inView, [s.hi - s.lo]));
        }
      } finally {
        ctx.releaseUnit(u, full);
      }
    }
  }

  free(): void {
    this.momentum.free();
    this.adamw.free();
    this.ns.free();
  }
}
