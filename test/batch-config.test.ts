/** The `batch:` config schema, the factory, and the docs' examples. */
import { strict as assert } from 'node:assert';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import YAML from 'yaml';
import { z } from 'zod';
import { CoordinateNormSchedule, InnerProductSchedule, NoiseScaleSchedule, NormTestSchedule } from '../src/batch/adaptive.js';
import {
  batchConfigSchema,
  batchLayout,
  createNoiseScaleTracker,
  createSchedule,
  initialBatchOf,
  lrMultiplier,
  lrScaleFor,
  maxBatchOf,
  parseBatchConfig,
  type BatchConfigInput,
} from '../src/batch/config.js';
import { ConstantSchedule } from '../src/batch/constant.js';
import { LinearRampSchedule, StagewiseSchedule } from '../src/batch/stagewise.js';
import { UserError } from '../src/util/errors.js';

function errorOf(raw: unknown): string {
  try {
    parseBatchConfig(raw);
  } catch (e) {
    assert.ok(e instanceof UserError, 'config errors are UserErrors');
    return e.message;
  }
  assert.fail(`accepted ${JSON.stringify(raw)}`);
}

test('defaults: the norm test, and a missing section means the norm test with defaults', () => {
  const full = {
    schedule: 'norm',
    max_micro: 4,
    lr_scaling: 'none',
    noise_scale: { beta: 0.9, source: 'micro' },
    initial: 16,
    max: 256,
    test_interval: 1,
    start_after_samples: 0,
    ema: null,
    hysteresis: 0,
    eta: 0.8,
    estimator: 'microbatch',
  };
  assert.deepEqual(parseBatchConfig({ schedule: 'norm' }), full);
  assert.deepEqual(parseBatchConfig({}), full);
  assert.deepEqual(parseBatchConfig({ eta: 0.15 }), { ...full, eta: 0.15 });
  // Embedded in a trainer's schema, an absent key gets the same defaults.
  assert.deepEqual(z.strictObject({ batch: batchConfigSchema }).parse({}).batch, full);
  assert.deepEqual((parseBatchConfig({ schedule: 'gns' }) as { ema: unknown }).ema, { beta: 0.9 }, 'gns smooths by default');
});

test('errors name the field and the allowed values', () => {
  assert.match(errorOf({ schedule: 'adaptive' }), /batch\.schedule: .*'constant' \| 'stagewise' \| 'ramp' \| 'norm' \| 'inner_product' \| 'orthogonality' \| 'augmented' \| 'gns' \| 'coordinate'/);
  assert.match(errorOf({ estimator: 'exact' }), /batch\.estimator: .*"microbatch"\|"per-sample"\|"paper"/);
  assert.match(errorOf({ lr_scaling: 'cubic' }), /batch\.lr_scaling: .*"none"\|"linear"\|"sqrt"/);
  assert.match(errorOf({ etaa: 0.1 }), /batch: unknown field 'etaa'/);
  assert.match(errorOf({ ema: { beta: 1 } }), /batch\.ema\.beta/);
  assert.match(errorOf({ eta: 0 }), /batch\.eta/);
  assert.match(errorOf({ initial: 64, max: 32 }), /batch\.initial: initial \(64\) must not exceed max \(32\)/);
  assert.match(errorOf({ schedule: 'inner_product' }), /batch\.theta/);
  assert.match(errorOf({ schedule: 'augmented', theta: 0.9 }), /batch\.nu/);
  assert.match(errorOf({ schedule: 'constant', batch: 8, eta: 0.2 }), /unknown field 'eta'/);
  assert.match(errorOf({ schedule: 'stagewise', stages: [{ batch: 8, fraction: 0.5 }] }), /batch\.stages: stage fractions must sum to 1/);
  assert.match(errorOf({ schedule: 'stagewise', stages: [{ batch: 8, fraction: 0.5 }, { batch: 4, fraction: 0.5 }] }), /batch\.stages\.1\.batch: .*never decreases/);
  assert.match(errorOf({ schedule: 'ramp', start: 32, increment: 48, ramp_samples: 100, max: 256 }), /batch\.increment: .*multiple of increment/);
  assert.match(errorOf({ schedule: 'coordinate', quantile: 1.5 }), /batch\.quantile/);
  assert.match(errorOf({ noise_scale: { source: 'sample' } }), /batch\.noise_scale\.source: .*"micro"\|"rank"/);
});

