/**
 * The numeric side of one optimizer step for a full replica (one process, or one DDP rank):
 * micro-steps accumulate the gradient and its statistics, `finishStep` reduces gradients and scalars
 * across ranks, `update` clips and applies AdamW. The training loop (trainer.ts) decides what to run.
 * Statistics live in a small float64 device buffer (slots in engine-api.ts), downloaded once per step;
 * ⟨g_j, ḡ⟩ for the inner-product tests needs a copy of g_j to survive the reduction.
 */
import type { Backend, Tensor } from '../backend/backend.js';
import type { ProcessGroup } from '../dist/group.js';
import type { Llama } from '../model/llama.js';
import { UnitBuffers } from '../model/params.js';
import { AdamW, type AdamWConfig } from '../optim/adamw.js';
import { clipToNorm } from '../optim/clip.js';
import { evalLossWith, SLOT, STAT_SLOTS, type StatRequest, type StepScalars, type TrainEngine, WindowUploader } from './engine-api.js';
import { CoordinateHistogram, coordinateThreshold } from '../batch/coordinate.js';
import { LocalReplica } from './replica.js';

export { SLOT, type StatRequest, type StepScalars } from './engine-api.js';

export class ReplicaEngine implements TrainEngine {
  readonly lockstep = false;

  readonly replica: LocalReplica;
  readonly adamw: AdamW;
  private readonly stats: Tensor;
  private readonly uploader: WindowUploader;
  private localCopy: UnitBuffers | null = null;
  private microSteps = 0;
  /** Per unit Σ_t g_t² on the host, while the coordinate statistic is requested. */
  private coordSq: Float64Array[] | null = null;

  constructor(
    readonly backend: Backend,
    readonly model: Llama,
    readonly group: ProcessGroup,
    adamwConfig: AdamWConfig,
  ) {
    this.replica = new LocalReplica(backend, model.layout);
    this.adamw = new AdamW(backend, model.layout, adamwConfig);
    this.stats = backend.alloc([STAT_SLOTS], 'f64');
    this.uploader = new WindowUploader(backend);
  }

