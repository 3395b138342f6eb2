/** Learning-rate schedules indexed by samples: cosine, constant, wsd. */
import { strict as assert } from 'node:assert';
import { test } from 'node:test';
import { learningRate, lrConfigSchema } from '../src/optim/lr.js';

const cfg = (o: Record<string, unknown>) => lrConfigSchema.parse({ lr: 1e-3, min_lr: 1e-4, warmup: 100, ...o });
/** These schedules ignore the sequence length and the batch (the power schedule's tests: optim-lr-power). */
const at = (samples: number) => ({ samples, seqLen: 256, batch: 16 });

test('linear warmup then cosine to min_lr at the budget', () => {
  const c = cfg({ schedule: 'cosine' });
  assert.ok(learningRate(c, at(0), 1000) > 0, 'the first step does not run at lr 0');
  assert.ok(Math.abs(learningRate(c, at(49), 1000) - 1e-3 * 50 / 101) < 1e-12);
  assert.equal(learningRate(c, at(100), 1000), 1e-3);
  const mid = learningRate(c, at(550), 1000);
  assert.ok(Math.abs(mid - (1e-4 + 0.5 * 9e-4)) < 1e-12, `halfway through the decay the cosine is at the midpoint (${mid})`);
  assert.ok(Math.abs(learningRate(c, at(1000), 1000) - 1e-4) < 1e-15);
  let prev = Infinity;
  for (let s = 100; s <= 1000; s += 10) {
    const lr = learningRate(c, at(s), 1000);
    assert.ok(lr <= prev);
    prev = lr;
  }
});

test('a fractional warmup is a fraction of the budget; constant and wsd', () => {
  assert.equal(learningRate(cfg({ warmup: 0.1, schedule: 'constant' }), at(100), 1000), 1e-3);
  assert.ok(learningRate(cfg({ warmup: 0.1, schedule: 'constant' }), at(99), 1000) < 1e-3);
  const w = cfg({ schedule: 'wsd', decay: 0.2 });
  assert.equal(learningRate(w, at(700), 1000), 1e-3);
  assert.ok(Math.abs(learningRate(w, at(900), 1000) - 5.5e-4) < 1e-12);
  assert.ok(Math.abs(learningRate(w, at(1000), 1000) - 1e-4) < 1e-15);
});

test('invalid LR configs are refused with the field named', () => {
  assert.equal(lrConfigSchema.safeParse({ lr: 1e-4, min_lr: 1e-3 }).error?.issues[0]?.path[0], 'min_lr');
  assert.equal(lrConfigSchema.safeParse({ schedule: 'linear' }).error?.issues[0]?.path[0], 'schedule');
  assert.equal(lrConfigSchema.safeParse({ lr: -1 }).error?.issues[0]?.path[0], 'lr');
});
