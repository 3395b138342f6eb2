/**
 * Checkpoint directories: bit-exact round trips, checksums checked against an independent hash,
 * every kind of damage reported as a UserError naming the file, listing/choosing/pruning, and crash
 * safety (a child process SIGKILLed at each stage of a write).
 */
import { strict as assert } from 'node:assert';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, truncateSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { RefBackend } from '../src/backend/ref/index.js';
import {
  type CheckpointContent,
  checkpointName,
  latestValidCheckpoint,
  listCheckpoints,
  pruneCheckpoints,
  readCheckpoint,
  readLatestCheckpoint,
  readManifest,
  tensorEntriesFromBuffers,
  tensorsWithPrefix,
  verifyCheckpoint,
  writeCheckpoint,
} from '../src/io/checkpoint.js';
import { ADAMW_PREFIX, recoverInterruptedWrites } from '../src/io/checkpoint-format.js';
import { loadModelDir } from '../src/io/hf.js';
import { SafetensorsReader } from '../src/io/safetensors.js';
import { modelConfig, type ModelConfig } from '../src/model/config.js';
import { buildLayout } from '../src/model/layout.js';
import { initialParameters, UnitBuffers } from '../src/model/params.js';
import { UserError } from '../src/util/errors.js';
import { tempDir } from './helpers/tmp.js';

const freshDir = (): string => tempDir('adabatch-io-ckpt-');

/** A micro model (fast) with GQA; tied or not. */
function microConfig(tied = false): ModelConfig {
  return modelConfig(undefined, { vocab: 64, d_model: 32, n_layers: 2, n_heads: 4, n_kv_heads: 2, ffn_dim: 48, seq_len: 32, tie_embeddings: tied, rope_theta: 5000, norm_eps: 1e-6, init_std: 0.05 });
}

/** Weights with awkward float32 values (subnormals, -0, large, tiny) so bit-exactness means something. */
function content(config: ModelConfig, step: number, seed = 7): CheckpointContent {
  const model = initialParameters(buildLayout(config), seed);
  const emb = model.get('model.embed_tokens.weight')!;
  emb[0] = -0;
  emb[1] = 1.401298464324817e-45; // smallest subnormal
  emb[2] = 3.4028234663852886e38;
  emb[3] = -1.1754942106924411e-38;
  const m = new Map<string, Float32Array>();
  const v = new Map<string, Float32Array>();
  for (const [name, w] of model) {
    m.set(name, w.map((x, i) => x * 0.1 + i * 1e-7));
    v.set(name, w.map((x) => x * x + 1e-12));
  }
  const optimizer = new Map<string, Float32Array | Float64Array | Int32Array>();
  for (const [n, t] of m) optimizer.set(ADAMW_PREFIX.m + n, t);
  for (const [n, t] of v) optimizer.set(ADAMW_PREFIX.v + n, t);
  optimizer.set('loss_ema', Float64Array.from([Math.PI, Math.E]));
  optimizer.set('counters', Int32Array.from([step, -3, 2 ** 31 - 1]));
  return {
    config,
    model,
    optimizer,
    optimizerMetadata: { step: String(step), betas: '[0.9,0.95]' },
    trainerState: { step, samples: step * 16, rng: [1, 2, 3, 4], schedule: { kind: 'ema', value: 0.123456789012345 }, note: 'ü ✓' },
    tokenizerJson: '{"model":{"type":"BPE"},"added_tokens":[]}',
    tokenIds: { bos_token_id: 1, eos_token_id: 2 },
    step,
  };
}

const bits = (a: Float32Array | Float64Array | Int32Array): Buffer => Buffer.from(a.buffer, a.byteOffset, a.byteLength);

function assertUserError(fn: () => unknown, ...patterns: RegExp[]): UserError {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof UserError, `expected a UserError, got ${(e as Error).name}: ${(e as Error).message}`);
    for (const p of patterns) assert.match(e.message, p);
    return e;
  }
  assert.fail(`expected a UserError matching ${patterns.join(', ')}`);
}