  beginStep(): void {
    this.backend.fill(this.stats, 0);
    this.replica.beginStep();
    this.replica.statsSeconds = 0;
    this.microSteps = 0;
    if (this.coordSq) for (const a of this.coordSq) a.fill(0);
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

  /** With the coordinate test, accumulate per-coordinate squared micro-step gradients (host-side, slow: experimental). */
  prepareStatistics(needs: { coordinates: boolean }): void {
    if (needs.coordinates && !this.coordSq) {
      this.coordSq = this.model.layout.units.map((u) => new Float64Array(u.size));
      this.replica.onMicroGrad = (unit, grad) => {
        const t0 = performance.now();
        const g = this.backend.download(grad);
        const acc = this.coordSq![unit]!;
        for (let i = 0; i < acc.length; i++) acc[i] += g[i]! * g[i]!;
        this.replica.statsSeconds += (performance.now() - t0) / 1000;
      };
    }
  }

  /** The coordinate statistic from Σ_{j,t} g² (reduced across ranks) and the reduced gradient ḡ. */
  private async coordinateStat(c: NonNullable<StatRequest['coordinates']>, globalSqNorm: number): Promise<number | null> {
    const J = this.group.size;
    const hist = new CoordinateHistogram({ samples: J * this.microSteps, microBatch: c.microBatch }, coordinateThreshold(c.threshold, globalSqNorm, this.model.layout.paramCount));
    for (let u = 0; u < this.coordSq!.length; u++) {
      const sq = J > 1 ? await this.group.allReduceScalars(this.coordSq![u]!, 'sum') : this.coordSq![u]!;
      hist.add(sq, this.backend.download(this.replica.grads.unit(u)) as Float32Array);
    }
    // No coordinate above the threshold: none asks for a larger batch.
    return hist.quantile(c.quantile) ?? 0;
  }

  /** Reduces the gradient across ranks and returns the step's statistics. */
  async finishStep(req: StatRequest): Promise<StepScalars> {
    const b = this.backend;
    const grads = this.replica.grads.units;
    const J = this.group.size;
    // A rank with no samples this step (a shortened last step with fewer samples than ranks)
    // contributes a zero gradient.
    if (this.microSteps === 0) this.replica.grads.zero();
    const t0 = performance.now();
    if (req.localNorms) for (const g of grads) b.sumSquares(g, this.stats, SLOT.LOCAL);
    let statsSeconds = (performance.now() - t0) / 1000 + this.replica.statsSeconds;
    const keepLocal = req.innerProducts && J > 1;
    if (keepLocal) {
      this.localCopy ??= new UnitBuffers(b, this.model.layout);
      for (let u = 0; u < grads.length; u++) b.copy(this.localCopy.unit(u), grads[u]!);
    }
    // DDP: one all-reduce per unit's flat gradient buffer.
    if (J > 1) for (const g of grads) await this.group.allReduce(g, 'avg');
    for (const g of grads) b.sumSquares(g, this.stats, SLOT.GLOBAL);
    if (req.innerProducts) {
      const t1 = performance.now();
      for (let u = 0; u < grads.length; u++) b.dot(keepLocal ? this.localCopy!.unit(u) : grads[u]!, grads[u]!, this.stats, SLOT.DOT);
      statsSeconds += (performance.now() - t1) / 1000;
    }
    const s = b.download(this.stats) as Float64Array;
    // One small float64 reduction carries every per-rank scalar.
    const flags = req.flags ?? [];
    const local = Float64Array.of(s[SLOT.LOSS]!, s[SLOT.TOKENS]!, s[SLOT.MICRO]!, s[SLOT.LOCAL]!, s[SLOT.DOT]!, s[SLOT.DOT]! * s[SLOT.DOT]!, ...flags);
    const r = J > 1 ? await this.group.allReduceScalars(local, 'sum') : local;
    const globalSqNorm = s[SLOT.GLOBAL]!;
    const out: StepScalars = {
      lossSum: r[0]!,
      tokens: r[1]!,
      microSqNormSum: r[2]!,
      localSqNormSum: req.localNorms ? r[3]! : null,
      globalSqNorm,
      dotSum: req.innerProducts ? r[4]! : null,
      dotSqSum: req.innerProducts ? r[5]! : null,
      finite: false,
      statsSeconds,
      flags: Array.from(r.subarray(6, 6 + flags.length)),
      coordinateStat: null,
    };
    if (req.coordinates && this.coordSq && this.microSteps > 0) {
      const t2 = performance.now();
      out.coordinateStat = await this.coordinateStat(req.coordinates, globalSqNorm);
      out.statsSeconds += (performance.now() - t2) / 1000;
    }
    out.finite = [out.lossSum, out.microSqNormSum, globalSqNorm, r[3]!, r[4]!].every(Number.isFinite);
    return out;
  }

  /** Clips the reduced gradient to maxNorm (no-op when ≤ 0) and applies AdamW at `lr`. */
  update(lr: number, maxNorm: number): void {
    clipToNorm(this.backend, this.replica.grads.units, this.stats, SLOT.GLOBAL, maxNorm);
    this.adamw.update(this.replica.params.units, this.replica.grads.units, lr);
  }

  /** Σ loss and token count over `windows` (no gradients), in micro-batches of at most maxBatch. */
  evalLoss(windows: Int32Array, count: number, seqLen: number, maxBatch: number): Promise<{ lossSum: number; tokens: number }> {
    return evalLossWith(this.model, this.replica, this.uploader, this.stats, windows, count, seqLen, maxBatch);
  }


  free(): void {
    this.replica.free();
    this.adamw.free();
    this.localCopy?.free();
    this.backend.free(this.stats);
    this.uploader.free();
  }
}
