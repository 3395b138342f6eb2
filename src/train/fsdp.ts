/**
 * FSDP / ZeRO-3: each of the J ranks owns 1/J of every unit's flat parameters, gradients and AdamW
 * moments. A unit's full parameters exist only while it is in use: all-gathered just before its
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
 * padding is zero and stays zero (its gradient is zero and no AdamW range covers it).
 */
import type { Backend, Tensor } from '../backend/backend.js';
import type { ProcessGroup } from '../dist/group.js';
import type { GradSink, Llama, UnitAccess } from '../model/llama.js';
import { AdamW, type AdamWConfig, type UnitRange } from '../optim/adamw.js';
import { clipToNorm } from '../optim/clip.js';
import type { StatRequest, StepScalars, TrainEngine } from './engine-api.js';
import { evalLossWith, SLOT, STAT_SLOTS, WindowUploader } from './engine-api.js';

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
  readonly adamw: AdamW;
  /** Per unit: shard size s (elements each rank owns) and the unit's real size S. */
  readonly shardSize: number[];
  readonly unitSize: number[];
  /** This rank's shards: parameters and the step's accumulated (reduced, averaged) gradient. */
  readonly params: Tensor[];
  readonly grads: Tensor[];
  private readonly stats: Tensor;
  private readonly pool: BufferPool;
  private readonly gathered = new Map<number, Tensor>();
  private readonly openGrads = new Map<number, Tensor>();
  private localAcc: Tensor[] | null = null;
  private microIndex = -1;
  private weight = 1;
  private microSlot: number = SLOT.MICRO;
  private inMicroStep = false;
  private readonly uploader: WindowUploader;
  private statsSeconds = 0;

  constructor(
    readonly backend: Backend,
    readonly model: Llama,
    readonly group: ProcessGroup,
    adamwConfig: AdamWConfig,
    readonly options: FsdpOptions = { reshardAfterForward: true, unshardedAccumulation: false },
  ) {
    const J = group.size;
    const r = group.rank;
    this.unitSize = model.layout.units.map((u) => u.size);
    this.shardSize = this.unitSize.map((S) => Math.ceil(S / J));
    this.params = this.shardSize.map((s) => backend.alloc([s]));
    this.grads = this.shardSize.map((s) => backend.alloc([s]));
    const ranges: UnitRange[] = this.shardSize.map((s) => ({ offset: r * s, size: s }));
    this.adamw = new AdamW(backend, model.layout, adamwConfig, ranges);
    this.stats = backend.alloc([STAT_SLOTS], 'f64');
    this.pool = new BufferPool(backend);
    this.uploader = new WindowUploader(backend);
  }

  /** Elements of a full, padded unit (J·s). */
  private padded(u: number): number {
    return this.shardSize[u]! * this.group.size;
  }

  // ---- parameters ---------------------------------------------------------------------------

  /**
   * Loads this rank's shards from full named tensors (every rank passes the same map). `source` may
   * instead be a function giving one unit's tensors at a time, so the whole model never needs to exist
   * on the host (a fresh initialisation of a model too large for one rank).
   */
  loadParams(source: Map<string, ArrayLike<number>> | ((unit: number) => Map<string, ArrayLike<number>>)): void {
    const r = this.group.rank;
    for (const unit of this.model.layout.units) {
      const full = typeof source === 'function' ? source(unit.index) : source;
      const s = this.shardSize[unit.index]!;
      const flat = new Float32Array(this.padded(unit.index));
      for (const v of unit.views) {
        const data = full.get(v.name);
        if (!data || data.length !== v.size) throw new Error(`missing or mis-sized tensor '${v.name}'`);
        flat.set(data, v.offset);
      }
      this.backend.upload(this.params[unit.index]!, flat.subarray(r * s, (r + 1) * s));
    }
  }

  /** Loads this rank's AdamW moment shards from full named moments, and the step counter. */
  loadOptimizer(m: Map<string, ArrayLike<number>>, v: Map<string, ArrayLike<number>>, step: number): void {
    const r = this.group.rank;
    for (const [moments, target] of [[m, this.adamw.m], [v, this.adamw.v]] as const) {
      for (const unit of this.model.layout.units) {
        const s = this.shardSize[unit.index]!;
        const flat = new Float32Array(this.padded(unit.index));
        for (const view of unit.views) {
          const data = moments.get(view.name);
          if (!data || data.length !== view.size) throw new Error(`missing or mis-sized optimizer moment for '${view.name}'`);
          flat.set(data, view.offset);
        }
        this.backend.upload(target.unit(unit.index), flat.subarray(r * s, (r + 1) * s));
      }
    }
    this.adamw.step = step;
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
    const b = this.backend;
    // ‖g_{j,t}‖² of this unit, on the full micro-step gradient before it is reduce-scattered.
    const t0 = performance.now();
    b.sumSquares(full, this.stats, this.microSlot);
    this.statsSeconds += (performance.now() - t0) / 1000;
    if (this.localAcc) {
      b.axpy(this.localAcc[unit]!, this.weight, full);
    } else {
      // Weight w_t·/J locally, then sum over ranks: the shard of the mean over the step's samples.
      b.scale(full, this.weight / this.group.size);
      const shard = this.microIndex === 0 ? this.grads[unit]! : this.pool.take(this.shardSize[unit]!);
      await this.group.reduceScatter(shard, full, 'sum');
      if (this.microIndex !== 0) {
        b.axpy(this.grads[unit]!, 1, shard);
        this.pool.give(shard);
      }
    }
    this.pool.give(full);
  }

  // ---- the step -----------------------------------------------------------------------------

  beginStep(): void {
    this.backend.fill(this.stats, 0);
    this.microIndex = -1;
    this.statsSeconds = 0;
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
    if (req.coordinates) throw new Error('the coordinate-wise norm test is not available under FSDP');
    const b = this.backend;
    const J = this.group.size;
    if (this.microIndex < 0) for (const g of this.grads) b.fill(g, 0);
    if (this.localAcc) {
      const t0 = performance.now();
      for (const g of this.localAcc) b.sumSquares(g, this.stats, SLOT.LOCAL);
      this.statsSeconds += (performance.now() - t0) / 1000;
      for (let u = 0; u < this.localAcc.length; u++) {
        b.scale(this.localAcc[u]!, 1 / J);
        await this.group.reduceScatter(this.grads[u]!, this.localAcc[u]!, 'sum');
      }
    } else if (req.localNorms) {
      throw new Error('‖g_j‖² (per-sample and paper estimators) needs fsdp unsharded accumulation');
    }
    for (const g of this.grads) b.sumSquares(g, this.stats, SLOT.GLOBAL);
    const s = b.download(this.stats) as Float64Array;
    const flags = req.flags ?? [];
    // ‖ḡ‖² is the sum of the shards' norms: it rides in the step's one scalar reduction.
    const local = Float64Array.of(s[SLOT.LOSS]!, s[SLOT.TOKENS]!, s[SLOT.MICRO]!, s[SLOT.LOCAL]!, s[SLOT.GLOBAL]!, ...flags);
    const r = J > 1 ? await this.group.allReduceScalars(local, 'sum') : local;
    // Clipping reads ‖ḡ‖² on the device: put the reduced value there.
    const fixed = Float64Array.from(s);
    fixed[SLOT.GLOBAL] = r[4]!;
    b.upload(this.stats, fixed);
    const out: StepScalars = {
      lossSum: r[0]!,
      tokens: r[1]!,
      microSqNormSum: r[2]!,
      localSqNormSum: req.localNorms ? r[3]! : null,
      globalSqNorm: r[4]!,
      dotSum: null,
      dotSqSum: null,
      finite: [r[0]!, r[2]!, r[3]!, r[4]!].every(Number.isFinite),
      statsSeconds: this.statsSeconds,
      flags: Array.from(r.subarray(5, 5 + flags.length)),
      coordinateStat: null,
    };
    return out;
  }

  update(lr: number, maxNorm: number): void {
    clipToNorm(this.backend, this.grads, this.stats, SLOT.GLOBAL, maxNorm);
    this.adamw.update(this.params, this.grads, lr);
  }

  evalLoss(windows: Int32Array, count: number, seqLen: number, maxBatch: number): Promise<{ lossSum: number; tokens: number }> {
    return evalLossWith(this.model, this, this.uploader, this.stats, windows, count, seqLen, maxBatch);
  }


  /**
   * Bytes of this rank's shards (parameters, gradients, AdamW moments), the high-water mark of the
   * full-unit buffers in use at once (gathered parameters and open gradients), and the unsharded
   * local gradient when kept.
   */
  memory(): { shards: number; gatheredPeak: number; localAccumulation: number } {
    const shardElems = this.shardSize.reduce((a, b) => a + b, 0);
    return { shards: 4 * shardElems * 4, gatheredPeak: 4 * this.pool.peak, localAccumulation: this.localAcc ? 4 * this.shardSize.reduce((a, s) => a + s * this.group.size, 0) : 0 };
  }

  free(): void {
    for (const u of [...this.gathered.keys()]) this.drop(u);
    this.pool.dispose();
    for (const t of [...this.params, ...this.grads, ...(this.localAcc ?? [])]) this.backend.free(t);
    this.adamw.free();
    this.backend.free(this.stats);
    this.uploader.free();
  }
}
