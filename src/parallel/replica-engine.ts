/**
 * The numeric side of one optimizer step for a full replica (one process, or one DDP rank):
 * micro-steps accumulate the gradient and its statistics, `finishStep` reduces gradients and scalars
 * across ranks, `update` clips and applies the optimizer. The training loop (train/trainer.ts) decides what
 * to run. Statistics live in a small float64 device buffer (slots in engine.ts), downloaded once per
 * step; ⟨g_j, ḡ⟩ for the inner-product tests needs a copy of g_j to survive the reduction.
 *
 * State: every rank holds all of it; rank 0 writes the consolidated checkpoint, and broadcastState
 * makes the replicas start from rank 0's weights whatever each rank loaded.
 */
import type { Backend, Tensor } from '../backend/backend.js';
import type { GradientCollector } from '../batch/types.js';
import { tensorEntriesFromBuffers, tensorsWithPrefix, writeCheckpoint } from '../io/checkpoint.js';
import type { Llama } from '../model/llama.js';
import { UnitBuffers } from '../model/params.js';
import { clippedSqNorm, clipToNorm } from '../optim/clip.js';
import type { OptimizerParams } from '../optim/config.js';
import { createOptimizer } from '../optim/create.js';
import { type Optimizer, replicaUpdateContext } from '../optim/optimizer.js';
import { Spans } from '../util/spans.js';
import { broadcastUnits } from './ddp.js';
import { type CheckpointFrame, type EngineState, evalLossWith, SLOT, STAT_SLOTS, type StatRequest, type StepScalars, type TrainEngine, WindowUploader } from './engine.js';
import type { ProcessGroup } from './group.js';
import { LocalReplica } from './local-replica.js';
import { checkSnapshotOptimizer, optimizerMetadata } from './optimizer-state.js';
import { reduceRankScalars, stepScalars } from './step-scalars.js';

export class ReplicaEngine implements TrainEngine {
  readonly lockstep = false;

  readonly replica: LocalReplica;
  readonly optimizer: Optimizer;
  private readonly stats: Tensor;
  /** ‖ḡ‖² of this step's reduced gradient (before clipping). */
  private globalSqNorm = 0;
  private readonly uploader: WindowUploader;
  private localCopy: UnitBuffers | null = null;
  private microSteps = 0;
  private collector: GradientCollector | null = null;
  /** Seconds of statistics the optimizer step does not need, this step (the replica's included). */
  private readonly spans = new Spans(['stats']);

  constructor(
    readonly backend: Backend,
    readonly model: Llama,
    readonly group: ProcessGroup,
    optimConfig: OptimizerParams,
  ) {
    this.replica = new LocalReplica(backend, model.layout, this.spans);
    this.optimizer = createOptimizer(backend, model.layout, optimConfig);
    this.stats = backend.alloc([STAT_SLOTS], 'f64');
    this.uploader = new WindowUploader(backend);
  }

  // ---- state --------------------------------------------------------------------------------

  loadState(state: EngineState): void {
    const { params, optimizer } = state;
    if (typeof params === 'function') this.model.layout.units.forEach((u) => this.replica.params.fromHost(params(u.index), [u.index]));
    else this.replica.params.fromHost(params);
    if (optimizer) {
      checkSnapshotOptimizer(this.optimizer, optimizer);
      for (const { prefix, buffers } of this.optimizer.state) buffers.fromHost(tensorsWithPrefix(optimizer.tensors, prefix));
      this.optimizer.step = optimizer.step;
      this.optimizer.loadScalars(optimizer.scalars);
    }
  }

  async broadcastState(opts: { optimizer: boolean }): Promise<void> {
    if (this.group.size === 1) return;
    await broadcastUnits(this.group, this.replica.params);
    if (opts.optimizer) for (const { buffers } of this.optimizer.state) await broadcastUnits(this.group, buffers);
  }

  async saveCheckpoint(parentDir: string, name: string, frame: CheckpointFrame): Promise<string | null> {
    if (this.group.rank !== 0) return null;
    return writeCheckpoint(parentDir, name, {
      ...frame,
      model: tensorEntriesFromBuffers(this.replica.params),
      optimizer: this.optimizer.state.flatMap(({ prefix, buffers }) => tensorEntriesFromBuffers(buffers, prefix)),
      optimizerMetadata: optimizerMetadata(this.optimizer),
    }, { overwrite: true });
  }

  // ---- a step ------------------------------------------------------------------------------

  /** The collector sees every micro-step gradient of every unit on the host (slow: for experimental statistics). */
  registerCollector(collector: GradientCollector): void {
    if (this.collector) throw new Error('a statistics collector is already registered');
    this.collector = collector;
    collector.attach(this.model.layout.units.map((u) => u.size));
    this.replica.onMicroGrad = (unit, grad) => this.spans.time('stats', () => collector.addMicroGradient(unit, this.backend.download(grad) as Float32Array));
  }

