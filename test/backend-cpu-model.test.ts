/**
 * The whole Llama training step on cpu against ref on an awkward configuration: grouped-query heads
 * of odd size, a sequence length that is not a multiple of the attention tile, ignored targets, a
 * tied and an untied head, with and without activation recomputation, two micro-steps and AdamW.
 */
import { strict as assert } from 'node:assert';
import { test } from 'node:test';
import type { Backend } from '../src/backend/backend.js';
import { CpuBackend } from '../src/backend/cpu/index.js';
import { RefBackend } from '../src/backend/ref/index.js';
import { modelConfig } from '../src/model/config.js';
import { Llama } from '../src/model/llama.js';
import { initialParameters } from '../src/model/params.js';
import { AdamW } from '../src/optim/adamw.js';
import { LocalReplica } from '../src/parallel/local-replica.js';
import { randInts, relL2 } from './helpers/num.js';

interface StepResult {
  stats: Float64Array;
  grads: Map<string, Float32Array | Float64Array>;
  params: Map<string, Float32Array | Float64Array>;
}

async function trainStep(backend: Backend, tie: boolean, recompute: boolean, seqLen: number): Promise<StepResult> {
  const config = modelConfig(undefined, { vocab: 97, d_model: 60, n_layers: 2, n_heads: 6, n_kv_heads: 2, ffn_dim: 83, seq_len: 70, tie_embeddings: tie, init_std: 0.1 });
  const model = new Llama(backend, config, { recompute, chunkTokens: 37 });
  const replica = new LocalReplica(backend, model.layout);
  replica.params.fromHost(initialParameters(model.layout, 5));
  const optimizer = new AdamW(backend, model.layout);
  const batch = 2;
  const n = batch * seqLen;
  const stats = backend.alloc([4], 'f64');
  replica.beginStep();
  for (let micro = 0; micro < 2; micro++) {
    const tokens = backend.alloc([n], 'i32');
    const targets = backend.alloc([n], 'i32');
    backend.upload(tokens, randInts(n, config.vocab, 10 + micro));
    const tg = randInts(n, config.vocab, 20 + micro);
    tg[3] = -1;
    tg[n - 1] = -1;
    backend.upload(targets, tg);
    replica.beginMicroStep(0.5, stats, 2);
    await model.forwardBackward(tokens, targets, batch, seqLen, replica, replica, stats, 0, 1 / (n - 2));
  }
  const grads = replica.grads.toHost();
  optimizer.update(replica.params.units, replica.grads.units, 1e-2);
  return { stats: Float64Array.from(backend.download(stats)), grads, params: replica.params.toHost() };
}

for (const [tie, recompute, seqLen] of [[false, false, 70], [true, true, 70], [true, false, 33]] as const) {
  test(`training step on cpu equals ref (tied=${tie}, recompute=${recompute}, seqLen=${seqLen}, 2 threads)`, async () => {
    const c = await trainStep(new CpuBackend({ threads: 2 }), tie, recompute, seqLen);
    const r = await trainStep(new RefBackend(), tie, recompute, seqLen);
    assert.equal(c.stats[1], r.stats[1], 'token count');
    assert.ok(Math.abs(c.stats[0]! - r.stats[0]!) < 1e-5 * r.stats[0]!, `loss ${c.stats[0]} vs ${r.stats[0]}`);
    assert.ok(Math.abs(c.stats[2]! - r.stats[2]!) < 1e-4 * r.stats[2]!, `Σ‖g_t‖² ${c.stats[2]} vs ${r.stats[2]}`);
    for (const [name, g] of r.grads) {
      const err = relL2(c.grads.get(name)!, g);
      assert.ok(err < 1e-4, `gradient of ${name}: rel L2 ${err.toExponential(2)}`);
    }
    // AdamW's first step moves each weight by ≈ lr·sign(g): gradients near zero (within float32
    // summation noise) may flip, so parameters get the summation-order tolerance too.
    for (const [name, p] of r.params) {
      const err = relL2(c.params.get(name)!, p);
      assert.ok(err < 1e-4, `parameter ${name} after AdamW: rel L2 ${err.toExponential(2)}`);
    }
  });
}
