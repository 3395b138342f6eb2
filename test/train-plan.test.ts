/**
 * `adabatch plan`'s core (train/plan.ts): the trajectories of a constant, a stagewise and an adaptive
 * config against numbers worked out here step by step, and each inconsistency refused naming its field.
 */
import { strict as assert } from 'node:assert';
import { test } from 'node:test';
import { loadTrainConfig, type TrainConfig } from '../src/train/config.js';
import { planRun, type RunPlan, type StepTiming } from '../src/train/plan.js';
import type { PlanRow } from '../src/train/plan-trajectory.js';

const BASE = ['model.preset=tiny', 'data={synthetic: {}}', 'budget.samples=1000', 'lr={schedule: cosine, lr: 0.001, min_lr: 0.0001, warmup: 100}'];
const config = (...sets: string[]): TrainConfig => loadTrainConfig(undefined, [...BASE, ...sets]);
const plan = (cfg: TrainConfig, ranks = 1, extra: { measure?: StepTiming | null; availableBytes?: number } = {}): Promise<RunPlan> =>
  planRun(cfg, { ranks, ranksInProcess: ranks, measure: extra.measure ?? null, availableBytes: extra.availableBytes ?? 2 ** 40 });

/** The cosine schedule of BASE, written out: warmup (s+1)/(W+1), then cosine from 1e-3 to 1e-4 over the rest. */
function cosine(s: number): number {
  if (s < 100) return (1e-3 * (s + 1)) / 101;
  return 1e-4 + 0.5 * 9e-4 * (1 + Math.cos((Math.PI * Math.min(1, (s - 100) / 900))));
}

const close = (a: number, b: number): boolean => Math.abs(a - b) <= 1e-12 * Math.max(Math.abs(a), Math.abs(b));
const rowAt = (p: RunPlan, samples: number): PlanRow => {
  const r = p.rows.find((x) => x.samples === samples);
  assert.ok(r, `a row at ${samples} samples (rows at ${p.rows.map((x) => x.samples).join(', ')})`);
  return r;
};
const fields = (p: RunPlan): Array<string | null> => p.errors.map((e) => e.field);

test('plan: a constant batch — steps, the shortened last step, LR at step starts and time, as worked out here', async () => {
  const timing: StepTiming = { backend: 'test', threads: 1, microBatch: 8, microStepS: 0.1, updateS: 0.05 };
  const p = await plan(config('batch={schedule: constant, batch: 24, max_micro: 8}'), 1, { measure: timing });
  assert.deepEqual(p.errors, []);
  // 1000 samples in steps of 24: 41 full steps and a last one of 1000 − 41·24 = 16.
  assert.deepEqual(p.steps, [42, 42]);
  // Each step is 3 micro-steps of 8 plus an update: 3·0.1 + 0.05 s.
  assert.ok(Math.abs(p.seconds![0] - 42 * 0.35) < 1e-9, `${p.seconds}`);
  // The row for 500 samples is the step that covers it: it starts at ⌊500/24⌋·24 = 480, the 21st.
  const r = rowAt(p, 480);
  assert.deepEqual([r.steps, r.batch, r.tokens], [[20, 20], [24, 24], 480 * 128]);
  assert.ok(close(r.lr[0], cosine(480)), `${r.lr[0]} vs ${cosine(480)}`);
  assert.ok(Math.abs(r.elapsedS![0] - 20 * 0.35) < 1e-9);
  const warm = rowAt(p, 96);
  assert.ok(warm.marks.includes('warmup end'), 'the step covering sample 100 starts at 96');
  const end = rowAt(p, 1000);
  assert.deepEqual([end.steps, end.batch, end.marks], [[42, 42], [16, 16], ['end']]);
  for (const row of p.rows.filter((x) => x.samples < 1000)) assert.ok(close(row.lr[0], cosine(row.samples)), `lr at ${row.samples}`);
});

