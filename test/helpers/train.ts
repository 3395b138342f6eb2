/** Building blocks for training-loop tests: a small model on the ref backend with synthetic data. */
import type { Backend } from '../../src/backend/backend.js';
import { RefBackend } from '../../src/backend/ref/index.js';
import type { BatchSchedule } from '../../src/batch/types.js';
import { SyntheticStream } from '../../src/data/synthetic.js';
import { LocalGroup, type ProcessGroup } from '../../src/parallel/group.js';
import { modelConfig, type ModelConfig } from '../../src/model/config.js';
import { Llama } from '../../src/model/llama.js';
import { initialParameters } from '../../src/model/params.js';
import { ADAMW_DEFAULTS } from '../../src/optim/adamw.js';
import { ReplicaEngine } from '../../src/parallel/replica-engine.js';
import { Trainer, type LoopConfig } from '../../src/train/trainer.js';

export const SMALL: Partial<ModelConfig> = { n_layers: 2, seq_len: 16, vocab: 64, d_model: 32, n_heads: 4, n_kv_heads: 2, ffn_dim: 64 };

export interface Rig {
  backend: Backend;
  model: Llama;
  engine: ReplicaEngine;
  trainer: Trainer;
  stream: SyntheticStream;
}

export function makeRig(schedule: BatchSchedule, loop: Partial<LoopConfig> = {}, opts: { backend?: Backend; group?: ProcessGroup; model?: Partial<ModelConfig>; seed?: number } = {}): Rig {
  const backend = opts.backend ?? new RefBackend();
  const cfg = modelConfig('tiny', { ...SMALL, ...opts.model });
  const model = new Llama(backend, cfg);
  const group = opts.group ?? new LocalGroup(backend);
  const engine = new ReplicaEngine(backend, model, group, ADAMW_DEFAULTS);
  engine.replica.params.fromHost(initialParameters(model.layout, opts.seed ?? 0));
  const syn = { vocab: cfg.vocab, phrases: 12, phrase_len: 6, seed: 5 };
  const stream = new SyntheticStream(cfg.seq_len, syn);
  const trainer = new Trainer(engine, schedule, stream, new SyntheticStream(cfg.seq_len, syn, 1e9), {
    seqLen: cfg.seq_len,
    budgetSamples: 64,
    lr: { schedule: 'constant', lr: 3e-3, min_lr: 0, warmup: 0, decay: 0.2 },
    lrScale: () => 1,
    clip: 1,
    maxMicroBatch: 8,
    maxBatch: 1024,
    evalEverySamples: 0,
    evalWindows: 8,
    maxNonFinite: 3,
    ...loop,
  });
  return { backend, model, engine, trainer, stream };
}
