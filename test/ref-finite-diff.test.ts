/**
 * Every layer's backward against central finite differences, in float64 on the ref backend.
 * For a kernel y = f(x), the scalar L = Σ R ⊙ f(x) with a fixed random R has ∂L/∂x = backward(R).
 */
import { strict as assert } from 'node:assert';
import { test } from 'node:test';
import type { AttentionDims, Tensor } from '../src/backend/backend.js';
import { RefBackend } from '../src/backend/ref/index.js';
import { dotArr, finiteDiff, randInts, randn, relL2, sampleCoords } from './helpers/num.js';

const be = new RefBackend();
const TOL = 1e-6;

function up(data: Float64Array, shape: number[]): Tensor {
  const t = be.alloc(shape, 'f64');
  be.upload(t, data);
  return t;
}

function down(t: Tensor): Float64Array {
  return be.download(t) as Float64Array;
}

function ints(data: Int32Array): Tensor {
  const t = be.alloc([data.length], 'i32');
  be.upload(t, data);
  return t;
}

function expectClose(name: string, analytic: ArrayLike<number>, numeric: ArrayLike<number>): void {
  const err = relL2(analytic, numeric);
  assert.ok(err < TOL, `${name}: rel L2 error ${err.toExponential(2)} ≥ ${TOL}`);
}

/** Picks the analytic gradient at the sampled coordinates. */
function at(a: Float64Array, coords: number[]): Float64Array {
  return Float64Array.from(coords, (i) => a[i]!);
}

test('rmsnorm backward matches finite differences (dx and dw)', () => {
  const rows = 5;
  const dim = 12;
  const x = randn(rows * dim, 1);
  const w = randn(dim, 2, 0.5).map((v) => v + 1);
  const R = randn(rows * dim, 3);
  const loss = (): number => {
    const out = be.alloc([rows, dim], 'f64');
    const rstd = be.alloc([rows], 'f64');
    be.rmsnormForward(out, rstd, up(x, [rows, dim]), up(w, [dim]), 1e-5);
    return dotArr(down(out), R);
  };
  const xt = up(x, [rows, dim]);
  const wt = up(w, [dim]);
  const out = be.alloc([rows, dim], 'f64');
  const rstd = be.alloc([rows], 'f64');
  be.rmsnormForward(out, rstd, xt, wt, 1e-5);
  const dx = be.alloc([rows, dim], 'f64');
  const dw = be.alloc([dim], 'f64');
  be.rmsnormBackward(dx, dw, up(R, [rows, dim]), xt, wt, rstd, false);
  expectClose('rmsnorm dx', down(dx), finiteDiff(loss, x));
  expectClose('rmsnorm dw', down(dw), finiteDiff(loss, w));
  // accumulate=true adds to what dx held
  be.rmsnormBackward(dx, be.alloc([dim], 'f64'), up(R, [rows, dim]), xt, wt, rstd, true);
  expectClose('rmsnorm dx accumulate', down(dx), finiteDiff(loss, x).map((v) => 2 * v));
});

test('embedding backward matches finite differences, with repeated tokens', () => {
  const vocab = 7;
  const dim = 4;
  const tokens = Int32Array.from([1, 3, 3, 0, 6, 1]);
  const table = randn(vocab * dim, 4);
  const R = randn(tokens.length * dim, 5);
  const tk = ints(tokens);
  const loss = (): number => {
    const out = be.alloc([tokens.length, dim], 'f64');
    be.embeddingForward(out, up(table, [vocab, dim]), tk);
    return dotArr(down(out), R);
  };
  const dTable = be.alloc([vocab, dim], 'f64');
  be.embeddingBackward(dTable, up(R, [tokens.length, dim]), tk);
  expectClose('embedding dTable', down(dTable), finiteDiff(loss, table));
});

test('matmul with every transpose combination equals the explicit product', () => {
  const [m, n, k] = [3, 5, 4];
  const A = randn(m * k, 6);
  const Bm = randn(k * n, 7);
  const C0 = randn(m * n, 8);
  const transpose = (a: Float64Array, r: number, c: number): Float64Array => {
    const t = new Float64Array(r * c);
    for (let i = 0; i < r; i++) for (let j = 0; j < c; j++) t[j * r + i] = a[i * c + j]!;
    return t;
  };
  const expected = new Float64Array(m * n);
  for (let i = 0; i < m; i++) for (let j = 0; j < n; j++) {
    let s = 0;
    for (let p = 0; p < k; p++) s += A[i * k + p]! * Bm[p * n + j]!;
    expected[i * n + j] = 0.5 * s + 2 * C0[i * n + j]!;
  }
  for (const transA of [false, true]) {
    for (const transB of [false, true]) {
      const a = transA ? up(transpose(A, m, k), [k, m]) : up(A, [m, k]);
      const b = transB ? up(transpose(Bm, k, n), [n, k]) : up(Bm, [k, n]);
      const c = up(C0, [m, n]);
      be.matmul(c, a, b, transA, transB, 0.5, 2);
      assert.ok(relL2(down(c), expected) < 1e-14, `transA=${transA} transB=${transB}`);
    }
  }
});

