/**
 * Bad inputs to the cpu backend: each is a thrown Error naming the kernel and the argument, nothing
 * is written before the check fails, and the process carries on. Forged tensor objects (which pass
 * the TypeScript checks) exercise the native validation on its own.
 */
import { strict as assert } from 'node:assert';
import { test } from 'node:test';
import type { Tensor } from '../src/backend/backend.js';
import { CpuBackend } from '../src/backend/cpu/index.js';
import { RefBackend } from '../src/backend/ref/index.js';
import { createBackend } from '../src/backend/registry.js';

const be = new CpuBackend();

function up(data: number[] | Float32Array, shape: number[], dtype: 'f32' | 'f64' | 'i32' = 'f32'): Tensor {
  const t = be.alloc(shape, dtype);
  be.upload(t, data);
  return t;
}

/** Asserts fn throws an Error whose message matches every pattern. */
function rejects(fn: () => void, ...patterns: RegExp[]): void {
  let error: unknown;
  try {
    fn();
  } catch (e) {
    error = e;
  }
  assert.ok(error instanceof Error, 'expected an Error to be thrown');
  for (const p of patterns) assert.match(error.message, p);
}

test('wrong shapes are rejected with the argument named', () => {
  const a = be.alloc([3, 4]);
  const b = be.alloc([5, 6]);
  const c = be.alloc([3, 6]);
  rejects(() => be.matmul(c, a, b, false, false), /^matmul: inner dimensions differ/);
  rejects(() => be.matmul(be.alloc([3, 5]), a, be.alloc([4, 6]), false, false), /matmul: c f32\[3×5\] must be 3×6/);
  rejects(() => be.rmsnormForward(be.alloc([3, 4]), be.alloc([2]), a, be.alloc([4]), 1e-5), /rmsnormForward: rstd .* must have 3 elements/);
  rejects(() => be.swigluForward(be.alloc([3, 2]), be.alloc([3, 5])), /swigluForward: gu .* even row width/);
  const dims = { batch: 2, seqLen: 3, nHeads: 2, nKvHeads: 1, headDim: 4 };
  rejects(() => be.attentionForward(be.alloc([6, 8]), be.alloc([12]), be.alloc([6, 15]), dims), /attentionForward: qkv .* must have 96 elements/);
  rejects(() => be.attentionForward(be.alloc([6, 8]), be.alloc([12]), be.alloc([6, 16]), { ...dims, nKvHeads: 3 }), /dims.nHeads \(2\) must be divisible by dims.nKvHeads/);
  rejects(() => be.upload(a, [1, 2, 3]), /upload: data has 3 elements/);
});

test('wrong dtypes are rejected: float64 layers, int tokens, float64 statistics', () => {
  const x64 = be.alloc([2, 4], 'f64');
  rejects(() => be.rmsnormForward(be.alloc([2, 4], 'f64'), be.alloc([2], 'f64'), x64, be.alloc([4], 'f64'), 1e-5), /rmsnormForward: x must be f32 on the cpu backend/);
  rejects(() => be.matmul(be.alloc([2, 2], 'f64'), x64, be.alloc([4, 2], 'f64'), false, false), /matmul: c must be f32 on the cpu backend/);
  rejects(() => be.embeddingForward(be.alloc([3, 4]), be.alloc([5, 4]), be.alloc([3])), /embeddingForward: tokens must have dtype i32/);
  rejects(() => be.sumSquares(be.alloc([4]), be.alloc([2]), 0), /sumSquares: out must have dtype f64/);
  rejects(() => be.scale(be.alloc([4], 'i32'), 2), /scale: x must have dtype f32 or f64/);
  rejects(() => be.alloc([2], 'u8' as never), /alloc: unknown dtype 'u8'/);
  rejects(() => be.alloc([2], 'f16'), /alloc: f16 is not available on the cpu backend/);
});