test('write → read gives bit-identical tensors, state, tokenizer; manifest hashes match an independent SHA-256', () => {
  for (const tied of [false, true]) {
    const parent = freshDir();
    const c = content(microConfig(tied), 1234);
    const dir = writeCheckpoint(parent, checkpointName(1234), c);
    assert.equal(dir, join(parent, 'step-00001234'));
    assert.deepEqual(readdirSync(parent), ['step-00001234'], 'no temporary directory left behind');
    const files = readdirSync(dir).sort();
    assert.deepEqual(files, ['checksums.json', 'config.json', 'model.safetensors', 'optimizer.safetensors', 'tokenizer.json', 'trainer_state.json']);
    const manifest = JSON.parse(readFileSync(join(dir, 'checksums.json'), 'utf8')) as { format: string; version: number; step: number; files: Record<string, { size: number; sha256: string }> };
    assert.equal(manifest.format, 'adabatch-checkpoint');
    assert.equal(manifest.version, 1);
    assert.equal(manifest.step, 1234);
    assert.deepEqual(Object.keys(manifest.files).sort(), files.filter((f) => f !== 'checksums.json'));
    for (const [f, d] of Object.entries(manifest.files)) {
      const bytes = readFileSync(join(dir, f));
      assert.equal(d.size, bytes.length, f);
      assert.equal(d.sha256, createHash('sha256').update(bytes).digest('hex'), f);
    }

    const back = readCheckpoint(dir);
    assert.deepEqual(back.config, c.config);
    assert.deepEqual([...back.model.keys()], [...(c.model as Map<string, Float32Array>).keys()], 'layout order, same names');
    for (const [name, w] of c.model as Map<string, Float32Array>) assert.ok(bits(back.model.get(name)!).equals(bits(w)), `model ${name} bit-identical`);
    assert.equal(back.model.has('lm_head.weight'), !tied);
    for (const [name, t] of c.optimizer as Map<string, Float32Array>) {
      const got = back.optimizer!.get(name)!;
      assert.equal(got.constructor, t.constructor, `${name} dtype`);
      assert.ok(bits(got).equals(bits(t)), `optimizer ${name} bit-identical`);
    }
    assert.equal(back.optimizer!.size, (c.optimizer as Map<string, unknown>).size);
    assert.equal(back.optimizerMetadata!.step, '1234');
    assert.equal(back.optimizerMetadata!.format, 'adabatch-optimizer');
    assert.deepEqual(back.trainerState, c.trainerState);
    assert.equal(back.tokenizerJson, c.tokenizerJson);
    assert.deepEqual(back.tokenIds, { bos_token_id: 1, eos_token_id: 2, pad_token_id: null });
    const m = tensorsWithPrefix(back.optimizer!, ADAMW_PREFIX.m);
    assert.equal(m.size, back.model.size);

    // The safetensors files are standard: the existing reader sees shapes, metadata and values.
    const r = SafetensorsReader.open(join(dir, 'model.safetensors'));
    assert.equal(r.metadata.format, 'pt', 'transformers requires __metadata__.format = "pt"');
    assert.deepEqual(r.info('model.layers.1.self_attn.k_proj.weight').shape, [16, 32]);
    r.close();
    const o = SafetensorsReader.open(join(dir, 'optimizer.safetensors'));
    assert.deepEqual(o.info('exp_avg.model.layers.0.mlp.down_proj.weight').shape, [32, 48], 'moments take the parameter shape');
    assert.deepEqual(o.info('counters'), { dtype: 'I32', shape: [3], begin: o.info('counters').begin, end: o.info('counters').begin + 12 });
    o.close();

    const cfg = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')) as Record<string, unknown>;
    assert.deepEqual(cfg.architectures, ['LlamaForCausalLM']);
    assert.equal(cfg.tie_word_embeddings, tied);
    assert.equal(cfg.num_key_value_heads, 2);
    assert.equal(cfg.rms_norm_eps, 1e-6);

    // Without the optimizer: not loaded.
    const light = readCheckpoint(dir, { optimizer: false });
    assert.equal(light.optimizer, null);
    // loadModelDir recognises our checkpoints.
    const lm = loadModelDir(dir);
    assert.equal(lm.kind, 'checkpoint');
    assert.deepEqual(lm.trainerState, c.trainerState);
    assert.ok(bits(lm.tensors.get('model.norm.weight')!).equals(bits((c.model as Map<string, Float32Array>).get('model.norm.weight')!)));
  }
});

