/** The training loop's invariants, on the ref backend with a learnable synthetic stream. */
import { strict as assert } from 'node:assert';
import { test } from 'node:test';
import { ConstantSchedule } from '../src/batch/constant.js';
import type { GradientStats } from '../src/batch/types.js';
import { NonFiniteError } from '../src/train/trainer.js';
import { relL2 } from './helpers/num.js';
import { makeRig } from './helpers/train.js';

function flat(m: Map<string, Float32Array | Float64Array>): Float64Array {
  return Float64Array.from([...m.values()].flatMap((a) => Array.from(a)));
}

test('the loss falls on a learnable stream, and the budget is met exactly by a shortened last step', async () => {
  const { trainer } = makeRig(new ConstantSchedule(8), { budgetSamples: 8 * 40 + 5, evalEverySamples: 160, lr: { schedule: 'cosine', lr: 5e-3, min_lr: 5e-4, warmup: 16, decay: 0.2 } });
  const rows: Array<Record<string, unknown>> = [];
  await trainer.run({ onStep: (r) => void rows.push(r.row) });
  assert.equal(rows.length, 41);
  assert.equal(trainer.state.samples, 8 * 40 + 5);
  assert.equal(rows.at(-1)!.batch_size, 5, 'the last step is shortened to land on the budget');
  const first = rows[0]!.loss as number;
  const last = rows.at(-1)!.loss as number;
  assert.ok(first > 3.9 && last < 0.6 * first, `loss ${first} → ${last}`);
  assert.ok(rows.some((r) => typeof r.val_loss === 'number'), 'evaluation rows');
  for (const r of rows) for (const k of ['step', 'samples', 'tokens', 'batch_size', 'micro_batch', 'accum_steps', 'lr', 'loss', 'grad_norm', 'tok_per_s', 'elapsed_s']) assert.ok(k in r, `metrics row has ${k}`);
});

test('the same global batch as 1×8, 2×4 or 8×1 micro-steps gives the same parameters', async () => {
  const results: Float64Array[] = [];
  for (const micro of [8, 4, 1]) {
    const { trainer, engine } = makeRig(new ConstantSchedule(8), { budgetSamples: 24, maxMicroBatch: micro });
    const rows: Array<Record<string, unknown>> = [];
    await trainer.run({ onStep: (r) => void rows.push(r.row) });
    assert.equal(rows[0]!.accum_steps, 8 / micro);
    results.push(flat(engine.replica.params.toHost()));
  }
  assert.ok(relL2(results[1]!, results[0]!) < 1e-6, `2×4 vs 1×8: ${relL2(results[1]!, results[0]!)}`);
  assert.ok(relL2(results[2]!, results[0]!) < 1e-6, `8×1 vs 1×8: ${relL2(results[2]!, results[0]!)}`);
});

test('fused statistics equal those of explicitly materialised micro-step gradients', async () => {
  const M = 4;
  const m = 2;
  // One step of 8 samples as 4 micro-steps, statistics from the fused path.
  const fused = makeRig(new ConstantSchedule(M * m), { budgetSamples: M * m, maxMicroBatch: m, clip: 0 });
  let stats: GradientStats | null = null;
  await fused.trainer.run({ noiseScale: (s) => ((stats = s), null) });
  // The same micro-batches, each gradient materialised alone in a fresh replica.
  const solo = makeRig(new ConstantSchedule(m), { budgetSamples: m, maxMicroBatch: m });
  const grads: Float64Array[] = [];
  for (let t = 0; t < M; t++) {
    solo.engine.beginStep();
    await solo.engine.microStep(solo.stream.windows(t * m, m), m, 16, 1);
    await solo.engine.finishStep({ localNorms: false, innerProducts: false, microBatch: m });
    grads.push(flat(solo.engine.replica.grads.toHost()));
  }
  const sq = (a: Float64Array) => a.reduce((s, v) => s + v * v, 0);
  const microSq = grads.reduce((s, g) => s + sq(g), 0);
  const mean = grads[0]!.map((_, i) => grads.reduce((s, g) => s + g[i]!, 0) / M);
  assert.ok(stats, 'statistics were reported');
  const st = stats as GradientStats;
  assert.equal(st.plan.accumSteps, M);
  assert.ok(Math.abs(st.microSqNormSum - microSq) / microSq < 1e-5, `Σ‖g_t‖² fused ${st.microSqNormSum} vs explicit ${microSq}`);
  assert.ok(Math.abs(st.globalSqNorm - sq(mean)) / sq(mean) < 1e-5, `‖ḡ‖² fused ${st.globalSqNorm} vs explicit ${sq(mean)}`);
});

