/**
 * The Power scheduler (lr.schedule: power; Shen et al. 2024): values against the closed form written
 * out here, continuity at the phase boundaries, how it depends on the batch and on tokens, resume,
 * the config fields, and that the trainer feeds it tokens and the step's batch.
 */
import { strict as assert } from 'node:assert';
import { test } from 'node:test';
import YAML from 'yaml';
import { ConstantSchedule } from '../src/batch/constant.js';
import { learningRate, lrConfigSchema, lrScheduleProblems, type LrConfig } from '../src/optim/lr.js';
import { makeRig } from './helpers/train.js';

const power = (o: Record<string, unknown> = {}): LrConfig => lrConfigSchema.parse({ schedule: 'power', lr: 0.01, min_lr: 1e-4, warmup: 1000, decay: 0.1, ...o });

/**
 * The paper's schedule in tokens, written out independently of src/: η(n) = min(η_max, β·a·n^b);
 * linear warmup to η(N_w) over N_w tokens, counting the step's own sample ((s+1)/(W+1) in samples);
 * the last N_d tokens decay from η(N − N_d) to the end value.
 */
function reference(o: { samples: number; seqLen: number; batch: number; budget: number; warmup: number; decay: number; a: number; b: number; lrMax: number; minLr: number; shape: string }): number {
  const n = o.samples * o.seqLen;
  const nWarm = o.warmup * o.seqLen;
  const nTotal = o.budget * o.seqLen;
  const nDecay = o.decay * nTotal;
  const eta = (tokens: number): number => Math.min(o.lrMax, o.batch * o.a * Math.pow(tokens, o.b));
  if (n < nWarm) return eta(nWarm) * (n / o.seqLen + 1) / (o.warmup + 1);
  if (n < nTotal - nDecay) return eta(n);
  const start = eta(nTotal - nDecay);
  const end = Math.min(o.minLr, start);
  const tau = (n - (nTotal - nDecay)) / nDecay;
  return o.shape === 'linear' ? start - (start - end) * tau : end + (start - end) * (Math.exp(1 - tau) - 1) / (Math.E - 1);
}

const close = (a: number, b: number, rel = 1e-12): boolean => Math.abs(a - b) <= rel * Math.max(Math.abs(a), Math.abs(b));

test('power: the values equal the closed form in every phase, for both decay shapes, capped and not', () => {
  const budget = 100_000;
  for (const shape of ['exponential', 'linear']) {
    const c = power({ decay_shape: shape });
    for (const batch of [1, 8, 64]) {
      for (const samples of [0, 1, 499, 999, 1000, 1001, 5000, 20_000, 60_000, 89_999, 90_000, 90_001, 95_000, 99_999, 100_000]) {
        const want = reference({ samples, seqLen: 128, batch, budget, warmup: 1000, decay: 0.1, a: 4, b: -0.51, lrMax: 0.01, minLr: 1e-4, shape });
        const got = learningRate(c, { samples, seqLen: 128, batch }, budget);
        assert.ok(close(got, want), `${shape}, β ${batch}, ${samples} samples: ${got} vs ${want}`);
      }
    }
  }
  // Both regimes occur above: capped early (β·a·n^b > lr) and on the power law later.
  const c = power();
  assert.equal(learningRate(c, { samples: 2000, seqLen: 128, batch: 64 }, budget), 0.01);
  assert.ok(learningRate(c, { samples: 80_000, seqLen: 128, batch: 8 }, budget) < 0.01);
  // The exponential decay ends at min_lr; it never rises when the power law is already below it.
  assert.ok(close(learningRate(c, { samples: budget, seqLen: 128, batch: 8 }, budget), 1e-4));
  const tiny = power({ a: 1e-3 });
  const start = learningRate(tiny, { samples: 90_000, seqLen: 128, batch: 1 }, budget);
  assert.ok(start < 1e-4);
  assert.ok(close(learningRate(tiny, { samples: budget, seqLen: 128, batch: 1 }, budget), start));
});

test('power: continuous at the end of warmup and at the start of the decay', () => {
  const budget = 100_000;
  const step = (c: LrConfig, samples: number, batch = 1): number => learningRate(c, { samples, seqLen: 128, batch }, budget);
  for (const c of [power(), power({ decay_shape: 'linear' })]) {
    // β = 1 keeps the power law below the cap where the warmup ends: the warmup line reaches it.
    const w = 1000;
    assert.ok(step(c, w) < 0.01);
    assert.ok(close((step(c, w - 1) * (w + 1)) / w, step(c, w)), 'the warmup line ends on the power law');
    assert.ok(close(step(c, w + 1), step(c, w), 1e-3), 'no jump after the warmup');
    const d = 90_000;
    assert.ok(close(step(c, d - 1), step(c, d), 1e-5), `no jump into the decay: ${step(c, d - 1)} vs ${step(c, d)}`);
    assert.ok(step(c, d + 1) < step(c, d));
  }
});