test('streaming from device buffers: lazy entries are downloaded one at a time and round-trip', () => {
  const config = microConfig(false);
  const layout = buildLayout(config);
  const backend = new RefBackend();
  const params = new UnitBuffers(backend, layout);
  const weights = initialParameters(layout, 3);
  params.fromHost(weights);
  let downloads = 0;
  const entries = tensorEntriesFromBuffers(params).map((e) => ({
    ...e,
    data: () => {
      downloads++;
      return (e.data as () => Float32Array)();
    },
  }));
  const parent = freshDir();
  const dir = writeCheckpoint(parent, 'final', { config, model: entries, optimizer: tensorEntriesFromBuffers(params, ADAMW_PREFIX.m), trainerState: {} });
  assert.equal(downloads, weights.size);
  const back = readCheckpoint(dir);
  for (const [name, w] of weights) {
    assert.ok(bits(back.model.get(name)!).equals(bits(w)), name);
    assert.ok(bits(back.optimizer!.get(ADAMW_PREFIX.m + name) as Float32Array).equals(bits(w)), name);
  }
  assert.equal(readManifest(dir).step, null);
  params.free();
});

test('the writer refuses inconsistent content before touching the disk', () => {
  const config = microConfig(false);
  const parent = join(freshDir(), 'never-created');
  const good = content(config, 1);
  const model = new Map(good.model as Map<string, Float32Array>);
  model.delete('model.layers.1.mlp.up_proj.weight');
  assert.throws(() => writeCheckpoint(parent, 'x', { ...good, model }), /model tensor 'model.layers.1.mlp.up_proj.weight' is missing/);
  const short = new Map(good.model as Map<string, Float32Array>);
  short.set('model.norm.weight', new Float32Array(31));
  assert.throws(() => writeCheckpoint(parent, 'x', { ...good, model: short }), /model.norm.weight' has 31 elements/);
  const extra = new Map(good.model as Map<string, Float32Array>);
  extra.set('model.layers.0.self_attn.q_proj.bias', new Float32Array(32));
  assert.throws(() => writeCheckpoint(parent, 'x', { ...good, model: extra }), /not parameters of this config/);
  assertUserError(() => writeCheckpoint(parent, '.hidden', good), /invalid checkpoint name/);
  assertUserError(() => writeCheckpoint(parent, 'a/b', good), /invalid checkpoint name/);
  assert.equal(existsSync(parent), false);
});

/** A fresh valid checkpoint, damaged by `damage`, must fail to read with a UserError naming the file. */
function damaged(damage: (dir: string) => void, ...patterns: RegExp[]): void {
  const parent = freshDir();
  const dir = writeCheckpoint(parent, 'step-00000001', content(microConfig(), 1));
  damage(dir);
  assertUserError(() => readCheckpoint(dir), ...patterns);
  assertUserError(() => verifyCheckpoint(dir), ...patterns);
  if (existsSync(join(dir, 'checksums.json'))) assertUserError(() => loadModelDir(dir), ...patterns);
  else assert.match(loadModelDir(dir).notes.join('\n'), /no checksums\.json.*not verified/);
}

function flipByte(path: string, offsetFromEnd: number): void {
  const b = readFileSync(path);
  const i = b.length - offsetFromEnd;
  b[i] = b[i]! ^ 0x10;
  writeFileSync(path, b);
}

test('a flipped bit in the tensor data is a checksum error naming model.safetensors', () => {
  damaged((d) => flipByte(join(d, 'model.safetensors'), 100), /model\.safetensors/, /SHA-256 mismatch/);
});

test('a flipped bit in the safetensors header is a checksum error', () => {
  damaged((d) => {
    const p = join(d, 'model.safetensors');
    const b = readFileSync(p);
    b[20] = b[20]! ^ 0x01;
    writeFileSync(p, b);
  }, /model\.safetensors/);
});

test('truncated model data, truncated header, empty file', () => {
  damaged((d) => truncateSync(join(d, 'model.safetensors'), readFileSync(join(d, 'model.safetensors')).length - 4), /model\.safetensors/, /truncated or modified/);
  damaged((d) => truncateSync(join(d, 'model.safetensors'), 100), /model\.safetensors/, /size is 100 bytes/);
  damaged((d) => truncateSync(join(d, 'model.safetensors'), 0), /model\.safetensors/);
});

test('a corrupt optimizer file fails a full read but not a model-only load', () => {
  const parent = freshDir();
  const dir = writeCheckpoint(parent, 'step-00000001', content(microConfig(), 1));
  flipByte(join(dir, 'optimizer.safetensors'), 8);
  assertUserError(() => readCheckpoint(dir), /optimizer\.safetensors/, /SHA-256 mismatch/);
  assertUserError(() => verifyCheckpoint(dir), /optimizer\.safetensors/);
  assert.equal(readCheckpoint(dir, { optimizer: false }).optimizer, null);
  verifyCheckpoint(dir, { optimizer: false });
});

test('deleted files', () => {
  damaged((d) => unlinkSync(join(d, 'model.safetensors')), /model\.safetensors/, /missing|cannot open|ENOENT/);
  damaged((d) => unlinkSync(join(d, 'config.json')), /config\.json/, /missing/);
  damaged((d) => unlinkSync(join(d, 'trainer_state.json')), /trainer_state\.json/, /missing/);
  damaged((d) => unlinkSync(join(d, 'tokenizer.json')), /tokenizer\.json/, /missing/);
  damaged((d) => unlinkSync(join(d, 'checksums.json')), /checksums\.json/, /missing/);
});

test('edited config.json, trainer state and manifest', () => {
  const edit = (file: string, f: (s: string) => string) => (d: string) => writeFileSync(join(d, file), f(readFileSync(join(d, file), 'utf8')));
  damaged(edit('config.json', (s) => s.replace('"num_hidden_layers": 2', '"num_hidden_layers": 3')), /config\.json/, /size|SHA-256/);
  damaged(edit('trainer_state.json', (s) => s.replace('1234', '1235').replace('"step": 1', '"step": 2')), /trainer_state\.json/);
  damaged(edit('checksums.json', () => '{"format": "adabatch-checkpoint", '), /checksums\.json/, /not valid JSON/);
  damaged(edit('checksums.json', (s) => s.replace('"version": 1', '"version": 2')), /checksums\.json/, /newer adabatch/);
  damaged(edit('checksums.json', (s) => s.replace('"layout": "consolidated"', '"layout": "striped"')), /checksums\.json/, /layout "striped" is not supported/);
  damaged(edit('checksums.json', (s) => s.replace('"layout": "consolidated"', '"layout": "sharded"')), /checksums\.json/, /does not list shard_index\.json/);
  damaged(edit('checksums.json', (s) => s.replace(/"config\.json": \{[^}]*\},?/, '')), /checksums\.json/, /does not list config\.json/);
});