test('plan: a stagewise schedule — batch changes where the stages end, as a step-by-step walk gives', async () => {
  const cfg = config('batch={schedule: stagewise, max_micro: 4, stages: [{batch: 16, fraction: 0.1}, {batch: 32, fraction: 0.3}, {batch: 64, fraction: 0.6}]}');
  const p = await plan(cfg, 2);
  assert.deepEqual(p.errors, []);
  // Walk the steps: stages end at 100, 400 and 1000 samples; a step takes the batch of the stage it starts in.
  const starts: Array<[number, number]> = [];
  for (let s = 0; s < 1000; ) {
    const b = s < 100 ? 16 : s < 400 ? 32 : 64;
    starts.push([s, b]);
    s += b;
  }
  assert.equal(starts.length, 7 + 9 + 10);
  assert.deepEqual(p.steps, [starts.length, starts.length]);
  const changes = p.rows.filter((r) => r.marks.includes('batch change')).map((r) => [r.samples, r.steps[0], r.batch[0]]);
  assert.deepEqual(changes, [
    [112, 7, 32],
    [400, 16, 64],
  ]);
  for (const r of p.rows.filter((x) => x.samples < 1000)) {
    const i = starts.findIndex(([s]) => s === r.samples);
    assert.ok(i >= 0, `row ${r.samples} is a step start`);
    assert.deepEqual([r.steps[0], r.batch[0]], [i, starts[i]![1]]);
    assert.ok(close(r.lr[0], cosine(r.samples)));
  }
  assert.deepEqual(rowAt(p, 1000).batch, [1000 - 16 * 7 - 32 * 9 - 64 * 9, 1000 - 16 * 7 - 32 * 9 - 64 * 9]);
});

test('plan: an adaptive schedule — ranges between the realised initial and max batches, LR range from lr_scaling', async () => {
  const p = await plan(config('batch={schedule: norm, initial: 16, max: 256, max_micro: 4, lr_scaling: sqrt}'));
  assert.deepEqual(p.errors, []);
  assert.equal(p.schedule.fixed, false);
  assert.deepEqual(p.steps, [Math.ceil(1000 / 256), Math.ceil(1000 / 16)]);
  const r = rowAt(p, 500);
  assert.deepEqual([r.batch, r.steps], [[16, 256], [Math.ceil(500 / 256), Math.ceil(500 / 16)]]);
  // sqrt scaling relative to the initial batch: ×1 at 16, ×√(256/16) = ×4 at 256.
  assert.ok(close(r.lr[0], cosine(500)) && close(r.lr[1], 4 * cosine(500)), `${r.lr} vs ${cosine(500)}`);
  assert.equal(p.seconds, null, 'no timing, no time estimate');
});

test('plan: each inconsistency is an error naming its field', async () => {
  assert.deepEqual(fields(await plan(config('lr.warmup=2000'))), ['lr.warmup']);
  assert.deepEqual(fields(await plan(config('lr.schedule=wsd', 'lr.warmup=0.9'))), ['lr.warmup']);
  const odd = await plan(config('batch={schedule: constant, batch: 17, max_micro: 4}'), 2);
  assert.deepEqual(fields(odd), ['batch.batch']);
  assert.match(odd.errors[0]!.message, /realise 18 .*exactly are 16 or 18/);
  assert.deepEqual(fields(await plan(config('batch={schedule: stagewise, stages: [{batch: 64, fraction: 0.05}, {batch: 128, fraction: 0.95}]}'))), ['batch.stages.0.fraction']);
  assert.deepEqual(fields(await plan(config('batch={schedule: stagewise, max_micro: 4, stages: [{batch: 30, fraction: 0.5}, {batch: 64, fraction: 0.5}]}'), 4)), ['batch.stages.0.batch']);
  assert.deepEqual(fields(await plan(config(), 1, { availableBytes: 2 ** 20 })), ['batch.max_micro']);
  // webgpu keeps the run's tensors on the GPU: host memory is not what limits it.
  assert.deepEqual(fields(await plan(config('backend=webgpu'), 1, { availableBytes: 2 ** 20 })), []);
  assert.deepEqual(fields(await plan(config('batch.estimator=per-sample'))), [null], 'the trainer’s own refusal (per-sample needs two ranks), as it words it');
  // Warnings do not fail the plan.
  const loose = await plan(config('batch={schedule: constant, batch: 8, max_micro: 16}'));
  assert.deepEqual([fields(loose), loose.warnings.map((w) => w.field)], [[], ['batch.max_micro']]);
  const linear = await plan(config('batch.lr_scaling=linear'));
  assert.deepEqual(linear.warnings.map((w) => w.field), ['batch.lr_scaling']);
});