test('power: batch-size agnostic in the paper’s sense — linear in β below the cap, one value at the cap; a function of tokens, not samples or steps', () => {
  const c = power({ warmup: 0.01, lr: 1 });
  const at = (samples: number, seqLen: number, batch: number, budget: number): number => learningRate(c, { samples, seqLen, batch }, budget);
  // Below the cap the rate is proportional to β (the paper's η_opt ≈ β·a·T^b).
  assert.ok(close(at(50_000, 128, 32, 100_000) / at(50_000, 128, 8, 100_000), 4));
  // At the cap every batch gets lr.
  const capped = power({ lr: 1e-4 });
  for (const batch of [4, 16, 256]) assert.equal(learningRate(capped, { samples: 50_000, seqLen: 128, batch }, 100_000), 1e-4);
  // Indexed by tokens: seq_len 128 at 20,000 samples is seq_len 256 at 10,000 samples, after the
  // warmup (which counts the step's own sample, so it differs by one sample's share there).
  for (const tokens of [128 * 5_000, 128 * 20_000, 128 * 95_000]) assert.ok(close(at(tokens / 128, 128, 16, 100_000), at(tokens / 256, 256, 16, 50_000)), `${tokens} tokens`);
});

test('power: resuming gives the same rates — a pure function of the tokens seen, the batch and the config recorded in config.yaml', () => {
  const c = power({ a: 3, b: -0.4 });
  const budget = 10_000;
  const run = (cfg: LrConfig, from: number): number[] => {
    const out: number[] = [];
    for (let s = from; s < budget; s += 16) out.push(learningRate(cfg, { samples: s, seqLen: 64, batch: 16 }, budget));
    return out;
  };
  const whole = run(c, 0);
  // The resolved config as a resumed run reads it back from config.yaml.
  const reread = lrConfigSchema.parse(YAML.parse(YAML.stringify(c)));
  assert.deepEqual(reread, c);
  assert.deepEqual(run(reread, 4992), whole.slice(4992 / 16));
});

test('power: config fields, defaults recorded, and refusals naming the field', () => {
  const d = lrConfigSchema.parse({ schedule: 'power' });
  assert.deepEqual({ a: d.a, b: d.b, decay_shape: d.decay_shape }, { a: 4, b: -0.51, decay_shape: 'exponential' });
  assert.equal('a' in lrConfigSchema.parse({ schedule: 'cosine' }), false, 'other schedules do not carry the power fields');
  const field = (raw: Record<string, unknown>): unknown => lrConfigSchema.safeParse(raw).error?.issues[0]?.path[0];
  assert.equal(field({ schedule: 'cosine', a: 4 }), 'a');
  assert.equal(field({ schedule: 'wsd', decay_shape: 'linear' }), 'decay_shape');
  assert.equal(field({ schedule: 'power', b: 0.5 }), 'b');
  assert.equal(field({ schedule: 'power', a: 0 }), 'a');
  assert.equal(field({ schedule: 'power', decay_shape: 'cosine' }), 'decay_shape');
  // A warmup into the decay is refused for the schedules that decay at the end.
  assert.equal(lrScheduleProblems(power({ warmup: 0.95 }), 1000)[0]?.field, 'lr.warmup');
  assert.deepEqual(lrScheduleProblems(power({ warmup: 0.5 }), 1000), []);
});

test('power: the trainer indexes it by tokens (samples × seq_len) and the step’s global batch', async () => {
  const lr = power({ lr: 0.05, warmup: 16, decay: 0.25, a: 0.5 });
  const budget = 8 * 12 + 4;
  const { trainer } = makeRig(new ConstantSchedule(8), { budgetSamples: budget, lr });
  const rows: Array<Record<string, number>> = [];
  await trainer.run({ onStep: (r) => void rows.push(r.row as unknown as Record<string, number>) });
  for (const r of rows) {
    const before = r.samples! - r.batch_size!;
    assert.equal(r.lr, learningRate(lr, { samples: before, seqLen: 16, batch: r.batch_size! }, budget), `step ${r.step}`);
  }
  assert.equal(rows.at(-1)!.batch_size, 4, 'the shortened last step is its own β');
});
