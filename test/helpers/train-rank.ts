/**
 * One data-parallel rank for the dist tests: a small model on the cpu backend (1 kernel thread) or ref,
 * synthetic data, a batch schedule from a config section, `steps` optimizer steps through the real
 * Trainer and ReplicaEngine. Returns everything the tests compare: the final parameters (flat, in
 * layout order), each step's metrics row and the GradientStats the schedule saw.
 * Entry points: train-rank-thread.ts (a worker thread of a `threads` group), train-rank-mpi.ts (an
 * mpirun process); runRank(null, …) runs one rank alone (the one-rank reference).
 */
import { createBackend } from '../../src/backend/registry.js';
import { createSchedule, type BatchConfigInput } from '../../src/batch/index.js';
import type { GradientStats } from '../../src/batch/types.js';
import { SyntheticStream } from '../../src/data/synthetic.js';
import { broadcastUnits } from '../../src/parallel/ddp.js';
import { bindProcessGroup } from '../../src/parallel/group.js';
import type { Communicator } from '../../src/parallel/native-communicator.js';
import type { StepMetrics } from '../../src/train/step-metrics.js';
import { modelConfig, type ModelConfig } from '../../src/model/config.js';
import { Llama } from '../../src/model/llama.js';
import { initialParameters } from '../../src/model/params.js';
import { ADAMW_DEFAULTS } from '../../src/optim/adamw.js';
import { ReplicaEngine } from '../../src/parallel/replica-engine.js';
import { Trainer } from '../../src/train/trainer.js';

export const DIST_MODEL: Partial<ModelConfig> = { n_layers: 2, seq_len: 16, vocab: 96, d_model: 32, n_heads: 4, n_kv_heads: 2, ffn_dim: 64 };

export interface RankSpec {
  batch: BatchConfigInput;
  steps: number;
  budgetSamples?: number;
  clip?: number;
  seed?: number;
  /** Give rank r the seed `seed + r` before the start-up broadcast (tests that the broadcast makes replicas equal). */
  perturbSeedByRank?: boolean;
  /** Evaluate on 7 validation windows every this many samples (0: never). */
  evalEverySamples?: number;
  /** Plan batches as for this many ranks (a one-rank reference for a J-rank run: the same global batches). */
  planRanks?: number;
  /** The backend (default cpu, whose collectives run in place; ref's are staged through host buffers). */
  backend?: 'cpu' | 'ref';
}

export interface RankResult {
  rank: number;
  size: number;
  params: number[];
  rows: StepMetrics[];
  stats: GradientStats[];
}

export async function runRank(comm: Communicator | null, spec: RankSpec): Promise<RankResult> {
  const backend = createBackend(spec.backend ?? 'cpu', { threads: 1 });
  const group = await bindProcessGroup(comm, backend);
  const mc = modelConfig('tiny', DIST_MODEL);
  const model = new Llama(backend, mc);
  const engine = new ReplicaEngine(backend, model, group, ADAMW_DEFAULTS);
  const seed = (spec.seed ?? 0) + (spec.perturbSeedByRank ? group.rank : 0);
  engine.replica.params.fromHost(initialParameters(model.layout, seed));
  if (spec.perturbSeedByRank) await broadcastUnits(group, engine.replica.params);
  const syn = { vocab: mc.vocab, phrases: 10, phrase_len: 5, seed: 3 };
  const budget = spec.budgetSamples ?? 1_000_000;
  const schedule = createSchedule(spec.batch, { sampleBudget: budget });
  const trainer = new Trainer(engine, schedule, new SyntheticStream(mc.seq_len, syn), new SyntheticStream(mc.seq_len, syn, 1e9), {
    seqLen: mc.seq_len,
    budgetSamples: budget,
    lr: { schedule: 'constant', lr: 3e-3, min_lr: 0, warmup: 0, decay: 0.2 },
    lrScale: () => 1,
    clip: spec.clip ?? 1,
    maxMicroBatch: (spec.batch as { max_micro?: number }).max_micro ?? 4,
    maxBatch: 1 << 20,
    evalEverySamples: spec.evalEverySamples ?? 0,
    evalWindows: 7,
    maxNonFinite: 3,
    ...(spec.planRanks !== undefined && { planRanks: spec.planRanks }),
  });
  const rows: StepMetrics[] = [];
  const stats: GradientStats[] = [];
  for (let i = 0; i < spec.steps && !trainer.done(); i++) {
    const rec = await trainer.step({ noiseScale: (s) => (stats.push(s), null) });
    rows.push(rec.row);
  }
  const params: number[] = [];
  for (const t of engine.replica.params.units) params.push(...(backend.download(t) as Float32Array));
  engine.free();
  model.dispose();
  return { rank: group.rank, size: group.size, params, rows, stats };
}
