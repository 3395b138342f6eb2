/**
 * What the engines see of an optimizer, whichever it is: an update over this rank's parameter and
 * gradient slices (whole units, or FSDP shards given by `ranges`), its state as named buffers that
 * mirror the parameters unit by unit (checkpointed as `<prefix><parameter name>`, like torch's state
 * names), a step counter, and host scalars (adagrad_norm's accumulator). Quantities that span a whole
 * tensor or the whole model reach the optimizer through UpdateContext, so an optimizer never knows
 * whether it runs on a replica or a shard. create.ts makes the one a config names.
 */
import type { Tensor } from '../backend/backend.js';
import type { UnitBuffers } from '../model/params.js';
import type { OptimizerName } from './config.js';

/** One state tensor per parameter, `<prefix><name>` in checkpoints (e.g. exp_avg.<name>). */
export interface OptimizerStateBuffer {
  prefix: string;
  buffers: UnitBuffers;
}

/** What an update may need beyond this rank's slices. */
export interface UpdateContext {
  /** ‖ḡ‖² of the whole model's gradient as the update sees it (after clipping); equal on every rank. */
  gradSqNorm: number;
  /**
   * Sums per-tensor partial sums over the ranks that own different parts of each tensor (FSDP: all
   * ranks, one all-reduce; a replica holds whole tensors: the values themselves). A collective.
   */
  sumOverShards(values: Float64Array): Promise<Float64Array>;
  /**
   * The whole unit (unit size, view offsets as in the layout) assembled from every rank's `shard`
   * (FSDP: an all-gather into a scratch buffer; a replica: the shard itself). A collective. Give it
   * back with releaseUnit.
   */
  gatherUnit(unit: number, shard: Tensor): Promise<Tensor>;
  releaseUnit(unit: number, full: Tensor): void;
}

export interface Optimizer {
  readonly name: OptimizerName;
  /** Optimizer steps taken (bias correction, lr_decay); checkpointed as trainer_state.adamw_step. */
  step: number;
  readonly state: readonly OptimizerStateBuffer[];
  /** Host-side scalar state, checkpointed in trainer_state.json (exact: JSON keeps float64). */
  scalars(): Record<string, number>;
  loadScalars(values: Readonly<Record<string, number>>): void;
  /**
   * One step at rate lr. params[u] and grads[u] hold the unit's owned range; grads may be
   * overwritten (the step's gradient is not read after its update).
   */
  update(params: readonly Tensor[], grads: readonly Tensor[], lr: number, ctx: UpdateContext): Promise<void>;
  free(): void;
}

/** The context of an optimizer that holds whole tensors (one process, or a DDP replica). */
export function replicaUpdateContext(gradSqNorm: number): UpdateContext {
  return {
    gradSqNorm,
    sumOverShards: async (values) => values,
    gatherUnit: async (_unit, shard) => shard,
    releaseUnit: () => {},
  };
}
