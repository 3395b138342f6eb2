/**
 * FSDP (and DDP) against one rank with the same global batch, using the cooperative in-thread group
 * (test/helpers/coop-group.ts): after the run the parameters agree (rel L2 < 1e-5) and every batch
 * decision of the norm test is the same. Also: dummy micro-steps on a shortened last step, keeping
 * gathered parameters between forward and backward, and unsharded accumulation for ‖g_j‖².
 */
import { strict as assert } from 'node:assert';
import { test } from 'node:test';
import type { Backend } from '../src/backend/backend.js';
import { createBackend } from '../src/backend/registry.js';
import { createSchedule } from '../src/batch/index.js';
import { SyntheticStream } from '../src/data/synthetic.js';
import { LocalGroup, type ProcessGroup } from '../src/parallel/group.js';
import type { MetricsRow } from '../src/io/metrics.js';
import { modelConfig } from '../src/model/config.js';
import { Llama } from '../src/model/llama.js';
import { buildLayout } from '../src/model/layout.js';
import { initialParameters } from '../src/model/params.js';
import { ADAMW_DEFAULTS } from '../src/optim/adamw.js';
import { optimConfigSchema, type OptimizerParams } from '../src/optim/config.js';
import { ReplicaEngine } from '../src/parallel/replica-engine.js';
import type { TrainEngine } from '../src/parallel/engine.js';
import { FsdpEngine, type FsdpOptions } from '../src/parallel/fsdp-engine.js';
import { Trainer } from '../src/train/trainer.js';
import { CoopWorld } from './helpers/coop-group.js';
import { relL2 } from './helpers/num.js';
import { SMALL } from './helpers/train.js';

const cfg = modelConfig('tiny', { ...SMALL, tie_embeddings: true });
const SEQ = cfg.seq_len;

interface RunSpec {
  batch: Record<string, unknown>;
  budget: number;
  engine: 'replica' | 'fsdp';
  fsdp?: FsdpOptions;
  /** For the one-rank reference: plan as the J-rank run does, so the realized batches are the same. */
  planRanks?: number;
  /** The optimizer (default AdamW). */
  optim?: OptimizerParams;
}

async function runRank(backend: Backend, group: ProcessGroup, spec: RunSpec): Promise<{ rows: MetricsRow[]; params: Map<string, Float32Array> }> {
  const model = new Llama(backend, cfg);
  const init = initialParameters(model.layout, 7);
  let engine: TrainEngine;
  let params: () => Promise<Map<string, Float32Array>>;
  if (spec.engine === 'fsdp') {
    const e = new FsdpEngine(backend, model, group, spec.optim ?? ADAMW_DEFAULTS, spec.fsdp);
    e.loadState({ params: init });
    engine = e;
    params = () => e.gatherParams();
  } else {
    const e = new ReplicaEngine(backend, model, group, spec.optim ?? ADAMW_DEFAULTS);
    e.replica.params.fromHost(init);
    engine = e;
    params = async () => e.replica.params.toHost() as Map<string, Float32Array>;
  }
  const syn = { vocab: cfg.vocab, phrases: 10, phrase_len: 5, seed: 3 };
  const schedule = createSchedule(spec.batch);
  const maxBatch = (spec.batch.max ?? spec.batch.batch) as number;
  schedule.validate({ ranks: group.size, maxMicroBatch: spec.batch.max_micro as number, maxBatch });
  const trainer = new Trainer(engine, schedule, new SyntheticStream(SEQ, syn), new SyntheticStream(SEQ, syn, 1e9), {
    seqLen: SEQ,
    budgetSamples: spec.budget,
    lr: { schedule: 'constant', lr: 3e-3, min_lr: 0, warmup: 0, decay: 0.2 },
    lrScale: () => 1,
    clip: 0.5,
    maxMicroBatch: spec.batch.max_micro as number,
    maxBatch,
    evalEverySamples: 24,
    evalWindows: 4,
    maxNonFinite: 2,
    ...(spec.planRanks !== undefined && { planRanks: spec.planRanks }),
  });
  const rows: MetricsRow[] = [];
  await trainer.run({ onStep: (r) => void rows.push(r.row) });
  const p = await params();
  engine.free();
  model.dispose();
  return { rows, params: p };
}

async function runWorld(J: number, spec: RunSpec): Promise<{ rows: MetricsRow[]; params: Map<string, Float32Array> }[]> {
  const backend = createBackend('cpu', { threads: 1 });
  if (J === 1) return [await runRank(backend, new LocalGroup(backend), spec)];
  const world = new CoopWorld(backend, J);
  return Promise.all(world.groups.map((g) => runRank(backend, g, spec)));
}

const flatten = (m: Map<string, Float32Array>): Float64Array => Float64Array.from([...m.values()].flatMap((a) => Array.from(a)));

