/**
 * FSDP / ZeRO-3: each of the J ranks owns 1/J of every unit's flat parameters, gradients and
 * optimizer state. A unit's full parameters exist only while it is in use: all-gathered just before its
 * forward and again before its backward (or kept in between with reshardAfterForward = false), then
 * freed. Each micro-step's gradient of a unit is reduce-scattered right after the unit's backward,
 * so no rank ever holds the whole model's gradient; the optimizer updates only the local shard.
 *
 * Norm-test statistics (adaptive-batch-spec.md, "Under DDP and FSDP"):
 *   ‖g_{j,t}‖² is taken block by block on the full micro-step gradient just before its reduce-scatter
 *   (the `microbatch` estimator costs nothing extra); ‖ḡ‖² is the sum over ranks of the shard norms
 *   (carried by the step's one scalar reduction). ‖g_j‖² of the accumulated local gradient (the
 *   `per-sample` and `paper` estimators) exists only with unshardedAccumulation, which keeps a full
 *   local gradient (one extra gradient of memory) and reduce-scatters once per step instead.
 *
 * Unit u of S elements is padded to J·s elements with s = ⌈S/J⌉; rank r owns [r·s, (r+1)·s). The
 * padding is zero and stays zero (its gradient is zero, so no optimizer moves it).
 *
 * Optimizers that need whole-tensor or whole-model quantities get them through the UpdateContext:
 * per-tensor partial sums all-reduced as one float64 vector (LAMB's norms), units all-gathered
 * (Muon's Newton–Schulz), and ‖ḡ‖² from the step's scalar reduction (AdaGrad-Norm).
 */
import type { Backend, HostArray, Tensor } from '../backend/backend.js';
import type { GradientCollector } from '../batch/types.js';
import { writeShardedCheckpoint } from '../io/checkpoint-sharded.js';
import type { GradSink, Llama, UnitAccess } from '../model/llama.js';
import { tensorsWithPrefix } from '../io/checkpoint.js';
import { clippedSqNorm, clipToNorm } from '../optim/clip.js';
import type { OptimizerParams } from '../optim/config.js';
import { createOptimizer } from '../optim/create.js';
import type { Optimizer, UpdateContext } from '../optim/optimizer.js';
import type { UnitRange } from '../optim/owned.js';
import { Spans } from '../util/spans.js';
import { type CheckpointFrame, type EngineState, evalLossWith, SLOT, STAT_SLOTS, type StatRequest, type StepScalars, type TensorSource, type TrainEngine, WindowUploader } from './engine.js';
import type { ProcessGroup } from './group.js';
import { checkSnapshotOptimizer, optimizerMetadata } from './optimizer-state.js';
import { reduceRankScalars, stepScalars } from './step-scalars.js';

export interface FsdpOptions {
  /** Free gathered parameters after forward and gather again for backward (the memory-saving default). */
  reshardAfterForward: boolean;
  /** Keep a full local gradient and reduce-scatter once per step (needed for ‖g_j‖²; costs a gradient). */
  unshardedAccumulation: boolean;
}

/** A pool of full-unit scratch buffers by size, so gathers do not allocate every time. */
class BufferPool {
  private readonly free = new Map<number, Tensor[]>();
  /** Elements of the buffers currently handed out, and their high-water mark. */
  inUse = 0;
  peak = 0;
  constructor(private readonly backend: Backend) {}
  take(size: number): Tensor {
    this.inUse += size;
    this.peak = Math.max(this.peak, this.inUse);
    return this.free.get(size)?.pop() ?? this.backend.alloc([size]);
  }
  give(t: Tensor): void {
    this.inUse -= t.size;
    const list = this.free.get(t.size) ?? [];
    list.push(t);
    this.free.set(t.size, list);
  }
  dispose(): void {
    for (const list of this.free.values()) for (const t of list) this.backend.free(t);
    this.free.clear();
  }
}