test('rope inverse is the backward (transpose) of rope, and rope preserves norms', () => {
  const seqLen = 6;
  const hd = 8;
  const rows = 2 * seqLen;
  const width = 3 * hd + 4; // two rotated heads, one untouched head, padding columns
  const x = randn(rows * width, 9);
  const cos = new Float64Array(seqLen * hd / 2);
  const sin = new Float64Array(seqLen * hd / 2);
  for (let p = 0; p < seqLen; p++) for (let i = 0; i < hd / 2; i++) {
    const a = p * Math.pow(10000, (-2 * i) / hd);
    cos[p * hd / 2 + i] = Math.cos(a);
    sin[p * hd / 2 + i] = Math.sin(a);
  }
  const R = randn(rows * width, 10);
  const ct = up(cos, [seqLen, hd / 2]);
  const st = up(sin, [seqLen, hd / 2]);
  const loss = (): number => {
    const xt = up(x, [rows, width]);
    be.rope(xt, ct, st, seqLen, 2, hd, false);
    return dotArr(down(xt), R);
  };
  const g = up(R, [rows, width]);
  be.rope(g, ct, st, seqLen, 2, hd, true);
  expectClose('rope dx', down(g), finiteDiff(loss, x));
  const xt = up(x, [rows, width]);
  be.rope(xt, ct, st, seqLen, 2, hd, false);
  const y = down(xt);
  assert.ok(Math.abs(dotArr(y, y) - dotArr(x, x)) < 1e-9 * dotArr(x, x), 'rotation preserves the norm');
  for (let r = 0; r < rows; r++) for (let c = 2 * hd; c < width; c++) assert.equal(y[r * width + c], x[r * width + c], 'columns past the rotated heads are untouched');
});

for (const [H, Hkv] of [[4, 2], [2, 2], [4, 1]] as const) {
  test(`attention backward matches finite differences (H=${H}, Hkv=${Hkv})`, () => {
    const dims: AttentionDims = { batch: 2, seqLen: 5, nHeads: H, nKvHeads: Hkv, headDim: 4 };
    const n = dims.batch * dims.seqLen;
    const width = (H + 2 * Hkv) * dims.headDim;
    const qkv = randn(n * width, 11 + H + Hkv);
    const R = randn(n * H * dims.headDim, 12);
    const loss = (): number => {
      const out = be.alloc([n, H * dims.headDim], 'f64');
      const lse = be.alloc([dims.batch * H * dims.seqLen], 'f64');
      be.attentionForward(out, lse, up(qkv, [n, width]), dims);
      return dotArr(down(out), R);
    };
    const qkvT = up(qkv, [n, width]);
    const out = be.alloc([n, H * dims.headDim], 'f64');
    const lse = be.alloc([dims.batch * H * dims.seqLen], 'f64');
    be.attentionForward(out, lse, qkvT, dims);
    const dqkv = be.alloc([n, width], 'f64');
    be.attentionBackward(dqkv, up(R, [n, H * dims.headDim]), qkvT, out, lse, dims);
    expectClose('attention dqkv', down(dqkv), finiteDiff(loss, qkv));
  });
}

test('attention is causal: a later token never changes an earlier output', () => {
  const dims: AttentionDims = { batch: 1, seqLen: 6, nHeads: 2, nKvHeads: 1, headDim: 4 };
  const width = 4 * 4;
  const qkv = randn(6 * width, 13);
  const run = (): Float64Array => {
    const out = be.alloc([6, 8], 'f64');
    be.attentionForward(out, be.alloc([12], 'f64'), up(qkv, [6, width]), dims);
    return down(out);
  };
  const before = run();
  for (let c = 0; c < width; c++) qkv[5 * width + c] = qkv[5 * width + c]! + 3; // perturb the last token only
  const after = run();
  assert.deepEqual(after.subarray(0, 5 * 8), before.subarray(0, 5 * 8));
  assert.notDeepEqual(after.subarray(5 * 8), before.subarray(5 * 8));
});

test('swiglu backward matches finite differences', () => {
  const rows = 3;
  const ffn = 5;
  const gu = randn(rows * 2 * ffn, 14, 2);
  const R = randn(rows * ffn, 15);
  const loss = (): number => {
    const h = be.alloc([rows, ffn], 'f64');
    be.swigluForward(h, up(gu, [rows, 2 * ffn]));
    return dotArr(down(h), R);
  };
  const dgu = be.alloc([rows, 2 * ffn], 'f64');
  be.swigluBackward(dgu, up(R, [rows, ffn]), up(gu, [rows, 2 * ffn]));
  expectClose('swiglu dgu', down(dgu), finiteDiff(loss, gu));
});