  beginStep(): void {
    this.backend.fill(this.stats, 0);
    this.replica.beginStep();
    this.spans.reset();
    this.microSteps = 0;
    this.collector?.beginStep();
  }

  /**
   * One micro-step on `windows` (batch × (seqLen+1) tokens: inputs are the first seqLen, targets the
   * last seqLen). Its mean-loss gradient enters the accumulator with weight `weight`.
   */
  async microStep(windows: Int32Array, batch: number, seqLen: number, weight: number): Promise<void> {
    const n = batch * seqLen;
    const [tokens, targets] = this.uploader.upload(windows, batch, seqLen);
    this.replica.beginMicroStep(weight, this.stats, SLOT.MICRO);
    this.microSteps++;
    await this.model.forwardBackward(tokens, targets, batch, seqLen, this.replica, this.replica, this.stats, SLOT.LOSS, 1 / n);
  }

  /** Reduces the gradient across ranks and returns the step's statistics. */
  async finishStep(req: StatRequest): Promise<StepScalars> {
    const backend = this.backend;
    const grads = this.replica.grads.units;
    const J = this.group.size;
    // A rank with no samples this step (a shortened last step with fewer samples than ranks)
    // contributes a zero gradient.
    if (this.microSteps === 0) this.replica.grads.zero();
    if (req.localNorms) this.spans.time('stats', () => grads.forEach((g) => backend.sumSquares(g, this.stats, SLOT.LOCAL)));
    const keepLocal = req.innerProducts && J > 1;
    if (keepLocal) {
      this.localCopy ??= new UnitBuffers(backend, this.model.layout);
      for (let u = 0; u < grads.length; u++) backend.copy(this.localCopy.unit(u), grads[u]!);
    }
    // DDP: one all-reduce per unit's flat gradient buffer.
    if (J > 1) for (const g of grads) await this.group.allReduce(g, 'avg');
    for (const g of grads) backend.sumSquares(g, this.stats, SLOT.GLOBAL);
    if (req.innerProducts) {
      this.spans.time('stats', () => grads.forEach((g, u) => backend.dot(keepLocal ? this.localCopy!.unit(u) : g, g, this.stats, SLOT.DOT)));
    }
    const s = backend.download(this.stats) as Float64Array;
    const dot = s[SLOT.DOT]!;
    // Every rank holds all of ḡ: its norm is not summed (globalSqNormShare 0).
    const reduced = await reduceRankScalars(this.group, { lossSum: s[SLOT.LOSS]!, tokens: s[SLOT.TOKENS]!, microSqNormSum: s[SLOT.MICRO]!, localSqNorm: s[SLOT.LOCAL]!, dot, dotSq: dot * dot, globalSqNormShare: 0 }, req.flags ?? []);
    const globalSqNorm = s[SLOT.GLOBAL]!;
    this.globalSqNorm = globalSqNorm;
    if (this.collector) {
      const collector = this.collector;
      const collected = await this.spans.timeAsync('stats', () =>
        collector.finishStep({
          ranks: J,
          microSteps: this.microSteps,
          microBatch: req.microBatch,
          globalSqNorm,
          allReduceSum: (values) => this.group.allReduceScalars(values, 'sum'),
          reducedGradient: (unit) => backend.download(this.replica.grads.unit(unit)) as Float32Array,
        }),
      );
      return { ...stepScalars(req, reduced, globalSqNorm, this.spans.seconds.stats), collected };
    }
    return stepScalars(req, reduced, globalSqNorm, this.spans.seconds.stats);
  }

  /** Clips the reduced gradient to maxNorm (no-op when ≤ 0) and applies the optimizer at `lr`. */
  async update(lr: number, maxNorm: number): Promise<void> {
    clipToNorm(this.backend, this.replica.grads.units, this.stats, SLOT.GLOBAL, maxNorm);
    await this.optimizer.update(this.replica.params.units, this.replica.grads.units, lr, replicaUpdateContext(clippedSqNorm(this.globalSqNorm, maxNorm)));
  }

  /** Σ loss and token count over `windows` (no gradients), in micro-batches of at most maxBatch. */
  evalLoss(windows: Int32Array, count: number, seqLen: number, maxBatch: number): Promise<{ lossSum: number; tokens: number }> {
    return evalLossWith(this.model, this.replica, this.uploader, this.stats, windows, count, seqLen, maxBatch);
  }

  free(): void {
    this.replica.free();
    this.optimizer.free();
    this.localCopy?.free();
    this.backend.free(this.stats);
    this.uploader.free();
  }
}