export class FsdpEngine implements TrainEngine, UnitAccess, GradSink {
  readonly lockstep = true;
  readonly optimizer: Optimizer;
  /** Per unit: shard size s (elements each rank owns) and the unit's real size S. */
  readonly shardSize: number[];
  readonly unitSize: number[];
  /** This rank's shards: parameters and the step's accumulated (reduced, averaged) gradient. */
  readonly params: Tensor[];
  readonly grads: Tensor[];
  private readonly stats: Tensor;
  /** ‖ḡ‖² of this step's reduced gradient (before clipping), summed over the shards. */
  private globalSqNorm = 0;
  private readonly pool: BufferPool;
  private readonly gathered = new Map<number, Tensor>();
  private readonly openGrads = new Map<number, Tensor>();
  private localAcc: Tensor[] | null = null;
  private microIndex = -1;
  private weight = 1;
  private microSlot: number = SLOT.MICRO;
  private inMicroStep = false;
  private readonly uploader: WindowUploader;
  /** Seconds of statistics the optimizer step does not need, this step. */
  private readonly spans = new Spans(['stats']);

  constructor(
    readonly backend: Backend,
    readonly model: Llama,
    readonly group: ProcessGroup,
    optimConfig: OptimizerParams,
    readonly options: FsdpOptions = { reshardAfterForward: true, unshardedAccumulation: false },
  ) {
    const J = group.size;
    const r = group.rank;
    this.unitSize = model.layout.units.map((u) => u.size);
    this.shardSize = this.unitSize.map((S) => Math.ceil(S / J));
    this.params = this.shardSize.map((s) => backend.alloc([s]));
    this.grads = this.shardSize.map((s) => backend.alloc([s]));
    const ranges: UnitRange[] = this.shardSize.map((s) => ({ offset: r * s, size: s }));
    this.optimizer = createOptimizer(backend, model.layout, optimConfig, ranges);
    this.stats = backend.alloc([STAT_SLOTS], 'f64');
    this.pool = new BufferPool(backend);
    this.uploader = new WindowUploader(backend);
  }

  /** Elements of a full, padded unit (J·s). */
  private padded(u: number): number {
    return this.shardSize[u]! * this.group.size;
  }

  // ---- state --------------------------------------------------------------------------------

  /**
   * Loads this rank's shards from whole named tensors (every rank passes the same). Parameters may
   * come one unit at a time (a function), so the whole model never needs to exist on the host (a
   * fresh initialisation of a model too large for one rank).
   */
  loadState(state: EngineState): void {
    this.loadParams(state.params);
    if (state.optimizer) {
      checkSnapshotOptimizer(this.optimizer, state.optimizer);
      for (const { prefix, buffers } of this.optimizer.state) this.loadShards(tensorsWithPrefix(state.optimizer.tensors, prefix), buffers.units, 'optimizer state');
      this.optimizer.step = state.optimizer.step;
      this.optimizer.loadScalars(state.optimizer.scalars);
    }
  }

  /** Shards hold no copies: nothing to make equal. */
  async broadcastState(): Promise<void> {}

  /** Each rank writes its own shards; rank 0 the small files and the manifest (a collective). */
  async saveCheckpoint(parentDir: string, name: string, frame: CheckpointFrame): Promise<string | null> {
    const group = this.group;
    const shard = (t: Tensor) => (): HostArray => this.backend.download(t);
    const dir = await writeShardedCheckpoint(parentDir, name, {
      ...frame,
      params: this.params.map(shard),
      optimizer: { state: this.optimizer.state.map(({ prefix, buffers }) => ({ prefix, shards: buffers.units.map(shard) })), metadata: optimizerMetadata(this.optimizer) },
    }, { rank: group.rank, size: group.size, barrier: () => group.barrier(), agree: async (x) => (await group.allReduceScalars(Float64Array.of(x), 'sum'))[0]! });
    return group.rank === 0 ? dir : null;
  }

  private loadParams(source: TensorSource): void {
    for (const unit of this.model.layout.units) this.loadShards(typeof source === 'function' ? source(unit.index) : source, this.params, 'tensor', [unit.index]);
  }

  /** Uploads this rank's slice of each unit (all, or `units`) of whole named tensors into `targets`. */
  private loadShards(full: ReadonlyMap<string, ArrayLike<number>>, targets: readonly Tensor[], what: string, units?: readonly number[]): void {
    const r = this.group.rank;
    for (const u of units ?? this.model.layout.units.map((x) => x.index)) {
      const unit = this.model.layout.units[u]!;
      const s = this.shardSize[u]!;
      const flat = new Float32Array(this.padded(u));
      for (const v of unit.views) {
        const data = full.get(v.name);
        if (!data || data.length !== v.size) throw new Error(`missing or mis-sized ${what} '${v.name}'`);
        flat.set(data, v.offset);
      }
      this.backend.upload(targets[u]!, flat.subarray(r * s, (r + 1) * s));
    }
  }