test('forged tensors that pass the TypeScript checks are rejected by the native checks', () => {
  const t = be.alloc([8]);
  const i = be.alloc([8], 'i32');
  // Window past the end of the allocation.
  const past: Tensor = { ...t, offset: 4, size: 8, shape: [8] };
  rejects(() => be.fill(past, 1), /fill: t: window \[4, 12\) exceeds its buffer of 8 elements/);
  rejects(() => be.scale(past, 2), /scale: x: window \[4, 12\) exceeds its buffer/);
  rejects(() => be.download({ ...t, offset: 1e15 }), /download: t: window \[1000000000000000, 1000000000000008\) exceeds its buffer/);
  rejects(() => be.download({ ...t, offset: 1e16 }), /download: t.offset must be in/);
  rejects(() => be.fill({ ...t, offset: -1 }, 1), /fill: t.offset must be in/);
  rejects(() => be.fill({ ...t, offset: 0.5 }, 1), /fill: t.offset must be an integer/);
  // A dtype that is not the buffer's.
  rejects(() => be.fill({ ...i, dtype: 'f32' }, 1), /fill: t: tensor dtype f32 does not match its buffer's dtype i32/);
  // A buffer id that was never handed out.
  rejects(() => be.download({ ...t, buffer: 1e12 }), /download: t: buffer 1000000000000 was never allocated/);
  rejects(() => be.download({ ...t, buffer: -3 }), /download: t.buffer must be in/);
  // Sizes that disagree with the kernel's dimensions (shape lies about size).
  const a = be.alloc([4, 4]);
  rejects(() => be.matmul({ ...a, size: 12 }, a, a, false, false), /matmul: (c f32\[4×4\] must have 16 elements|c must have 16 elements)/);
  const ctx = (be as unknown as { ctx: Record<string, (...args: unknown[]) => unknown> }).ctx;
  rejects(() => ctx.matmul!(a.buffer, 0, 16, 0, a.buffer, 0, 16, 0, a.buffer, 0, 16, 0, false, false, 4, 4, 4, 1, 0), /matmul: c must not overlap a/);
  rejects(() => ctx.matmul!(a.buffer, 0, 16, 0), /matmul: missing argument a.buffer/);
  const p = be.alloc([8]);
  rejects(() => be.adamw(p, be.view(p, 0, [8]), be.alloc([8]), be.alloc([8]), { lr: 1, beta1: 0.9, beta2: 0.9, eps: 1e-8, weightDecay: 0, step: 1 }), /adamw: param must not overlap grad/);
  rejects(() => ctx.scale!('1', 0, 16, 0, 2), /scale: x.buffer must be an integer/);
  rejects(() => ctx.scale!(a.buffer, 0, 16, 0, Number.NaN), /scale: alpha must be a finite number/);
  rejects(() => ctx.matmul!(a.buffer, 0, 16, 0, a.buffer, 0, 16, 0, a.buffer, 0, 16, 0, false, false, 2 ** 31, 1, 1, 1, 0), /matmul: m must be in/);
});

test('freed buffers and double frees are rejected', () => {
  const t = be.alloc([4]);
  const v = be.view(t, 1, [2]);
  rejects(() => be.free(v), /free: only a whole allocation can be freed, not a view/);
  be.free(t);
  rejects(() => be.fill(t, 1), /fill: t: buffer \d+ was freed/);
  rejects(() => be.download(v), /download: t: buffer \d+ was freed/);
  rejects(() => be.free(t), /free: t: buffer \d+ was freed/);
  rejects(() => be.axpy(be.alloc([2]), 1, v), /axpy: x: buffer \d+ was freed/);
});

test('out-of-range offsets, indices and positions are rejected', () => {
  const t = be.alloc([4, 4]);
  rejects(() => be.view(t, 10, [2, 4]), /view: offset 10 \+ size 8 exceeds/);
  rejects(() => be.view(t, -1, [2]), /view: offset must be an integer/);
  const stats = be.alloc([2], 'f64');
  rejects(() => be.sumSquares(t, stats, 2), /sumSquares: index 2 is outside out/);
  rejects(() => be.headLoss({ x: be.alloc([2, 4]), normW: be.alloc([4]), headW: be.alloc([5, 4]), targets: be.alloc([2], 'i32'), eps: 1e-5, lossOut: stats, lossIndex: 1 }), /headLoss: lossIndex 1 needs two slots/);
  const dims = { batch: 1, maxSeqLen: 4, nHeads: 2, nKvHeads: 1, headDim: 4 };
  rejects(() => be.attentionDecode(be.alloc([1, 8]), be.alloc([1, 16]), be.alloc([16]), be.alloc([16]), 4, dims), /attentionDecode: pos 4 is outside the cache/);
});

test('token and target ids out of range are rejected before anything is written', () => {
  const table = up(Float32Array.from({ length: 20 }, (_, i) => i), [5, 4]);
  const out = up(new Float32Array(12).fill(-1), [3, 4]);
  for (const bad of [5, -1, 2 ** 31 - 1]) {
    const tokens = up([0, 1, bad], [3], 'i32');
    rejects(() => be.embeddingForward(out, table, tokens), /embeddingForward: tokens: token -?\d+ at position 2 is outside the vocabulary \[0, 5\)/);
    assert.ok((be.download(out) as Float32Array).every((v) => v === -1), 'out untouched');
    rejects(() => be.embeddingBackward(table, out, tokens), /embeddingBackward: tokens: token/);
    assert.deepEqual(Array.from(be.download(table)), Array.from({ length: 20 }, (_, i) => i), 'dTable untouched');
  }
  const x = up(new Float32Array(12).fill(0.5), [3, 4]);
  const lossOut = up([7, 7], [2], 'f64');
  const dx = up(new Float32Array(12).fill(3), [3, 4]);
  const dHeadW = up(new Float32Array(20).fill(3), [5, 4]);
  const dNormW = up(new Float32Array(4).fill(3), [4]);
  const args = { x, normW: up([1, 1, 1, 1], [4]), headW: table, eps: 1e-5, lossOut, lossIndex: 0, grads: { dx, dNormW, dHeadW, gradScale: 1 } };
  rejects(() => be.headLoss({ ...args, targets: up([-1, 5, 0], [3], 'i32') }), /headLoss: targets: token 5 at position 1 is outside the vocabulary \[0, 5\)/);
  assert.deepEqual(Array.from(be.download(lossOut)), [7, 7], 'lossOut untouched');
  for (const t of [dx, dHeadW, dNormW]) assert.ok((be.download(t) as Float32Array).every((v) => v === 3), 'gradients untouched');
  be.headLoss({ ...args, targets: up([-1, -100, 4], [3], 'i32') }); // negative targets are ignored, not errors
  assert.equal(be.download(lossOut)[1], 8, 'one counted token');
});

test('tensors of another backend, or of another cpu instance, are rejected', () => {
  const ref = new RefBackend();
  const other = new CpuBackend();
  rejects(() => be.fill(ref.alloc([2]), 0), /fill: t belongs to backend 'ref', not 'cpu'/);
  rejects(() => be.axpy(be.alloc([2]), 1, ref.alloc([2])), /axpy: x belongs to backend 'ref'/);
  const foreign = other.alloc([2]);
  rejects(() => be.fill(foreign, 0), /fill: t: buffer \d+ belongs to another cpu backend instance/);
  rejects(() => be.free(foreign), /free: t: buffer \d+ belongs to another cpu backend instance/);
  other.fill(foreign, 1);
  assert.deepEqual(Array.from(other.download(foreign)), [1, 1]);
  other.dispose();
  rejects(() => other.fill(foreign, 0), /fill: this cpu backend instance was disposed/);
});

test('bad constructor and thread arguments', () => {
  rejects(() => new CpuBackend({ threads: 0 }), /threads must be an integer ≥ 1/);
  rejects(() => be.setThreads(1.5), /setThreads: n must be an integer ≥ 1/);
  rejects(() => createBackend('gpu' as never), /unknown backend 'gpu'/);
  assert.equal(createBackend('ref').name, 'ref');
  assert.equal(createBackend().name, 'cpu');
});

test('the process survives all of the above and the backend still computes', () => {
  const a = up([1, 2, 3, 4], [2, 2]);
  const c = be.alloc([2, 2]);
  be.matmul(c, a, a, false, false);
  assert.deepEqual(Array.from(be.download(c)), [7, 10, 15, 22]);
});

test('live and peak bytes count this instance only', () => {
  const b = new CpuBackend();
  assert.equal(b.liveBytes(), 0);
  const t = b.alloc([10, 10]);
  const u = b.alloc([3], 'f64');
  assert.equal(b.liveBytes(), 424);
  b.free(t);
  assert.equal(b.liveBytes(), 24);
  assert.equal(b.peakBytes(), 424);
  b.resetPeak();
  assert.equal(b.peakBytes(), 24);
  b.free(u);
  assert.equal(b.liveBytes(), 0);
  b.dispose();
});

test('a missing addon is a clear error that says to run npm run build:native; ref still works', async () => {
  const { spawnSync } = await import('node:child_process');
  const registry = new URL('../src/backend/registry.js', import.meta.url).href;
  const script = `import { createBackend } from ${JSON.stringify(registry)};
    try { createBackend('cpu'); console.log('no error'); } catch (e) { console.log(e.name + ': ' + e.message); }
    console.log('ref:', createBackend('ref').name);`;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', env: { ...process.env, ADABATCH_NATIVE_ADDON: '/nonexistent/adabatch.node' } });
  assert.match(r.stdout, /NativeAddonMissingError: adabatch's native addon is not available at \/nonexistent\/adabatch.node: run `npm run build:native`/);
  assert.match(r.stdout, /ref: ref/);
});