function expectSameRun(name: string, got: { rows: MetricsRow[]; params: Map<string, Float32Array> }, ref: { rows: MetricsRow[]; params: Map<string, Float32Array> }): void {
  const err = relL2(flatten(got.params), flatten(ref.params));
  assert.ok(err < 1e-5, `${name}: parameters rel L2 ${err.toExponential(2)}`);
  assert.equal(got.rows.length, ref.rows.length, `${name}: steps`);
  got.rows.forEach((r, i) => {
    const e = ref.rows[i]!;
    for (const k of ['batch_size', 'micro_batch', 'next_batch', 'test_passed']) assert.equal(r[k], e[k], `${name} step ${i + 1}: ${k}`);
    // (A shortened last step is cut differently across ranks; only its total matters.)
    if (r.next_batch !== null) assert.equal((r.accum_steps as number) * (r.ranks as number), (e.accum_steps as number) * (e.ranks as number), `${name} step ${i + 1}: J·M micro-step gradients`);
    for (const k of ['loss', 'grad_sq_norm', 'test_stat', 'val_loss']) {
      if (e[k] === null || e[k] === undefined) assert.equal(r[k], e[k], `${name} step ${i + 1}: ${k}`);
      else assert.ok(Math.abs((r[k] as number) - (e[k] as number)) <= 1e-4 * Math.abs(e[k] as number), `${name} step ${i + 1}: ${k} ${r[k]} vs ${e[k]}`);
    }
  });
}

const norm = { schedule: 'norm', eta: 0.5, estimator: 'microbatch', initial: 8, max: 64, max_micro: 2 };

test('FSDP with 2 and 4 ranks equals one rank: parameters and norm-test decisions', async () => {
  // A budget that is not a multiple of the batches, so the last step is shortened.
  const spec: RunSpec = { batch: norm, budget: 8 * 5 + 6, engine: 'fsdp' };
  for (const J of [2, 4]) {
    const [ref] = await runWorld(1, { ...spec, engine: 'replica', planRanks: J });
    assert.ok(ref!.rows.some((r) => r.test_passed === false), 'the batch grows during the run');
    const ranks = await runWorld(J, spec);
    expectSameRun(`FSDP J=${J}`, ranks[0]!, ref!);
    for (const r of ranks.slice(1)) assert.deepEqual(r.params, ranks[0]!.params, 'every rank gathers the same parameters');
  }
});

test('FSDP keeping parameters between forward and backward, and a shortened step with fewer samples than ranks', async () => {
  // 4 ranks, final step of 3 samples: one rank has none and runs a zero-weight dummy micro-step.
  const spec: RunSpec = { batch: { schedule: 'constant', batch: 8, max_micro: 2 }, budget: 8 * 3 + 3, engine: 'fsdp', fsdp: { reshardAfterForward: false, unshardedAccumulation: false } };
  const [ref] = await runWorld(1, { ...spec, engine: 'replica', planRanks: 4 });
  assert.equal(ref!.rows.at(-1)!.batch_size, 3);
  const ranks = await runWorld(4, spec);
  expectSameRun('FSDP J=4, no reshard, shortened step', ranks[0]!, ref!);
});

test('the per-sample estimator: FSDP with unsharded accumulation equals DDP on the same ranks', async () => {
  const batch = { ...norm, estimator: 'per-sample', initial: 4, max: 32 };
  const ddp = await runWorld(2, { batch, budget: 40, engine: 'replica' });
  const fsdp = await runWorld(2, { batch, budget: 40, engine: 'fsdp', fsdp: { reshardAfterForward: true, unshardedAccumulation: true } });
  expectSameRun('FSDP unsharded accumulation vs DDP (J=2, per-sample)', fsdp[0]!, ddp[0]!);
  assert.ok(ddp[0]!.rows.some((r) => typeof r.test_stat === 'number'), 'the per-sample test ran');
  // Without unsharded accumulation the estimator's ‖g_j‖² is unavailable: refused, not silently zero.
  await assert.rejects(runWorld(2, { batch, budget: 40, engine: 'fsdp' }), /needs fsdp unsharded accumulation/);
});

test('DDP over the cooperative group equals one rank (2 ranks)', async () => {
  const spec: RunSpec = { batch: norm, budget: 8 * 5, engine: 'replica' };
  const [ref] = await runWorld(1, { ...spec, planRanks: 2 });
  const ranks = await runWorld(2, spec);
  expectSameRun('DDP J=2', ranks[0]!, ref!);
});

test('every optimizer: FSDP and DDP on 2 ranks equal one rank (LAMB per-tensor norms and Muon whole matrices across shards)', async () => {
  // Constant batch 8 in micro-batches of 2, 4 steps; a shortened last step too.
  const batch = { schedule: 'constant', batch: 8, max_micro: 2 };
  for (const name of ['adamw', 'lamb', 'adagrad', 'adagrad_norm', 'muon'] as const) {
    // Weight decay and a non-zero AdaGrad accumulator start, so every term of each update is exercised.
    const extra = name === 'adagrad' ? { weight_decay: 0.01, lr_decay: 0.1, initial_accumulator_value: 0.1 } : name === 'lamb' ? { weight_decay: 0.01 } : {};
    const optim = optimConfigSchema.parse({ name, ...extra });
    const spec: RunSpec = { batch, budget: 8 * 3 + 6, engine: 'fsdp', optim };
    const [one] = await runWorld(1, { ...spec, engine: 'replica', planRanks: 2 });
    const [fsdp] = await runWorld(2, spec);
    const [ddp] = await runWorld(2, { ...spec, engine: 'replica' });
    expectSameRun(`${name}: FSDP J=2 vs one rank`, fsdp!, one!);
    expectSameRun(`${name}: DDP J=2 vs one rank`, ddp!, one!);
    // The optimizer moved the parameters (not a vacuous equality).
    const init = initialParameters(buildLayout(cfg), 7);
    assert.ok(relL2(flatten(one!.params), flatten(init as Map<string, Float32Array>)) > 1e-4, `${name}: the parameters changed`);
  }
});
