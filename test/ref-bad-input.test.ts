/** Bad input to the ref backend and the model: an error naming the argument, never a crash or NaN. */
import { strict as assert } from 'node:assert';
import { test } from 'node:test';
import { BackendArgumentError } from '../src/backend/checks.js';
import { RefBackend } from '../src/backend/ref/index.js';
import { modelConfig } from '../src/model/config.js';
import { Llama } from '../src/model/llama.js';
import { UnitBuffers } from '../src/model/params.js';

const be = new RefBackend();

function rejects(fn: () => void, re: RegExp): void {
  assert.throws(fn, (e: Error) => e instanceof BackendArgumentError && re.test(e.message), re.source);
}

test('kernels name the argument that is wrong', () => {
  const a = be.alloc([3, 4]);
  const b = be.alloc([5, 2]);
  const c = be.alloc([3, 2]);
  rejects(() => be.matmul(c, a, b, false, false), /matmul: inner dimensions differ: op\(a\) is 3×4, op\(b\) is 5×2/);
  rejects(() => be.matmul(be.alloc([3, 3]), a, be.alloc([4, 2]), false, false), /matmul: c f32\[3×3\] must be 3×2/);
  rejects(() => be.matmul(c, be.alloc([12]), b, false, false), /matmul: a must be 2-D/);
  rejects(() => be.rmsnormForward(be.alloc([2, 4]), be.alloc([2]), be.alloc([2, 4]), be.alloc([5]), 1e-5), /rmsnormForward: w f32\[5\] must have 4 elements/);
  rejects(() => be.embeddingForward(be.alloc([2, 4]), be.alloc([10, 4]), be.alloc([2])), /tokens must have dtype i32/);
  const tokens = be.alloc([2], 'i32');
  be.upload(tokens, [1, 10]);
  rejects(() => be.embeddingForward(be.alloc([2, 4]), be.alloc([10, 4]), tokens), /token 10 at position 1 is outside the vocabulary \[0, 10\)/);
  rejects(() => be.attentionForward(be.alloc([6, 8]), be.alloc([12]), be.alloc([6, 16]), { batch: 1, seqLen: 6, nHeads: 2, nKvHeads: 3, headDim: 4 }), /dims\.nHeads \(2\) must be divisible by dims\.nKvHeads \(3\)/);
  rejects(() => be.rope(be.alloc([5, 8]), be.alloc([4, 2]), be.alloc([4, 2]), 4, 2, 4, false), /rows of x \(5\) must be a multiple of seqLen 4/);
  rejects(() => be.adamw(be.alloc([4]), be.alloc([4]), be.alloc([4]), be.alloc([3]), { lr: 1e-3, beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0, step: 1 }), /v f32\[3\] and param f32\[4\] must have the same number of elements/);
  rejects(() => be.adamw(be.alloc([4]), be.alloc([4]), be.alloc([4]), be.alloc([4]), { lr: NaN, beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0, step: 1 }), /lr must be a finite number/);
  rejects(() => be.scale(be.alloc([2]), Infinity), /alpha must be a finite number/);
  rejects(() => be.sumSquares(be.alloc([2]), be.alloc([2]), 0), /out must have dtype f64/);
  rejects(() => be.sumSquares(be.alloc([2]), be.alloc([2], 'f64'), 2), /index 2 is outside out/);
});

test('memory misuse is refused: views out of range, double free, freed buffers, other backends', () => {
  const t = be.alloc([10]);
  rejects(() => be.view(t, 8, [3]), /view: offset 8 \+ size 3 exceeds f32\[10\]/);
  rejects(() => be.upload(t, [1, 2, 3]), /upload: data has 3 elements, tensor f32\[10\] has 10/);
  rejects(() => be.free(be.view(t, 0, [5])), /only a whole allocation can be freed/);
  be.free(t);
  rejects(() => be.free(t), /not allocated \(double free\?\)/);
  rejects(() => be.fill(t, 0), /was freed or never allocated/);
  rejects(() => be.scale({ ...be.alloc([2]), backend: 'cpu' }, 2), /belongs to backend 'cpu', not 'ref'/);
  rejects(() => be.alloc([2, -1]), /invalid dimension -1/);
});

test('the model refuses inputs that do not match the batch and sequence length', async () => {
  const cfg = modelConfig('tiny', { n_layers: 1, seq_len: 8 });
  const model = new Llama(be, cfg);
  const params = new UnitBuffers(be, model.layout);
  const access = { acquire: (u: number) => params.unit(u), release: () => {} };
  const out = be.alloc([2], 'f64');
  const tok = be.alloc([16], 'i32');
  await assert.rejects(model.forwardLoss(tok, tok, 2, 9, access, out, 0), /seqLen must be an integer in \[1, 8\]/);
  await assert.rejects(model.forwardLoss(tok, tok, 3, 8, access, out, 0), /tokens must be i32 with 24 elements \(batch 3 × seqLen 8\)/);
  await assert.rejects(model.forwardLoss(tok, be.alloc([16]), 2, 8, access, out, 0), /targets must be i32 with 16 elements/);
  assert.equal(be.download(out)[0], 0, 'nothing was computed');
});