  /** The full parameters by name, gathered from every rank (a collective: every rank must call it). */
  async gatherParams(): Promise<Map<string, Float32Array>> {
    const out = new Map<string, Float32Array>();
    for (const unit of this.model.layout.units) {
      const full = this.pool.take(this.padded(unit.index));
      await this.group.allGather(full, this.params[unit.index]!);
      const flat = this.backend.download(full) as Float32Array;
      this.pool.give(full);
      for (const v of unit.views) out.set(v.name, flat.slice(v.offset, v.offset + v.size));
    }
    return out;
  }

  async acquire(unit: number): Promise<Tensor> {
    let full = this.gathered.get(unit);
    if (!full) {
      full = this.pool.take(this.padded(unit));
      await this.group.allGather(full, this.params[unit]!);
      this.gathered.set(unit, full);
    }
    return this.backend.view(full, 0, [this.unitSize[unit]!]);
  }

  release(unit: number): void {
    // Without resharding after forward, gathered units live until the micro-step ends.
    if (this.inMicroStep && !this.options.reshardAfterForward) return;
    this.drop(unit);
  }

  private drop(unit: number): void {
    const full = this.gathered.get(unit);
    if (!full) return;
    this.gathered.delete(unit);
    this.pool.give(full);
  }

  // ---- gradients ----------------------------------------------------------------------------

  grad(unit: number): Tensor {
    const open = this.openGrads.get(unit);
    if (open) return this.backend.view(open, 0, [this.unitSize[unit]!]);
    const full = this.pool.take(this.padded(unit));
    this.backend.fill(full, 0);
    this.openGrads.set(unit, full);
    return this.backend.view(full, 0, [this.unitSize[unit]!]);
  }

  async ready(unit: number): Promise<void> {
    const full = this.openGrads.get(unit);
    if (!full) throw new Error(`ready(${unit}) for a unit with no open gradient`);
    this.openGrads.delete(unit);
    const backend = this.backend;
    // ‖g_{j,t}‖² of this unit, on the full micro-step gradient before it is reduce-scattered.
    this.spans.time('stats', () => backend.sumSquares(full, this.stats, this.microSlot));
    if (this.localAcc) {
      backend.axpy(this.localAcc[unit]!, this.weight, full);
    } else {
      // Weight w_t·/J locally, then sum over ranks: the shard of the mean over the step's samples.
      backend.scale(full, this.weight / this.group.size);
      const shard = this.microIndex === 0 ? this.grads[unit]! : this.pool.take(this.shardSize[unit]!);
      await this.group.reduceScatter(shard, full, 'sum');
      if (this.microIndex !== 0) {
        backend.axpy(this.grads[unit]!, 1, shard);
        this.pool.give(shard);
      }
    }
    this.pool.give(full);
  }

  // ---- the step -----------------------------------------------------------------------------

  registerCollector(_collector: GradientCollector): void {
    throw new Error('FSDP cannot feed a statistics collector: no rank holds a full micro-step gradient after its reduce-scatter');
  }

  beginStep(): void {
    this.backend.fill(this.stats, 0);
    this.microIndex = -1;
    this.spans.reset();
    if (this.options.unshardedAccumulation) {
      this.localAcc ??= this.unitSize.map((_, u) => this.backend.alloc([this.padded(u)]));
      for (const t of this.localAcc) this.backend.fill(t, 0);
    }
  }

  async microStep(windows: Int32Array, batch: number, seqLen: number, weight: number, dummy = false): Promise<void> {
    const [tokens, targets] = this.uploader.upload(windows, batch, seqLen);
    this.microIndex++;
    this.weight = weight;
    // A dummy micro-step (a rank with no samples left in a shortened step) joins every collective
    // with a zero-weight gradient; its loss and norm go to a scratch slot.
    this.microSlot = dummy ? SLOT.SCRATCH : SLOT.MICRO;
    this.inMicroStep = true;
    try {
      await this.model.forwardBackward(tokens, targets, batch, seqLen, this, this, this.stats, dummy ? SLOT.SCRATCH : SLOT.LOSS, 1 / (batch * seqLen));
    } finally {
      this.inMicroStep = false;
      for (const u of [...this.gathered.keys()]) this.drop(u);
    }
  }

