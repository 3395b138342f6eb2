/**
 * KV-cached decoding against the training forward pass (itself checked against PyTorch): feeding a
 * sequence token by token, the log-probabilities of the next tokens must sum to forwardLoss's Σ loss.
 */
import { strict as assert } from 'node:assert';
import { test } from 'node:test';
import { RefBackend } from '../src/backend/ref/index.js';
import { modelConfig } from '../src/model/config.js';
import { Generator, sampleToken } from '../src/model/generate.js';
import { Llama } from '../src/model/llama.js';
import { initialParameters, UnitBuffers } from '../src/model/params.js';
import { Rng } from '../src/util/rng.js';
import { randInts } from './helpers/num.js';

for (const tied of [false, true]) {
  test(`decoding with a KV cache reproduces the forward pass (tie_embeddings=${tied})`, async () => {
    const be = new RefBackend();
    const cfg = modelConfig('tiny', { n_layers: 2, vocab: 96, d_model: 64, ffn_dim: 96, seq_len: 16, tie_embeddings: tied, init_std: 0.2 });
    const model = new Llama(be, cfg);
    const params = new UnitBuffers(be, model.layout);
    params.fromHost(initialParameters(model.layout, 3));
    const access = { acquire: (u: number) => params.unit(u), release: () => {} };
    const seq = randInts(12, cfg.vocab, 4);
    const tokens = be.alloc([11], 'i32');
    const targets = be.alloc([11], 'i32');
    be.upload(tokens, seq.subarray(0, 11));
    be.upload(targets, seq.subarray(1, 12));
    const out = be.alloc([2], 'f64');
    await model.forwardLoss(tokens, targets, 1, 11, access, out, 0);
    const expected = be.download(out)[0]!;

    const gen = new Generator(be, cfg, access);
    let total = 0;
    for (let i = 0; i < 11; i++) {
      const logits = gen.step(seq[i]!);
      let max = -Infinity;
      for (const v of logits) max = Math.max(max, v);
      let s = 0;
      for (const v of logits) s += Math.exp(v - max);
      total += max + Math.log(s) - logits[seq[i + 1]!]!;
    }
    assert.ok(Math.abs(total - expected) / expected < 1e-5, `decode Σ loss ${total} vs forward ${expected}`);
    assert.throws(() => gen.step(cfg.vocab), /outside the vocabulary/);
    gen.dispose();
  });
}

test('sampling: greedy picks the argmax, top-k never leaves the top k, temperature is seeded', () => {
  const logits = Float32Array.from([0.1, 2.5, -1, 2.4, 0]);
  assert.equal(sampleToken(logits, { temperature: 0, topK: 0, seed: 0 }, new Rng(1)), 1);
  const rng = new Rng(7);
  const seen = new Set<number>();
  for (let i = 0; i < 200; i++) seen.add(sampleToken(logits, { temperature: 1, topK: 2, seed: 0 }, rng));
  assert.deepEqual([...seen].sort(), [1, 3]);
  const a = Array.from({ length: 20 }, (_, i) => sampleToken(logits, { temperature: 0.8, topK: 0, seed: 0 }, new Rng(i)));
  const b = Array.from({ length: 20 }, (_, i) => sampleToken(logits, { temperature: 0.8, topK: 0, seed: 0 }, new Rng(i)));
  assert.deepEqual(a, b);
});
