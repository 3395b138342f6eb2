/** The LR rule table (train/lr-rules.ts) and how the training config consults it. */
import { strict as assert } from 'node:assert';
import { test } from 'node:test';
import { LR_SCALINGS } from '../src/batch/lr.js';
import { loadTrainConfig } from '../src/train/config.js';
import { checkLrRules, lrRuleFindings, LR_RULES } from '../src/train/lr-rules.js';
import { UserError } from '../src/util/errors.js';

test('lr rules: every optimizer has a verdict and a reason for every scaling, and adamw recommends sqrt', () => {
  assert.deepEqual(Object.keys(LR_RULES).sort(), ['adagrad', 'adagrad_norm', 'adamw', 'lamb', 'muon']);
  for (const [name, rules] of Object.entries(LR_RULES)) {
    for (const s of LR_SCALINGS) assert.ok(rules.scaling[s].why.length > 20, `${name}/${s} says why`);
    assert.ok(Object.values(rules.scaling).filter((r) => r.verdict === 'recommended').length <= 1, `${name}: at most one recommended rule`);
  }
  assert.equal(LR_RULES.adamw!.scaling.sqrt.verdict, 'recommended');
  assert.equal(LR_RULES.adamw!.scaling.linear.verdict, 'discouraged');
  assert.equal(LR_RULES.adagrad_norm!.scaling.none.verdict, 'recommended');
});

test('lr rules: power with linear or sqrt scaling is an error on batch.lr_scaling; adamw + linear is a warning when the batch changes', () => {
  const base = { optimizer: 'adamw', schedule: 'cosine', scaling: 'none', batchChanges: true } as const;
  assert.deepEqual(checkLrRules(base), []);
  assert.deepEqual(checkLrRules({ ...base, scaling: 'sqrt' }), []);
  for (const scaling of ['linear', 'sqrt'] as const) {
    const f = checkLrRules({ ...base, schedule: 'power', scaling });
    assert.equal(f.length, 1);
    assert.deepEqual([f[0]!.severity, f[0]!.field], ['error', 'batch.lr_scaling']);
    assert.match(f[0]!.message, /count the batch twice/);
  }
  assert.deepEqual(checkLrRules({ ...base, schedule: 'power' }), []);
  const lin = checkLrRules({ ...base, scaling: 'linear' });
  assert.deepEqual(lin.map((f) => [f.severity, f.field]), [['warning', 'batch.lr_scaling']]);
  assert.match(lin[0]!.message, /Goyal.*recommended: sqrt/);
  assert.deepEqual(checkLrRules({ ...base, scaling: 'linear', batchChanges: false }), [], 'no warning when the batch never changes');
  // Optimizers not in the table (yet) get no optimizer-specific findings.
  assert.deepEqual(checkLrRules({ ...base, optimizer: 'sgd', scaling: 'linear' }), []);
  // The power law was fitted with AdamW.
  assert.deepEqual(checkLrRules({ ...base, optimizer: 'lamb', schedule: 'power' }).map((f) => [f.severity, f.field]), [['warning', 'lr.schedule']]);
});

test('lr rules: the training config refuses power + lr_scaling naming batch.lr_scaling, and reports warnings for the trainer', () => {
  const refused = (() => {
    try {
      loadTrainConfig(undefined, ['lr.schedule=power', 'batch.lr_scaling=sqrt']);
      return null;
    } catch (e) {
      return e;
    }
  })();
  assert.ok(refused instanceof UserError);
  assert.match(refused.message, /^batch\.lr_scaling: lr\.schedule power already scales the rate/m);
  const ok = loadTrainConfig(undefined, ['lr.schedule=power']);
  assert.deepEqual(lrRuleFindings(ok), []);
  const warned = loadTrainConfig(undefined, ['batch.lr_scaling=linear']);
  assert.deepEqual(lrRuleFindings(warned).map((f) => f.field), ['batch.lr_scaling']);
  assert.deepEqual(lrRuleFindings(loadTrainConfig(undefined, ['batch={schedule: constant, batch: 32, lr_scaling: linear}'])), []);
});
