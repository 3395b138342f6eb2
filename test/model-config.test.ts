/** Model configs, presets and the memory estimate. */
import { strict as assert } from 'node:assert';
import { test } from 'node:test';
import { RefBackend } from '../src/backend/ref/index.js';
import { MODEL_LIMITS, modelConfig, type ModelConfig, modelSizes, PRESETS } from '../src/model/config.js';
import { buildLayout } from '../src/model/layout.js';
import { Llama, MAX_ROPE_ENTRIES } from '../src/model/llama.js';
import { estimateMemory } from '../src/model/memory.js';
import { AdamW, ADAMW_DEFAULTS } from '../src/optim/adamw.js';
import { LocalReplica } from '../src/parallel/local-replica.js';
import { checkMemory } from '../src/train/memory-check.js';
import { UserError } from '../src/util/errors.js';

/** Parameter count from the architecture, written independently of the layout code. */
function expectedParams(c: { vocab: number; d_model: number; n_layers: number; n_heads: number; n_kv_heads: number; ffn_dim: number; tie_embeddings: boolean }): number {
  const hd = c.d_model / c.n_heads;
  const attn = c.d_model * c.n_heads * hd * 2 + c.d_model * c.n_kv_heads * hd * 2;
  const mlp = 3 * c.d_model * c.ffn_dim;
  return c.vocab * c.d_model * (c.tie_embeddings ? 1 : 2) + c.n_layers * (attn + mlp + 2 * c.d_model) + c.d_model;
}

test('presets have the documented shapes and parameter counts', () => {
  for (const name of Object.keys(PRESETS)) {
    const c = modelConfig(name);
    assert.equal(buildLayout(c).paramCount, expectedParams(c), name);
  }
  const tl = modelConfig('tinyllama');
  assert.equal(buildLayout(tl).paramCount, 1_100_048_384, 'TinyLlama-1.1B has 1,100,048,384 parameters');
  const tiny = buildLayout(modelConfig('tiny')).paramCount;
  assert.ok(tiny > 0.7e6 && tiny < 1.3e6, `tiny has ~1M parameters (${tiny})`);
  assert.ok(modelConfig('tiny').n_kv_heads < modelConfig('tiny').n_heads, 'tiny uses grouped-query attention');
  assert.equal(buildLayout(modelConfig('C')).paramCount, 134_105_856, 'C (the ~125M class) has 134,105,856 parameters');
  assert.equal(modelConfig('A').tie_embeddings, true);
  assert.equal(modelConfig('tinyllama').tie_embeddings, false);
});

test('invalid model configs name the offending field', () => {
  const bad: Array<[Record<string, unknown>, RegExp]> = [
    [{ d_model: 100, n_heads: 3 }, /model\.d_model: d_model \(100\) must be divisible by n_heads \(3\)/],
    [{ n_heads: 4, n_kv_heads: 3 }, /model\.n_kv_heads: n_heads \(4\) must be divisible by n_kv_heads \(3\)/],
    [{ vocab: 0 }, /model\.vocab/],
    [{ seq_len: 12.5 }, /model\.seq_len/],
    [{ dmodel: 128 }, /unknown field 'dmodel'/],
    [{ d_model: 132, n_heads: 4 }, /model\.d_model: head dimension .* must be even/],
  ];
  for (const [override, re] of bad) assert.throws(() => modelConfig('tiny', override as never), (e: Error) => e instanceof UserError && re.test(e.message), JSON.stringify(override));
  assert.throws(() => modelConfig('huge'), /unknown model preset 'huge' \(known presets: tiny, A, B, C, tinyllama\)/);
});

for (const precision of ['f32', 'bf16'] as const) test(`estimateMemory matches what the backend actually allocates (precision ${precision})`, async () => {
  const be = new RefBackend();
  const cfg = modelConfig('tiny', { seq_len: 32 });
  const base = be.liveBytes();
  const model = new Llama(be, cfg, { precision });
  const replica = new LocalReplica(be, model.layout);
  const adamw = new AdamW(be, model.layout, ADAMW_DEFAULTS);
  const tokens = be.alloc([3 * 32], 'i32');
  const stats = be.alloc([4], 'f64');
  replica.beginStep();
  replica.beginMicroStep(1, stats, 0);
  await model.forwardBackward(tokens, tokens, 3, 32, replica, replica, stats, 2, 1);
  const e = estimateMemory(cfg, 3, { precision });
  const allocated = be.liveBytes() - base;
  // Everything the estimate counts, except the scratch a second micro-step and the head kernel would
  // use (bf16: the head kernel's rounded chunk, 2 bytes × chunk × (d + vocab), is native scratch).
  const headChunk = precision === 'bf16' ? 2 * 96 * (cfg.d_model + cfg.vocab) : 0;
  const counted = e.params + e.grads + e.optimizer + e.activations + e.lowPrecision - headChunk;
  if (precision === 'f32') assert.equal(e.lowPrecision, 0);
  assert.ok(Math.abs(allocated - counted) / counted < 0.02, `allocated ${allocated} vs estimate ${counted}`);
  assert.ok(e.total > counted);
  adamw.free();
});

