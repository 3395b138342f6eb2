/**
 * What the training loop needs from an engine, whichever way the model is distributed: a full
 * replica per rank (ReplicaEngine: one process or DDP) or sharded parameters (FsdpEngine). The loop,
 * the checkpointer and resume talk to an engine only through this protocol: a step (micro-steps,
 * finishStep, update), its state (load, broadcast, save), evaluation, and a statistics collector.
 */
import type { Backend, Tensor } from '../backend/backend.js';
import type { GradientCollector } from '../batch/types.js';
import type { HfTokenIds } from '../io/hf-config.js';
import type { ModelConfig } from '../model/config.js';
import type { Llama, UnitAccess } from '../model/llama.js';
import type { OptimizerName } from '../optim/config.js';
import type { Optimizer } from '../optim/optimizer.js';
import type { ProcessGroup } from './group.js';

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
  /** m: sequences per micro-step this step (for a statistics collector). */
  microBatch: number;
  /**
   * Control flags raised by this rank (a stop request, a checkpoint due by wall clock); they ride in
   * the step's scalar reduction, so every rank sees the same sums and acts on the same step.
   */
  flags?: readonly number[];
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
  /** The registered collector's statistic (null without one). */
  collected: number | null;
}

/** Whole tensors by Hugging Face name: all of them, or (a per-unit function) one unit's at a time. */
export type TensorSource = ReadonlyMap<string, ArrayLike<number>> | ((unit: number) => ReadonlyMap<string, ArrayLike<number>>);

/** An engine's state as whole tensors: a fresh initialisation, init_from weights, or a checkpoint. */
export interface EngineState {
  params: TensorSource;
  /** The optimizer's state (absent: parameters only). */
  optimizer?: OptimizerSnapshot;
}

/** An optimizer's state as whole tensors, as a checkpoint holds it. */
export interface OptimizerSnapshot {
  /** The optimizer that wrote it: loading into another one is refused. */
  name: OptimizerName;
  /** State tensors by `<prefix><parameter name>` (e.g. exp_avg.model.norm.weight). */
  tensors: ReadonlyMap<string, ArrayLike<number>>;
  step: number;
  scalars: Readonly<Record<string, number>>;
}

/** What a checkpoint holds besides the engine's state (written with it, by whichever ranks write). */
export interface CheckpointFrame {
  config: ModelConfig;
  trainerState: Record<string, unknown>;
  tokenizerJson?: string;
  tokenIds: HfTokenIds;
  step: number;
}

export interface TrainEngine {
  readonly backend: Backend;
  readonly model: Llama;
  readonly group: ProcessGroup;
  /** The optimizer (its state mirrors this rank's parameters: whole units or shards). */
  readonly optimizer: Optimizer;
  /**
   * Every rank must run the same sequence of micro-steps (FSDP's per-unit collectives): a rank with
   * no samples left in a shortened step runs a zero-weight dummy micro-step instead of none.
   */
  readonly lockstep: boolean;

  // ---- state --------------------------------------------------------------------------------
  /** Loads whole tensors; each rank keeps what it holds (a replica all of it, a shard its slice). */
  loadState(state: EngineState): void;
  /**
   * Makes every rank's copy equal rank 0's where ranks hold copies (DDP replicas: parameters, and the
   * optimizer state with `optimizer`), so a rank that read a different file, or none, cannot drift
   * silently. Sharded engines hold no copies. A collective: every rank calls it.
   */
  broadcastState(opts: { optimizer: boolean }): Promise<void>;
  /**
   * Writes parameters and optimizer state with `frame` as checkpoint `name` under parentDir: one
   * consolidated file written by rank 0 (replicas), or each rank's shards (FSDP). A collective.
   * Returns the checkpoint directory on rank 0 and null on the others.
   */
  saveCheckpoint(parentDir: string, name: string, frame: CheckpointFrame): Promise<string | null>;

  // ---- a step ------------------------------------------------------------------------------
  /** Registers a schedule's statistics collector (engines that cannot feed one throw). */
  registerCollector(collector: GradientCollector): void;
  beginStep(): void;
  /** One micro-step on batch × (seqLen+1) tokens whose mean-loss gradient enters with `weight`. */
  microStep(windows: Int32Array, batch: number, seqLen: number, weight: number, dummy?: boolean): Promise<void>;
  /** Reduces the gradient across ranks and returns the step's statistics. */
  finishStep(req: StatRequest): Promise<StepScalars>;
  /** Clips the reduced gradient to maxNorm (no-op when ≤ 0) and applies the optimizer at `lr`. A collective under FSDP. */
  update(lr: number, maxNorm: number): Promise<void>;
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
