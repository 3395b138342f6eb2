/**
 * What the training loop needs from an engine, whichever way the model is distributed: a full
 * replica per rank (ReplicaEngine: one process or DDP) or sharded parameters (FsdpEngine).
 */
import type { Backend, Tensor } from '../backend/backend.js';
import type { ProcessGroup } from '../dist/group.js';
import type { Llama, UnitAccess } from '../model/llama.js';
import type { AdamW } from '../optim/adamw.js';

/**
 * Slots of the per-step float64 statistics buffer (on the device; downloaded once per step):
 *   LOSS, TOKENS   Σ loss and the token count of this rank's micro-steps
 *   MICRO          Σ_t ‖g_t‖² of this rank's micro-step gradients (taken as they are produced)
 *   LOCAL          ‖g_j‖² of the rank's accumulated gradient, before the reduction
 *   GLOBAL         ‖ḡ‖² of the reduced gradient (what clipping uses)
 *   DOT            ⟨g_j, ḡ⟩ (inner-product tests)
 *   SCRATCH        (and SCRATCH+1) where a dummy micro-step's loss and norm go
 */
export const SLOT = { LOSS: 0, TOKENS: 1, MICRO: 2, LOCAL: 3, GLOBAL: 4, DOT: 5, SCRATCH: 6 } as const;
export const STAT_SLOTS = 8;

export interface StatRequest {
  localNorms: boolean;
  innerProducts: boolean;
  /**
   * Control flags raised by this rank (a stop request, a checkpoint due by wall clock); they ride in
   * the step's scalar reduction, so every rank sees the same sums and acts on the same step.
   */
  flags?: readonly number[];
  /**
   * The coordinate-wise norm test's statistic (experimental): per coordinate Σ_{j,t} g_{j,t,i}² is
   * accumulated on the host from every micro-step gradient and reduced across ranks (a reduction of
   * the whole model's size), then the quantile of Var_i/ḡ_i² (batch/coordinate.ts) is returned.
   */
  coordinates?: { quantile: number; threshold: number; microBatch: number };
}

/** One step's scalars, identical on every rank after the reduction. */
export interface StepScalars {
  lossSum: number;
  tokens: number;
  /** Σ over ranks and micro-steps of ‖g_{j,t}‖². */
  microSqNormSum: number;
  /** Σ over ranks of ‖g_j‖² (null when not requested). */
  localSqNormSum: number | null;
  globalSqNorm: number;
  dotSum: number | null;
  dotSqSum: number | null;
  finite: boolean;
  /** Seconds spent on statistics the optimizer step itself does not need (norms for the tests). */
  statsSeconds: number;
  /** The control flags summed over ranks (same order as StatRequest.flags). */
  flags: number[];
  /** The coordinate statistic when requested (null when no coordinate passed the threshold). */
  coordinateStat: number | null;
}

export interface TrainEngine {
  readonly backend: Backend;
  readonly model: Llama;
  readonly group: ProcessGroup;
  /** The optimizer (its moments mirror this rank's parameters: whole units or shards). */
  readonly adamw: AdamW;
  /**
   * Every rank must run the same sequence of micro-steps (FSDP's per-unit collectives): a rank with
   * no samples left in a shortened step runs a zero-weight dummy micro-step instead of none.
   */
  readonly lockstep: boolean;
  /** Told once what the schedule will ask of finishStep, before the first micro-step. */
  prepareStatistics?(needs: { coordinates: boolean }): void;
  beginStep(): void;
  /** One micro-step on batch × (seqLen+1) tokens whose mean-loss gradient enters with `weight`. */
  microStep(windows: Int32Array, batch: number, seqLen: number, weight: number, dummy?: boolean): Promise<void>;
  /** Reduces the gradient across ranks and returns the step's statistics. */
  finishStep(req: StatRequest): Promise<StepScalars>;
  /** Clips the reduced gradient to maxNorm (no-op when ≤ 0) and applies AdamW at `lr`. */
  update(lr: number, maxNorm: number): void;
  /** Σ loss and token count over `count` windows (no gradients), in micro-batches of at most maxBatch. */
  evalLoss(windows: Int32Array, count: number, seqLen: number, maxBatch: number): Promise<{ lossSum: number; tokens: number }>;
  free(): void;
}

/** Splits windows of seqLen+1 tokens into input and target tensors, reusing one pair of buffers. */
export class WindowUploader {
  private tokensT: Tensor | null = null;
  private targetsT: Tensor | null = null;

  constructor(private readonly backend: Backend) {}

  upload(windows: Int32Array, batch: number, seqLen: number): [Tensor, Tensor] {
    const w = seqLen + 1;
    if (windows.length !== batch * w) throw new Error(`expected ${batch} windows of ${w} tokens, got ${windows.length} tokens`);
    const n = batch * seqLen;
    if (!this.tokensT || this.tokensT.size < n) {
      this.free();
      this.tokensT = this.backend.alloc([n], 'i32');
      this.targetsT = this.backend.alloc([n], 'i32');
    }
    const tokens = new Int32Array(n);
    const targets = new Int32Array(n);
    for (let r = 0; r < batch; r++) {
      tokens.set(windows.subarray(r * w, r * w + seqLen), r * seqLen);
      targets.set(windows.subarray(r * w + 1, r * w + w), r * seqLen);
    }
    const tv = this.backend.view(this.tokensT, 0, [n]);
    const gv = this.backend.view(this.targetsT!, 0, [n]);
    this.backend.upload(tv, tokens);
    this.backend.upload(gv, targets);
    return [tv, gv];
  }

  free(): void {
    if (this.tokensT) this.backend.free(this.tokensT);
    if (this.targetsT) this.backend.free(this.targetsT);
    this.tokensT = this.targetsT = null;
  }
}

/**
 * Σ loss and token count of `model` over `windows` (no gradients), in micro-batches of at most
 * maxBatch, with the parameters from `params`; `stats` (STAT_SLOTS float64) is overwritten.
 */
export async function evalLossWith(
  model: Llama,
  params: UnitAccess,
  uploader: WindowUploader,
  stats: Tensor,
  windows: Int32Array,
  count: number,
  seqLen: number,
  maxBatch: number,
): Promise<{ lossSum: number; tokens: number }> {
  const backend = model.backend;
  const w = seqLen + 1;
  backend.fill(stats, 0);
  for (let start = 0; start < count; start += maxBatch) {
    const batch = Math.min(maxBatch, count - start);
    const [tokens, targets] = uploader.upload(windows.subarray(start * w, (start + batch) * w), batch, seqLen);
    await model.forwardLoss(tokens, targets, batch, seqLen, params, stats, SLOT.LOSS);
  }
  const s = backend.download(stats);
  return { lossSum: s[SLOT.LOSS]!, tokens: s[SLOT.TOKENS]! };
}