test('a config that the checksums vouch for but that disagrees with the tensors is a shape error', () => {
  // Simulates a checkpoint written with a consistent manifest but wrong config (e.g. a hand edit
  // followed by re-hashing): the tensor check, not the checksum, must catch it.
  const withFfn = (ffn: number): string => {
    const parent = freshDir();
    const dir = writeCheckpoint(parent, 'step-00000001', content(microConfig(), 1));
    const cfgPath = join(dir, 'config.json');
    const cfg = readFileSync(cfgPath, 'utf8').replace('"intermediate_size": 48', `"intermediate_size": ${ffn}`);
    writeFileSync(cfgPath, cfg);
    const manifestPath = join(dir, 'checksums.json');
    const m = JSON.parse(readFileSync(manifestPath, 'utf8')) as { files: Record<string, { size: number; sha256: string }> };
    m.files['config.json'] = { size: Buffer.byteLength(cfg), sha256: createHash('sha256').update(cfg).digest('hex') };
    writeFileSync(manifestPath, JSON.stringify(m));
    return dir;
  };
  assertUserError(() => readCheckpoint(withFfn(32)), /model\.safetensors/, /mlp\.gate_proj\.weight' has shape \[48, 32\]/, /needs \[32, 32\]/);
  // A config describing more parameters than model.safetensors can hold is refused before any tensor is looked at.
  for (const read of [readCheckpoint, verifyCheckpoint]) {
    assertUserError(() => read(withFfn(64)), /config\.json: fields .*intermediate_size 64.* describe \d+ parameters, at least \d+ bytes as F32, but .*model\.safetensors has only \d+ bytes/);
  }
});

test('listCheckpoints orders by step and ignores temporaries and unrelated directories', () => {
  const parent = freshDir();
  const config = microConfig();
  for (const step of [20, 3, 100]) writeCheckpoint(parent, checkpointName(step), content(config, step));
  writeCheckpoint(parent, 'final', content(config, 150));
  mkdirSync(join(parent, '.tmp~step-00000200~host~1~abcd'));
  mkdirSync(join(parent, 'logs'));
  mkdirSync(join(parent, 'step-00000300')); // a step-N directory without a manifest: listed, with a problem
  const list = listCheckpoints(parent);
  assert.deepEqual(
    list.map((e) => [e.name, e.step, e.problem === null]),
    [
      ['step-00000003', 3, true],
      ['step-00000020', 20, true],
      ['step-00000100', 100, true],
      ['final', 150, true],
      ['step-00000300', 300, false],
    ],
  );
  assert.match(list[4]!.problem!, /checksums\.json: missing/);
  assert.deepEqual(listCheckpoints(join(parent, 'nope')), []);
});

test('latestValidCheckpoint skips a corrupt newest checkpoint with a warning; readLatestCheckpoint too', () => {
  const parent = freshDir();
  const config = microConfig();
  for (const step of [1, 2, 3]) writeCheckpoint(parent, checkpointName(step), content(config, step));
  flipByte(join(parent, checkpointName(3), 'model.safetensors'), 50);
  unlinkSync(join(parent, checkpointName(2), 'trainer_state.json'));
  const warnings: string[] = [];
  const latest = latestValidCheckpoint(parent, { onWarning: (m) => warnings.push(m) });
  assert.equal(latest?.name, checkpointName(1));
  assert.equal(warnings.length, 2);
  assert.match(warnings[0]!, /step-00000003.*model\.safetensors.*SHA-256 mismatch/s);
  assert.match(warnings[1]!, /step-00000002.*trainer_state\.json.*missing/s);

  const w2: string[] = [];
  const r = readLatestCheckpoint(parent, { onWarning: (m) => w2.push(m) });
  assert.equal(r?.entry.name, checkpointName(1));
  assert.equal(r?.data.trainerState.step, 1);
  assert.equal(w2.length, 2);

  assert.equal(latestValidCheckpoint(freshDir(), { onWarning: () => assert.fail() }), null);
  assert.equal(readLatestCheckpoint(join(freshDir(), 'missing-dir'), { onWarning: () => assert.fail() }), null);
});

test('pruneCheckpoints keeps the newest N with manifests and removes older ones (broken ones too)', () => {
  const parent = freshDir();
  const config = microConfig();
  for (const step of [1, 2, 3, 4, 5]) writeCheckpoint(parent, checkpointName(step), content(config, step));
  mkdirSync(join(parent, 'step-00000000')); // broken, older
  mkdirSync(join(parent, 'step-00000009')); // broken, newer: left for a person to inspect
  const removed = pruneCheckpoints(parent, 2, { protect: ['step-00000001'] });
  assert.deepEqual(removed.sort(), ['step-00000000', 'step-00000002', 'step-00000003']);
  assert.deepEqual(readdirSync(parent).sort(), ['step-00000001', 'step-00000004', 'step-00000005', 'step-00000009']);
  assert.deepEqual(pruneCheckpoints(parent, 3), [], 'three with manifests remain');
  assert.deepEqual(pruneCheckpoints(parent, 2), ['step-00000001']);
  assertUserError(() => pruneCheckpoints(parent, 0), /keepLast/);
});

test('an existing checkpoint is not replaced unless overwrite; overwrite replaces it', () => {
  const parent = freshDir();
  const config = microConfig();
  writeCheckpoint(parent, 'step-00000007', content(config, 7, 1));
  assertUserError(() => writeCheckpoint(parent, 'step-00000007', content(config, 7, 2)), /already exists/);
  const dir = writeCheckpoint(parent, 'step-00000007', content(config, 7, 2), { overwrite: true });
  const expected = initialParameters(buildLayout(config), 2).get('model.layers.0.mlp.up_proj.weight')!;
  assert.ok(bits(readCheckpoint(dir).model.get('model.layers.0.mlp.up_proj.weight')!).equals(bits(expected)));
  assert.deepEqual(readdirSync(parent), ['step-00000007']);
});

test('stale temporaries are cleaned on the next write; an orphaned moved-aside checkpoint is restored', () => {
  const parent = freshDir();
  const config = microConfig();
  writeCheckpoint(parent, 'step-00000001', content(config, 1));
  // A killed writer's leftovers: a half-written temp dir (its pid is dead or another host's), a
  // directory half-way through deletion, and a moved-aside checkpoint whose replacement never landed.
  const aside = join(parent, '.replaced~step-00000005~h~1~cafe');
  writeCheckpoint(parent, 'step-00000005', content(config, 5));
  renameSync(join(parent, 'step-00000005'), aside);
  mkdirSync(join(parent, '.tmp~step-00000002~other-host~4242~0001'));
  writeFileSync(join(parent, '.tmp~step-00000002~other-host~4242~0001', 'model.safetensors'), 'partial');
  mkdirSync(join(parent, '.deleting~step-00000000~beef'));
  assert.deepEqual(listCheckpoints(parent).map((e) => e.name), ['step-00000001']);
  // Readers restore the moved-aside checkpoint (with a warning) and do not touch temporaries.
  const warnings: string[] = [];
  assert.equal(latestValidCheckpoint(parent, { onWarning: (m) => warnings.push(m) })?.name, 'step-00000005');
  assert.match(warnings.join('\n'), /restored .*step-00000005/);
  assert.ok(existsSync(join(parent, '.tmp~step-00000002~other-host~4242~0001')));
  // The next write removes the temporaries.
  writeCheckpoint(parent, 'step-00000006', content(config, 6));
  assert.deepEqual(readdirSync(parent).sort(), ['step-00000001', 'step-00000005', 'step-00000006']);
  assert.deepEqual(recoverInterruptedWrites(parent, { removeTemporaries: true }), []);
});

/**
 * Crash safety, for real: a child process writes checkpoint 2 next to checkpoint 1 and SIGKILLs
 * itself at a given stage. Afterwards the newest valid checkpoint is 1 (intact) or 2 (complete), no
 * visible directory is half-written, and the next write cleans up.
 */
test('a writer killed (SIGKILL) at any stage leaves the old checkpoint intact or the new one complete', () => {
  const checkpointJs = fileURLToPath(new URL('../src/io/checkpoint.js', import.meta.url));
  const configJs = fileURLToPath(new URL('../src/model/config.js', import.meta.url));
  const layoutJs = fileURLToPath(new URL('../src/model/layout.js', import.meta.url));
  const paramsJs = fileURLToPath(new URL('../src/model/params.js', import.meta.url));
  const stages = ['temp-created', 'model.safetensors:header', 'wrote:model.safetensors', 'wrote:optimizer.safetensors', 'manifest-written', 'synced', 'old-moved-aside', 'renamed', 'done'];
  for (const overwrite of [false, true]) {
    for (const stage of stages) {
      if (stage === 'old-moved-aside' && !overwrite) continue;
      const parent = freshDir();
      const config = microConfig();
      writeCheckpoint(parent, 'step-00000001', content(config, 1));
      if (overwrite) writeCheckpoint(parent, 'step-00000002', content(config, 2, 99));
      const script = `
        import { writeCheckpoint } from ${JSON.stringify(checkpointJs)};
        import { modelConfig } from ${JSON.stringify(configJs)};
        import { buildLayout } from ${JSON.stringify(layoutJs)};
        import { initialParameters } from ${JSON.stringify(paramsJs)};
        const config = modelConfig(undefined, ${JSON.stringify({ ...config })});
        const model = initialParameters(buildLayout(config), 2);
        const optimizer = new Map([...model].map(([n, t]) => ['exp_avg.' + n, t]));
        writeCheckpoint(${JSON.stringify(parent)}, 'step-00000002', { config, model, optimizer, trainerState: { step: 2 }, step: 2 }, {
          overwrite: ${overwrite},
          onStage: (s) => { if (s === ${JSON.stringify(stage)}) process.kill(process.pid, 'SIGKILL'); },
        });
      `;
      const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' });
      assert.equal(r.signal, 'SIGKILL', `child should die at ${stage}: ${r.stderr}`);
      const warnings: string[] = [];
      const latest = latestValidCheckpoint(parent, { onWarning: (m) => warnings.push(m) });
      const label = `${overwrite ? 'overwrite, ' : ''}killed at ${stage}`;
      // Every visible checkpoint verifies: nothing half-written under a real name.
      for (const e of listCheckpoints(parent)) verifyCheckpoint(e.dir);
      assert.deepEqual(warnings.filter((w) => w.startsWith('skipping')), [], label);
      const landed = ['renamed', 'done'].includes(stage);
      assert.equal(latest?.name, overwrite || landed ? 'step-00000002' : 'step-00000001', label);
      const s2 = readCheckpoint(join(parent, 'step-00000001'));
      assert.equal(s2.trainerState.step, 1, `${label}: old checkpoint intact`);
      if (overwrite || landed) {
        // Either the new one (seed 2) landed or the old one (seed 99) was restored: both complete.
        const got = readCheckpoint(join(parent, 'step-00000002')).model.get('model.norm.weight')!;
        assert.equal(got.length, 32);
      }
      // The next write cleans up any temporary left by the killed writer.
      writeCheckpoint(parent, 'step-00000003', content(config, 3));
      assert.deepEqual(readdirSync(parent).filter((n) => n.startsWith('.')), [], `${label}: leftovers cleaned`);
    }
  }
});
