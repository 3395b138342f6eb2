/**
 * The `optim` section (src/optim/config.ts): defaults per optimizer, keys of another optimizer refused
 * naming both, configs from before optim.name still AdamW; and the engines refusing optimizer state
 * written by another optimizer.
 */
import { strict as assert } from 'node:assert';
import { test } from 'node:test';
import { ADAMW_PREFIX } from '../src/io/checkpoint-format.js';
import { createBackend } from '../src/backend/registry.js';
import { modelConfig } from '../src/model/config.js';
import { buildLayout } from '../src/model/layout.js';
import { Llama } from '../src/model/llama.js';
import { estimateMemory } from '../src/model/memory.js';
import { initialParameters } from '../src/model/params.js';
import { ADAMW_DEFAULTS, ADAMW_STATE } from '../src/optim/adamw.js';
import { clippedSqNorm } from '../src/optim/clip.js';
import { OPTIMIZER_DEFAULTS, OPTIMIZER_STATE_BUFFERS, OPTIMIZERS, optimConfigSchema } from '../src/optim/config.js';
import { createOptimizer } from '../src/optim/create.js';
import { LocalGroup } from '../src/parallel/group.js';
import { ReplicaEngine } from '../src/parallel/replica-engine.js';
import { loadTrainConfig } from '../src/train/config.js';

test('optim defaults: AdamW as before without a name; each optimizer records all of its parameters', () => {
  assert.deepEqual(optimConfigSchema.parse({}), { ...ADAMW_DEFAULTS, clip: 1 });
  assert.deepEqual(optimConfigSchema.parse({ beta2: 0.99 }), { ...ADAMW_DEFAULTS, beta2: 0.99, clip: 1 });
  for (const name of ['lamb', 'adagrad', 'adagrad_norm', 'muon'] as const) {
    assert.deepEqual(optimConfigSchema.parse({ name, clip: 0 }), { name, clip: 0, ...OPTIMIZER_DEFAULTS[name] });
  }
  assert.equal(loadTrainConfig(undefined, ['optim.name=muon', 'optim.ns_steps=3']).optim.name, 'muon');
});

test('optim refuses parameters of another optimizer and out-of-range values, naming the field', () => {
  assert.throws(() => loadTrainConfig(undefined, ['optim.name=adagrad_norm', 'optim.beta1=0.9']), /optim\.beta1: beta1 is a parameter of adamw, lamb, muon, not of adagrad_norm/);
  assert.throws(() => loadTrainConfig(undefined, ['optim.momentum=0.9']), /optim\.momentum: momentum is a parameter of muon, not of adamw/);
  assert.throws(() => loadTrainConfig(undefined, ['optim.name=sgd']), /optim\.name/);
  assert.throws(() => loadTrainConfig(undefined, ['optim.name=muon', 'optim.ns_steps=0']), /optim\.ns_steps/);
  assert.throws(() => loadTrainConfig(undefined, ['optim.name=muon', 'optim.momentum=1']), /optim\.momentum/);
  assert.throws(() => loadTrainConfig(undefined, ['optim.name=adagrad', 'optim.lr_decay=-1']), /optim\.lr_decay/);
});

test('AdamW state names are the ones sharded checkpoints without optimizer_state hold', () => {
  assert.deepEqual(ADAMW_STATE, ADAMW_PREFIX);
});

test('clippedSqNorm is the squared norm after clipping (unchanged below the threshold or without clipping)', () => {
  assert.equal(clippedSqNorm(0.25, 1), 0.25);
  assert.equal(clippedSqNorm(4, 0), 4);
  assert.ok(Math.abs(clippedSqNorm(4, 0.5) - 0.25) < 1e-6);
});

test('an engine refuses optimizer state written by another optimizer', () => {
  const backend = createBackend('cpu', { threads: 1 });
  const model = new Llama(backend, modelConfig('tiny', { n_layers: 1, seq_len: 16 }));
  const params = initialParameters(model.layout, 1);
  const engine = new ReplicaEngine(backend, model, new LocalGroup(backend), optimConfigSchema.parse({ name: 'lamb' }));
  assert.throws(() => engine.loadState({ params, optimizer: { name: 'adamw', tensors: new Map(), step: 1, scalars: {} } }), /holds adamw optimizer state, but optim\.name is lamb/);
  engine.free();
  model.dispose();
});

test('memory estimates count each optimizer\'s state buffers (OPTIMIZER_STATE_BUFFERS = Optimizer.state.length)', () => {
  const backend = createBackend('cpu', { threads: 1 });
  const config = modelConfig('tiny', { n_layers: 1, seq_len: 16 });
  const layout = buildLayout(config);
  const adamw = estimateMemory(config, 1).optimizer;
  for (const name of OPTIMIZERS) {
    const optimizer = createOptimizer(backend, layout, optimConfigSchema.parse({ name }));
    assert.equal(optimizer.state.length, OPTIMIZER_STATE_BUFFERS[name], name);
    optimizer.free();
    assert.equal(estimateMemory(config, 1, { optimizerBuffers: OPTIMIZER_STATE_BUFFERS[name] }).optimizer, (adamw / 2) * OPTIMIZER_STATE_BUFFERS[name], name);
  }
});
