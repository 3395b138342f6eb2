/**
 * One training step of a model on a backend, on random token windows, timed: forward and backward
 * of one micro batch through a LocalReplica, then the AdamW update. What the step benchmarks time
 * (bench/common.ts, a whole step) and what `adabatch plan` measures (the two parts apart, to price
 * steps of any accumulation).
 */
import type { Backend } from '../backend/backend.js';
import type { ModelConfig } from '../model/config.js';
import { Llama, type LlamaOptions } from '../model/llama.js';
import { initialParameters } from '../model/params.js';
import { ADAMW_DEFAULTS } from '../optim/adamw.js';
import type { OptimizerParams } from '../optim/config.js';
import { createOptimizer } from '../optim/create.js';
import { replicaUpdateContext } from '../optim/optimizer.js';
import { LocalReplica } from '../parallel/local-replica.js';
import { Rng } from '../util/rng.js';

export interface StepProbe {
  model: Llama;
  /** A whole step: one micro-step then the update; milliseconds, windows uploaded outside the timed region. */
  step(): Promise<number>;
  /** Forward and backward of one micro batch (fresh windows); milliseconds up to a synchronize. */
  microStep(): Promise<number>;
  /** The optimizer update of the last micro-step's gradient; milliseconds up to a synchronize. */
  update(): Promise<number>;
  /** Mean loss of the last micro-step. */
  loss(): number;
  /** Releases the model's, the replica's and the optimizer's buffers (not the backend). */
  free(): void;
}

/** A probe of `batch` sequences of config.seq_len tokens per micro-step, seeded (the same windows every time). */
export function stepProbe(backend: Backend, config: ModelConfig, batch: number, options: LlamaOptions = {}, optim: OptimizerParams = ADAMW_DEFAULTS): StepProbe {
  const seqLen = config.seq_len;
  const n = batch * seqLen;
  const model = new Llama(backend, config, options);
  const replica = new LocalReplica(backend, model.layout);
  replica.params.fromHost(initialParameters(model.layout, 0));
  const optimizer = createOptimizer(backend, model.layout, optim);
  const tokens = backend.alloc([n], 'i32');
  const targets = backend.alloc([n], 'i32');
  const stats = backend.alloc([4], 'f64');
  const rng = new Rng(0);
  const data = new Int32Array(n + batch);

  // Fresh random windows of seq_len + 1 tokens (as the PyTorch reference draws them), uploaded.
  const upload = (): void => {
    for (let i = 0; i < data.length; i++) data[i] = rng.int(config.vocab);
    const x = new Int32Array(n);
    const y = new Int32Array(n);
    for (let b = 0; b < batch; b++) {
      x.set(data.subarray(b * (seqLen + 1), b * (seqLen + 1) + seqLen), b * seqLen);
      y.set(data.subarray(b * (seqLen + 1) + 1, (b + 1) * (seqLen + 1)), b * seqLen);
    }
    backend.upload(tokens, x);
    backend.upload(targets, y);
    backend.synchronize();
  };
  const forwardBackward = async (): Promise<void> => {
    backend.fill(stats, 0);
    replica.beginStep();
    replica.beginMicroStep(1, stats, 2);
    await model.forwardBackward(tokens, targets, batch, seqLen, replica, replica, stats, 0, 1 / n);
  };
  // ‖g‖² = 1: AdaGrad-Norm's accumulator only needs a plausible value for timing.
  const applyUpdate = (): Promise<void> => optimizer.update(replica.params.units, replica.grads.units, 3e-4, replicaUpdateContext(1));
  const timed = async (work: () => void | Promise<void>): Promise<number> => {
    const t0 = performance.now();
    await work();
    backend.synchronize();
    return performance.now() - t0;
  };

  return {
    model,
    async step() {
      upload();
      return timed(async () => {
        await forwardBackward();
        await applyUpdate();
      });
    },
    async microStep() {
      upload();
      return timed(forwardBackward);
    },
    update: () => timed(applyUpdate),
    loss: () => backend.download(stats)[0]! / n,
    free() {
      for (const t of [tokens, targets, stats]) backend.free(t);
      optimizer.free();
      replica.free();
      model.dispose();
    },
  };
}