test('fused head loss backward matches finite differences; ignored targets count nothing', () => {
  const rows = 6;
  const dim = 8;
  const vocab = 11;
  const x = randn(rows * dim, 16);
  const normW = randn(dim, 17, 0.3).map((v) => v + 1);
  const headW = randn(vocab * dim, 18, 0.5);
  const targets = randInts(rows, vocab, 19);
  targets[2] = -1;
  const tt = ints(targets);
  const scale = 1 / 5;
  const lossArgs = (lossOut: Tensor) => ({ x: up(x, [rows, dim]), normW: up(normW, [dim]), headW: up(headW, [vocab, dim]), targets: tt, eps: 1e-5, lossOut, lossIndex: 0 });
  const loss = (): number => {
    const lossOut = be.alloc([2], 'f64');
    be.headLoss({ ...lossArgs(lossOut), chunkTokens: 4 });
    return scale * down(lossOut)[0]!;
  };
  const lossOut = be.alloc([2], 'f64');
  const g = { dx: be.alloc([rows, dim], 'f64'), dNormW: be.alloc([dim], 'f64'), dHeadW: be.alloc([vocab, dim], 'f64'), gradScale: scale };
  be.headLoss({ ...lossArgs(lossOut), grads: g, chunkTokens: 4 });
  assert.equal(down(lossOut)[1], 5, 'five counted tokens');
  expectClose('head dx', down(g.dx), finiteDiff(loss, x));
  expectClose('head dNormW', down(g.dNormW), finiteDiff(loss, normW));
  const coords = sampleCoords(headW.length, 40, 20);
  expectClose('head dHeadW', at(down(g.dHeadW), coords), finiteDiff(loss, headW, coords));
  assert.ok(down(g.dx).subarray(2 * dim, 3 * dim).every((v) => v === 0), 'the ignored row has no gradient');
});

test('accumulateWithNorm adds the weighted gradient and its squared norm in one pass', () => {
  const acc = randn(10, 21);
  const g = randn(10, 22);
  const at_ = up(acc, [10]);
  const stats = be.alloc([3], 'f64');
  be.accumulateWithNorm(at_, 0.25, up(g, [10]), stats, 1);
  assert.ok(relL2(down(at_), acc.map((v, i) => v + 0.25 * g[i]!)) < 1e-15);
  assert.ok(Math.abs(down(stats)[1]! - dotArr(g, g)) < 1e-12);
  assert.equal(down(stats)[0], 0);
});

test('clipByGlobalNorm scales to the max norm as torch.nn.utils.clip_grad_norm_', () => {
  const g = randn(20, 23);
  const t = up(g, [20]);
  const stats = be.alloc([1], 'f64');
  be.sumSquares(t, stats, 0);
  const norm = Math.sqrt(dotArr(g, g));
  be.clipByGlobalNorm(t, stats, 0, 0.5);
  const expected = g.map((v) => v * (0.5 / (norm + 1e-6)));
  assert.ok(relL2(down(t), expected) < 1e-14);
  const t2 = up(g, [20]);
  be.clipByGlobalNorm(t2, stats, 0, 10 * norm);
  assert.deepEqual(down(t2), g, 'no change below the limit');
});

test('attentionDecode, one token at a time, equals full causal attention', () => {
  const dims: AttentionDims = { batch: 2, seqLen: 6, nHeads: 4, nKvHeads: 2, headDim: 4 };
  const width = (4 + 2 * 2) * 4;
  const n = dims.batch * dims.seqLen;
  const qkv = randn(n * width, 31);
  const full = be.alloc([n, 16], 'f64');
  be.attentionForward(full, be.alloc([dims.batch * 4 * dims.seqLen], 'f64'), up(qkv, [n, width]), dims);
  const expected = down(full);
  const maxSeqLen = 8;
  const kCache = be.alloc([dims.batch * maxSeqLen * 8], 'f64');
  const vCache = be.alloc([dims.batch * maxSeqLen * 8], 'f64');
  for (let pos = 0; pos < dims.seqLen; pos++) {
    const step = new Float64Array(dims.batch * width);
    for (let b = 0; b < dims.batch; b++) step.set(qkv.subarray((b * dims.seqLen + pos) * width, (b * dims.seqLen + pos + 1) * width), b * width);
    const out = be.alloc([dims.batch, 16], 'f64');
    be.attentionDecode(out, up(step, [dims.batch, width]), kCache, vCache, pos, { batch: dims.batch, maxSeqLen, nHeads: 4, nKvHeads: 2, headDim: 4 });
    const o = down(out);
    for (let b = 0; b < dims.batch; b++) {
      const want = expected.subarray((b * dims.seqLen + pos) * 16, (b * dims.seqLen + pos + 1) * 16);
      assert.ok(relL2(o.subarray(b * 16, (b + 1) * 16), want) < 1e-12, `pos ${pos} batch ${b}`);
    }
  }
});