test('non-finite gradients skip the step, are logged, and stop the run after max_nonfinite in a row', async () => {
  const rig = makeRig(new ConstantSchedule(4), { budgetSamples: 100, maxNonFinite: 3 });
  const params = rig.engine.replica.params.toHost();
  const name = 'model.layers.0.mlp.up_proj.weight';
  params.get(name)![0] = NaN;
  rig.engine.replica.params.fromHost(params);
  const logs: string[] = [];
  const rows: Array<Record<string, unknown>> = [];
  await assert.rejects(rig.trainer.run({ log: (m) => logs.push(m), onStep: (r) => void rows.push(r.row) }), (e: Error) => e instanceof NonFiniteError && /3 consecutive steps/.test(e.message));
  assert.equal(rows.length, 3);
  assert.ok(rows.every((r) => r.skipped === true));
  assert.equal(logs.length, 3);
  assert.match(logs[0]!, /non-finite/);
  const after = rig.engine.replica.params.toHost();
  assert.equal(after.get('model.layers.1.mlp.up_proj.weight')![0], params.get('model.layers.1.mlp.up_proj.weight')![0], 'no update was applied');
});

test('the coordinate-wise norm test (experimental) runs in the loop, its statistic equal to the exact quantile', async () => {
  const { createSchedule } = await import('../src/batch/index.js');
  const { coordinateNormStat, coordinateThreshold } = await import('../src/batch/coordinate.js');
  const schedule = createSchedule({ schedule: 'coordinate', eta: 0.5, initial: 4, max: 32, max_micro: 2, quantile: 0.9, threshold: 0.1 });
  const rig = makeRig(schedule, { budgetSamples: 4, maxMicroBatch: 2, clip: 0 });
  const stats: GradientStats[] = [];
  await rig.trainer.run({ noiseScale: (s) => (stats.push(s), null) });
  const got = stats[0]!.collected;
  assert.ok(typeof got === 'number' && got > 0, `coordinate statistic ${got}`);
  // Independent: materialise the two micro-step gradients and compute the exact quantile.
  const solo = makeRig(new ConstantSchedule(2), { budgetSamples: 2, maxMicroBatch: 2 });
  const grads: Float64Array[] = [];
  for (let t = 0; t < 2; t++) {
    solo.engine.beginStep();
    await solo.engine.microStep(solo.stream.windows(t * 2, 2), 2, 16, 1);
    await solo.engine.finishStep({ localNorms: false, innerProducts: false, microBatch: 2 });
    grads.push(flat(solo.engine.replica.grads.toHost()));
  }
  const mean = grads[0]!.map((v, i) => (v + grads[1]![i]!) / 2);
  const sq = grads[0]!.map((v, i) => v * v + grads[1]![i]! ** 2);
  const g2 = mean.reduce((s, v) => s + v * v, 0);
  const exact = coordinateNormStat(sq, mean, { samples: 2, microBatch: 2 }, { quantile: 0.9, minAbsMean: coordinateThreshold(0.1, g2, mean.length) });
  assert.ok(exact !== null && Math.abs(got! - exact) / exact < 0.04, `histogram ${got} vs exact ${exact} (±3.1% bins)`);
});