test('createSchedule builds each schedule with its parameters', () => {
  const norm = createSchedule({ schedule: 'norm', eta: 0.25, estimator: 'paper', initial: 256, max: 8192, ema: { beta: 0.8 }, hysteresis: 0.1, test_interval: 2, start_after_samples: 1000 });
  assert.ok(norm instanceof NormTestSchedule);
  assert.equal(norm.eta, 0.25);
  assert.equal(norm.estimator, 'paper');
  assert.deepEqual(norm.opts, { initial: 256, max: 8192, testInterval: 2, startAfterSamples: 1000, ema: { beta: 0.8 }, hysteresis: 0.1 });
  assert.equal(norm.targetBatch(0), 256);
  assert.ok(createSchedule({ schedule: 'constant', batch: 64 }) instanceof ConstantSchedule);
  assert.ok(createSchedule({ schedule: 'ramp', start: 32, increment: 32, ramp_samples: 100, max: 128 }) instanceof LinearRampSchedule);
  const ip = createSchedule({ schedule: 'augmented', theta: 0.9, nu: 5 });
  assert.ok(ip instanceof InnerProductSchedule && ip.kind === 'augmented' && ip.theta === 0.9 && ip.nu === 5);
  assert.equal(ip.name, 'augmented');
  const gns = createSchedule({ schedule: 'gns', multiplier: 20, source: 'rank' });
  assert.ok(gns instanceof NoiseScaleSchedule && gns.multiplier === 20 && gns.needs.localNorms);
  const coord = createSchedule({ schedule: 'coordinate', quantile: 0.99, threshold: 0.2 });
  assert.ok(coord instanceof CoordinateNormSchedule);
  assert.deepEqual(coord.collector.options, { quantile: 0.99, threshold: 0.2 });
  const sw = createSchedule({ schedule: 'stagewise', stages: [{ batch: 8, fraction: 0.25 }, { batch: 16, fraction: 0.75 }] }, { sampleBudget: 1000 });
  assert.ok(sw instanceof StagewiseSchedule);
  assert.deepEqual([sw.targetBatch(249), sw.targetBatch(250)], [8, 16]);
  assert.throws(() => createSchedule({ schedule: 'stagewise', stages: [{ batch: 8, fraction: 1 }] }), /sampleBudget/);
  // Already-parsed configs are accepted as they are.
  assert.ok(createSchedule(parseBatchConfig({ schedule: 'norm' })) instanceof NormTestSchedule);
});

test('layout, initial and max batch, LR multiplier and noise-scale tracker from the config', () => {
  const c = parseBatchConfig({ schedule: 'norm', initial: 256, max: 8192, max_micro: 4, lr_scaling: 'sqrt' });
  assert.deepEqual(batchLayout(c, 4), { ranks: 4, maxMicroBatch: 4, maxBatch: 8192 });
  assert.equal(initialBatchOf(c), 256);
  assert.equal(lrMultiplier(c, 1024), 2);
  assert.equal(lrScaleFor(c)(4096), 4);
  assert.equal(lrScaleFor({ schedule: 'constant', batch: 64 })(4096), 1, "default 'none'");
  assert.equal(lrScaleFor({ schedule: 'ramp', start: 32, increment: 32, ramp_samples: 100, max: 128, lr_scaling: 'linear' })(128), 4);
  const sw = parseBatchConfig({ schedule: 'stagewise', stages: [{ batch: 8, fraction: 0.5 }, { batch: 32, fraction: 0.5 }] });
  assert.deepEqual([initialBatchOf(sw), maxBatchOf(sw)], [8, 32]);
  assert.equal(maxBatchOf(parseBatchConfig({ schedule: 'constant', batch: 48 })), 48);
  const tracker = createNoiseScaleTracker({ noise_scale: { beta: 0.5, source: 'rank' } });
  assert.deepEqual(tracker.opts, { beta: 0.5, source: 'rank' });
  assert.equal(tracker.needs.localNorms, true);
});

test('every YAML example in docs/schedules.md is a valid config, with the keys the text documents', () => {
  const md = readFileSync(new URL('../../docs/schedules.md', import.meta.url), 'utf8');
  const blocks = [...md.matchAll(/```yaml\n([\s\S]*?)```/g)].map((m) => m[1]!);
  assert.ok(blocks.length >= 4, `found ${blocks.length} yaml blocks`);
  for (const b of blocks) {
    const doc = YAML.parse(b) as { batch: BatchConfigInput };
    const cfg = parseBatchConfig(doc.batch);
    createSchedule(cfg, { sampleBudget: 2_000_000 }).validate(batchLayout(cfg, 4));
  }
  // The reference block spells out exactly the defaults.
  assert.deepEqual(parseBatchConfig((YAML.parse(blocks[0]!) as { batch: unknown }).batch), parseBatchConfig({}));
});