  async finishStep(req: StatRequest): Promise<StepScalars> {
    if (req.innerProducts) throw new Error('the inner-product tests are not available under FSDP (they need ⟨g_j, ḡ⟩ with ḡ unsharded)');
    const backend = this.backend;
    const J = this.group.size;
    if (this.microIndex < 0) for (const g of this.grads) backend.fill(g, 0);
    if (this.localAcc) {
      this.spans.time('stats', () => this.localAcc!.forEach((g) => backend.sumSquares(g, this.stats, SLOT.LOCAL)));
      for (let u = 0; u < this.localAcc.length; u++) {
        backend.scale(this.localAcc[u]!, 1 / J);
        await this.group.reduceScatter(this.grads[u]!, this.localAcc[u]!, 'sum');
      }
    } else if (req.localNorms) {
      throw new Error('‖g_j‖² (per-sample and paper estimators) needs fsdp unsharded accumulation');
    }
    for (const g of this.grads) backend.sumSquares(g, this.stats, SLOT.GLOBAL);
    const s = backend.download(this.stats) as Float64Array;
    // ‖ḡ‖² is the sum of the shards' norms: it rides in the step's one scalar reduction.
    const reduced = await reduceRankScalars(this.group, { lossSum: s[SLOT.LOSS]!, tokens: s[SLOT.TOKENS]!, microSqNormSum: s[SLOT.MICRO]!, localSqNorm: s[SLOT.LOCAL]!, dot: 0, dotSq: 0, globalSqNormShare: s[SLOT.GLOBAL]! }, req.flags ?? []);
    const globalSqNorm = reduced.sums.globalSqNormShare;
    this.globalSqNorm = globalSqNorm;
    // Clipping reads ‖ḡ‖² on the device: put the reduced value there.
    const fixed = Float64Array.from(s);
    fixed[SLOT.GLOBAL] = globalSqNorm;
    backend.upload(this.stats, fixed);
    return stepScalars(req, reduced, globalSqNorm, this.spans.seconds.stats);
  }

  async update(lr: number, maxNorm: number): Promise<void> {
    clipToNorm(this.backend, this.grads, this.stats, SLOT.GLOBAL, maxNorm);
    await this.optimizer.update(this.params, this.grads, lr, this.updateContext(clippedSqNorm(this.globalSqNorm, maxNorm)));
  }

  /** Whole-tensor quantities for the optimizer: sums over the ranks, units gathered into scratch. */
  private updateContext(gradSqNorm: number): UpdateContext {
    return {
      gradSqNorm,
      sumOverShards: (values) => this.group.allReduceScalars(values, 'sum'),
      gatherUnit: async (unit, shard) => {
        const full = this.pool.take(this.padded(unit));
        await this.group.allGather(full, shard);
        return full;
      },
      releaseUnit: (_unit, full) => this.pool.give(full),
    };
  }

  evalLoss(windows: Int32Array, count: number, seqLen: number, maxBatch: number): Promise<{ lossSum: number; tokens: number }> {
    return evalLossWith(this.model, this, this.uploader, this.stats, windows, count, seqLen, maxBatch);
  }


  /**
   * Bytes of this rank's shards (parameters, gradients, optimizer state), the high-water mark of the
   * full-unit buffers in use at once (gathered parameters and open gradients), and the unsharded
   * local gradient when kept.
   */
  memory(): { shards: number; gatheredPeak: number; localAccumulation: number } {
    const shardElems = this.shardSize.reduce((a, b) => a + b, 0);
    return { shards: (2 + this.optimizer.state.length) * shardElems * 4, gatheredPeak: 4 * this.pool.peak, localAccumulation: this.localAcc ? 4 * this.shardSize.reduce((a, s) => a + s * this.group.size, 0) : 0 };
  }

  free(): void {
    for (const u of [...this.gathered.keys()]) this.drop(u);
    this.pool.dispose();
    for (const t of [...this.params, ...this.grads, ...(this.localAcc ?? [])]) this.backend.free(t);
    this.optimizer.free();
    this.backend.free(this.stats);
    this.uploader.free();
  }
}