test('the memory check refuses what does not fit and names the largest micro batch that does', () => {
  const cfg = modelConfig('A');
  const opts = { recompute: false, ranksInProcess: 1, shards: 1 };
  const e8 = estimateMemory(cfg, 8);
  const e3 = estimateMemory(cfg, 3);
  const available = (e3.total + estimateMemory(cfg, 4).total) / 2;
  assert.throws(() => checkMemory(cfg, 8, opts, available), (err: Error) => /the largest micro batch that fits is 3/.test(err.message) && err.message.includes('not enough memory'));
  assert.equal(checkMemory(cfg, 8, opts, e8.total + 1).total, e8.total);
  assert.throws(() => checkMemory(modelConfig('tinyllama'), 1, opts, 1e9), /no micro batch fits/);
  assert.throws(() => checkMemory(cfg, 8, { ...opts, ranksInProcess: 2 }, e8.total * 1.5), /2 ranks in this process/);
});

test('absurd sizes are refused by field, before anything is built, with the limit and why', () => {
  const bad: Array<[Record<string, unknown>, RegExp]> = [
    [{ n_layers: 100_000_000 }, /model\.n_layers: must be at most 4,096 \(the deepest published models/],
    [{ seq_len: 1e12 }, /model\.seq_len: must be at most 16,777,216/],
    [{ vocab: 2 ** 23 }, /model\.vocab: must be at most 4,194,304/],
    [{ d_model: 2 ** 17 }, /model\.d_model: must be at most 65,536/],
    [{ ffn_dim: 2 ** 19 }, /model\.ffn_dim: must be at most 262,144/],
    [{ n_heads: 2 ** 16, n_kv_heads: 1 }, /model\.n_heads: must be at most 32,768/],
    // Within each field's limit, too large together: one block beyond a typed array, or too many parameters.
    [{ d_model: 65536, n_heads: 2, n_kv_heads: 2, ffn_dim: 262144 }, /model\.d_model: one transformer block .* has \d+ elements, more than 2\^32/],
    [{ vocab: 4_000_000, d_model: 4096, n_heads: 32, n_kv_heads: 8 }, /model\.vocab: the embedding \(vocab × d_model = 4000000 × 4096\)/],
    [{ n_layers: 4096, d_model: 16384, n_heads: 128, n_kv_heads: 8, ffn_dim: 65536 }, /model\.n_layers: the model would have 1\.\d+e\+13 parameters, more than the limit of 2\^41/],
  ];
  for (const [override, re] of bad) {
    const t0 = performance.now();
    assert.throws(() => modelConfig('tiny', override as never), (e: Error) => e instanceof UserError && re.test(e.message), JSON.stringify(override));
    assert.ok(performance.now() - t0 < 1000, 'refused at once');
  }
  // The largest real shapes pass: Llama 3.1 405B.
  const big = modelConfig(undefined, { vocab: 128256, d_model: 16384, n_layers: 126, n_heads: 128, n_kv_heads: 8, ffn_dim: 53248, seq_len: 131072 });
  assert.ok(modelSizes(big).paramCount > 4.05e11 && modelSizes(big).paramCount < 4.06e11);
  assert.equal(MODEL_LIMITS.n_layers, 4096);
});

test('modelSizes (O(1)) equals what buildLayout enumerates', () => {
  const configs: ModelConfig[] = [...Object.keys(PRESETS).map((p) => modelConfig(p)), modelConfig('tiny', { d_model: 96, n_heads: 3, n_kv_heads: 1, ffn_dim: 250, vocab: 1001 }), modelConfig('A', { tie_embeddings: false, ffn_dim: 7 })];
  for (const c of configs) {
    const layout = buildLayout(c);
    const s = modelSizes(c);
    assert.equal(s.paramCount, layout.paramCount);
    assert.equal(s.embedUnit, layout.units[layout.embedUnit]!.size);
    assert.equal(s.blockUnit, layout.units[1]!.size);
    assert.equal(s.headUnit, layout.units[layout.headUnit]!.size);
  }
});

test('Llama refuses rotary tables beyond the limit, and a config that bypassed the schema, before allocating', () => {
  const be = new RefBackend();
  const base = be.liveBytes();
  // Accepted by the schema (seq_len ≤ 2^24), but 2^24 positions × 64 = 2^30 entries per table.
  const long = modelConfig('tiny', { seq_len: 2 ** 24, n_heads: 1, n_kv_heads: 1 });
  assert.ok(long.seq_len * 64 > MAX_ROPE_ENTRIES);
  assert.throws(() => new Llama(be, long), (e: Error) => e instanceof UserError && /model\.seq_len: 16777216 positions × head_dim\/2 = 64 need rotary tables of 1073741824 entries/.test(e.message));
  const bypass = { ...modelConfig('tiny'), seq_len: 1e12 } as ModelConfig;
  assert.throws(() => new Llama(be, bypass), (e: Error) => e instanceof UserError && /model\.seq_len: 1000000000000 is not an integer in 1\.\.16777216/.test(e.message));
  const layers = { ...modelConfig('tiny'), n_layers: 1e8 } as ModelConfig;
  assert.throws(() => new Llama(be, layers), (e: Error) => e instanceof UserError && /model\.n_layers: 100000000/.test(e.message));
  assert.equal(be.liveBytes(), base, 'nothing was allocated');
});
