/**
 * Every cpu kernel except attention against the ref oracle on random inputs of awkward sizes
 * (odd dimensions, sizes that are not multiples of the vector width, the partition sizes or the
 * chunk sizes), through views with non-zero offsets, with one and with two threads.
 */
import { strict as assert } from 'node:assert';
import { test } from 'node:test';
import { randInts } from './helpers/num.js';
import { cpuBackend, down, expectClose, expectPaddingIntact, put, putView, rand, ref, zeros } from './backend-cpu-util.js';

const EXACT = 1e-5; // same summation order (or none): float32 rounding only
const REORDERED = 1e-4; // GEMMs and reductions sum in a different order

for (const threads of [1, 2]) {
  const cpu = cpuBackend(threads);
  const T = `(${threads} thread${threads > 1 ? 's' : ''})`;

  test(`matmul equals ref for every transpose, alpha/beta and view offsets ${T}`, () => {
    for (const [m, n, k] of [[7, 13, 33], [65, 7, 13], [1, 33, 1], [33, 65, 0]] as const) {
      for (const transA of [false, true]) {
        for (const transB of [false, true]) {
          const a = putView(cpu, rand(m * k, m + 3 * k), transA ? [k, m] : [m, k], 3);
          const b = putView(cpu, rand(k * n, n + 5), transB ? [n, k] : [k, n], 17);
          const c = putView(cpu, rand(m * n, 99), [m, n], 5);
          cpu.matmul(c.cpu, a.cpu, b.cpu, transA, transB, 0.75, 0.5);
          ref.matmul(c.ref, a.ref, b.ref, transA, transB, 0.75, 0.5);
          expectClose(cpu, c, REORDERED, `matmul ${m}×${n}×${k} transA=${transA} transB=${transB}`);
          expectPaddingIntact(cpu, c, 'matmul c');
        }
      }
    }
  });

  test(`matmul large enough to be split across threads equals ref ${T}`, () => {
    // 257×130×129 multiply-adds exceed the split threshold; 257 rows are not a multiple of the block.
    for (const [transA, transB] of [[false, true], [true, false], [false, false]] as const) {
      const [m, n, k] = [257, 130, 129];
      const a = put(cpu, rand(m * k, 1), transA ? [k, m] : [m, k]);
      const b = put(cpu, rand(k * n, 2), transB ? [n, k] : [k, n]);
      const c = put(cpu, rand(m * n, 3), [m, n]);
      cpu.matmul(c.cpu, a.cpu, b.cpu, transA, transB, 1, 1);
      ref.matmul(c.ref, a.ref, b.ref, transA, transB, 1, 1);
      expectClose(cpu, c, REORDERED, `split matmul transA=${transA} transB=${transB}`);
      const wide = put(cpu, rand(13 * 2050, 4), [13, 2050]);
      const x = put(cpu, rand(13 * 300, 5), [13, 300]);
      const y = zeros(cpu, [300, 2050]);
      cpu.matmul(y.cpu, x.cpu, wide.cpu, true, false);
      ref.matmul(y.ref, x.ref, wide.ref, true, false);
      expectClose(cpu, y, REORDERED, 'matmul split along n');
    }
  });

  test(`elementwise kernels and float64 reductions equal ref (f32 and f64, views) ${T}`, () => {
    for (const dtype of ['f32', 'f64'] as const) {
      for (const n of [1, 13, 65537]) {
        const mk = (seed: number): ReturnType<typeof put> => put(cpu, rand(n, seed), [n], dtype);
        const x = mk(1);
        const y = mk(2);
        const acc = mk(3);
        // Statistics first, on uploaded (bit-identical) inputs: float64 accumulation must agree tightly.
        const stats = put(cpu, [0.5, 0, 0, 0], [4], 'f64');
        cpu.sumSquares(x.cpu, stats.cpu, 1);
        ref.sumSquares(x.ref, stats.ref, 1);
        cpu.dot(x.cpu, y.cpu, stats.cpu, 2);
        ref.dot(x.ref, y.ref, stats.ref, 2);
        cpu.accumulateWithNorm(acc.cpu, 0.25, y.cpu, stats.cpu, 3);
        ref.accumulateWithNorm(acc.ref, 0.25, y.ref, stats.ref, 3);
        expectClose(cpu, acc, EXACT, `accumulateWithNorm ${dtype} n=${n}`);
        expectClose(cpu, stats, 1e-12, `float64 statistics ${dtype} n=${n}`);
        assert.equal(down(cpu, stats.cpu)[0], 0.5, 'other statistic slots are untouched');
        cpu.scale(x.cpu, -0.3);
        ref.scale(x.ref, -0.3);
        expectClose(cpu, x, EXACT, `scale ${dtype} n=${n}`);
        cpu.axpy(y.cpu, 1.7, x.cpu);
        ref.axpy(y.ref, 1.7, x.ref);
        expectClose(cpu, y, EXACT, `axpy ${dtype} n=${n}`);
        cpu.add(x.cpu, x.cpu, y.cpu); // out aliases a
        ref.add(x.ref, x.ref, y.ref);
        expectClose(cpu, x, EXACT, `add ${dtype} n=${n}`);
        cpu.clipByGlobalNorm(acc.cpu, stats.cpu, 1, 0.01);
        ref.clipByGlobalNorm(acc.ref, stats.ref, 1, 0.01);
        expectClose(cpu, acc, EXACT, `clipByGlobalNorm ${dtype} n=${n}`);
      }
    }
    const base = put(cpu, rand(40, 9), [40]);
    const v = cpu.view(base.cpu, 7, [3, 5]);
    cpu.fill(v, 2.5);
    ref.fill(ref.view(base.ref, 7, [3, 5]), 2.5);
    cpu.copy(cpu.view(base.cpu, 25, [15]), cpu.view(base.cpu, 3, [15])); // overlapping windows of one buffer
    ref.copy(ref.view(base.ref, 25, [15]), ref.view(base.ref, 3, [15]));
    cpu.copy(cpu.view(base.cpu, 1, [20]), cpu.view(base.cpu, 2, [20]));
    ref.copy(ref.view(base.ref, 1, [20]), ref.view(base.ref, 2, [20]));
    assert.deepEqual(down(cpu, base.cpu), down(ref, base.ref), 'fill and copy through views');
    const ints = put(cpu, [1, 2, 3], [3], 'i32');
    cpu.fill(ints.cpu, -7.9);
    ref.fill(ints.ref, -7.9);
    assert.deepEqual(down(cpu, ints.cpu), down(ref, ints.ref), 'fill of an int32 tensor converts like an Int32Array');
  });

  test(`adamw equals ref over several steps ${T}`, () => {
    const n = 70001;
    const p = put(cpu, rand(n, 11), [n]);
    const m = zeros(cpu, [n]);
    const v = zeros(cpu, [n]);
    for (let step = 1; step <= 3; step++) {
      const g = put(cpu, rand(n, 20 + step, 0.1), [n]);
      const hp = { lr: 1e-2, beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1, step };
      cpu.adamw(p.cpu, g.cpu, m.cpu, v.cpu, hp);
      ref.adamw(p.ref, g.ref, m.ref, v.ref, hp);
    }
    expectClose(cpu, p, EXACT, 'adamw param');
    expectClose(cpu, m, EXACT, 'adamw m');
    expectClose(cpu, v, EXACT, 'adamw v');
  });

  test(`embedding forward and backward (repeated tokens, view offsets) equal ref ${T}`, () => {
    for (const [vocab, dim, n] of [[13, 33, 7], [29, 130, 301]] as const) {
      const table = putView(cpu, rand(vocab * dim, 1), [vocab, dim], 9);
      const tokens = put(cpu, randInts(n, vocab, 2), [n], 'i32');
      const out = putView(cpu, new Float32Array(n * dim), [n, dim], 3);
      cpu.embeddingForward(out.cpu, table.cpu, tokens.cpu);
      ref.embeddingForward(out.ref, table.ref, tokens.ref);
      expectClose(cpu, out, EXACT, `embeddingForward ${vocab}×${dim}`);
      expectPaddingIntact(cpu, out, 'embedding out');
      const dOut = put(cpu, rand(n * dim, 3), [n, dim]);
      cpu.embeddingBackward(table.cpu, dOut.cpu, tokens.cpu);
      ref.embeddingBackward(table.ref, dOut.ref, tokens.ref);
      expectClose(cpu, table, EXACT, `embeddingBackward ${vocab}×${dim}`);
      expectPaddingIntact(cpu, table, 'embedding dTable');
    }
  });

  test(`rmsnorm forward and backward (dx = and +=) equal ref ${T}`, () => {
    for (const [rows, dim] of [[7, 13], [33, 65], [1037, 65]] as const) {
      const x = putView(cpu, rand(rows * dim, 1, 2), [rows, dim], 11);
      const w = put(cpu, rand(dim, 2, 0.3).map((v) => v + 1), [dim]);
      const out = zeros(cpu, [rows, dim]);
      const rstd = zeros(cpu, [rows]);
      cpu.rmsnormForward(out.cpu, rstd.cpu, x.cpu, w.cpu, 1e-5);
      ref.rmsnormForward(out.ref, rstd.ref, x.ref, w.ref, 1e-5);
      expectClose(cpu, out, EXACT, `rmsnormForward ${rows}×${dim}`);
      expectClose(cpu, rstd, EXACT, `rmsnorm rstd ${rows}×${dim}`);
      const dOut = put(cpu, rand(rows * dim, 3), [rows, dim]);
      for (const accumulate of [false, true]) {
        const dx = put(cpu, rand(rows * dim, 4), [rows, dim]);
        const dw = put(cpu, rand(dim, 5), [dim]);
        cpu.rmsnormBackward(dx.cpu, dw.cpu, dOut.cpu, x.cpu, w.cpu, rstd.cpu, accumulate);
        ref.rmsnormBackward(dx.ref, dw.ref, dOut.ref, x.ref, w.ref, rstd.ref, accumulate);
        expectClose(cpu, dx, REORDERED, `rmsnormBackward dx ${rows}×${dim} accumulate=${accumulate}`);
        expectClose(cpu, dw, REORDERED, `rmsnormBackward dw ${rows}×${dim} accumulate=${accumulate}`);
      }
    }
  });

  test(`rmsnorm forward in place (out = x) equals ref ${T}`, () => {
    const x = put(cpu, rand(33 * 65, 9), [33, 65]);
    const w = put(cpu, rand(65, 10), [65]);
    const rstd = zeros(cpu, [33]);
    cpu.rmsnormForward(x.cpu, rstd.cpu, x.cpu, w.cpu, 1e-5);
    ref.rmsnormForward(x.ref, rstd.ref, x.ref, w.ref, 1e-5);
    expectClose(cpu, x, EXACT, 'in-place rmsnorm');
  });

  test(`rope forward and inverse equal ref, columns past the rotated heads untouched ${T}`, () => {
    for (const [seqLen, rowsPerSeq, nHeads, hd, extra] of [[7, 3, 3, 6, 5], [65, 2, 4, 18, 0]] as const) {
      const rows = seqLen * rowsPerSeq;
      const width = nHeads * hd + extra;
      const half = hd / 2;
      const cos = new Float32Array(seqLen * half);
      const sin = new Float32Array(seqLen * half);
      for (let p = 0; p < seqLen; p++) for (let i = 0; i < half; i++) {
        cos[p * half + i] = Math.cos(p * 10000 ** (-2 * i / hd));
        sin[p * half + i] = Math.sin(p * 10000 ** (-2 * i / hd));
      }
      const ct = put(cpu, cos, [seqLen, half]);
      const st = put(cpu, sin, [seqLen, half]);
      for (const inverse of [false, true]) {
        const x = putView(cpu, rand(rows * width, 7), [rows, width], 4);
        cpu.rope(x.cpu, ct.cpu, st.cpu, seqLen, nHeads, hd, inverse);
        ref.rope(x.ref, ct.ref, st.ref, seqLen, nHeads, hd, inverse);
        expectClose(cpu, x, EXACT, `rope seqLen=${seqLen} inverse=${inverse}`);
        expectPaddingIntact(cpu, x, 'rope x');
      }
    }
  });

  test(`swiglu forward and backward equal ref, including large |gate| ${T}`, () => {
    for (const [rows, ffn] of [[7, 33], [3, 5], [97, 689]] as const) {
      const gu = put(cpu, rand(rows * 2 * ffn, 1, 4), [rows, 2 * ffn]);
      const guHost = down(cpu, gu.cpu);
      guHost[0] = 90; // exp overflow region
      guHost[1] = -95;
      guHost[2] = 0;
      cpu.upload(gu.cpu, guHost);
      ref.upload(gu.ref, guHost);
      const h = zeros(cpu, [rows, ffn]);
      cpu.swigluForward(h.cpu, gu.cpu);
      ref.swigluForward(h.ref, gu.ref);
      expectClose(cpu, h, EXACT, `swigluForward ${rows}×${ffn}`);
      const dh = put(cpu, rand(rows * ffn, 2), [rows, ffn]);
      const dgu = zeros(cpu, [rows, 2 * ffn]);
      cpu.swigluBackward(dgu.cpu, dh.cpu, gu.cpu);
      ref.swigluBackward(dgu.ref, dh.ref, gu.ref);
      expectClose(cpu, dgu, EXACT, `swigluBackward ${rows}×${ffn}`);
    }
  });

  test(`fused head loss equals ref: loss, count, dx, dNormW, dHeadW (+=), ignored targets, chunks ${T}`, () => {
    for (const [rows, dim, vocab, chunk] of [[37, 13, 65, 8], [5, 33, 7, undefined], [130, 16, 1029, 64]] as const) {
      const x = putView(cpu, rand(rows * dim, 1, 2), [rows, dim], 3);
      const normW = put(cpu, rand(dim, 2, 0.3).map((v) => v + 1), [dim]);
      const headW = put(cpu, rand(vocab * dim, 3, 0.5), [vocab, dim]);
      const tg = randInts(rows, vocab, 4);
      tg[1] = -1;
      tg[rows - 1] = -100;
      tg[2] = vocab - 1;
      const targets = put(cpu, tg, [rows], 'i32');
      const lossOut = put(cpu, [9, 0, 0, 0], [4], 'f64');
      const dx = zeros(cpu, [rows, dim]);
      const dNormW = put(cpu, rand(dim, 5), [dim]);
      const dHeadW = put(cpu, rand(vocab * dim, 6), [vocab, dim]);
      const args = (side: 'cpu' | 'ref') => ({
        x: x[side], normW: normW[side], headW: headW[side], targets: targets[side], eps: 1e-5, lossOut: lossOut[side], lossIndex: 1,
        ...(chunk !== undefined && { chunkTokens: chunk }),
      });
      cpu.headLoss(args('cpu'));
      ref.headLoss(args('ref'));
      const grads = (side: 'cpu' | 'ref') => ({ dx: dx[side], dNormW: dNormW[side], dHeadW: dHeadW[side], gradScale: 0.37 });
      cpu.headLoss({ ...args('cpu'), grads: grads('cpu') });
      ref.headLoss({ ...args('ref'), grads: grads('ref') });
      const lc = down(cpu, lossOut.cpu);
      const lr = down(ref, lossOut.ref);
      assert.equal(lc[0], 9, 'slot before lossIndex untouched');
      assert.equal(lc[2], 2 * (rows - 2), 'counted tokens (twice)');
      assert.equal(lc[2], lr[2]);
      assert.ok(Math.abs(lc[1]! - lr[1]!) < 1e-5 * Math.abs(lr[1]!), `loss ${lc[1]} vs ref ${lr[1]}`);
      expectClose(cpu, dx, REORDERED, `headLoss dx ${rows}×${dim}×${vocab}`);
      expectClose(cpu, dNormW, REORDERED, `headLoss dNormW ${rows}×${dim}×${vocab}`);
      expectClose(cpu, dHeadW, REORDERED, `headLoss dHeadW ${rows}×${dim}×${vocab}`);
      assert.ok(down(cpu, dx.cpu).subarray(dim, 2 * dim).every((v) => v === 0), 'an ignored row has zero gradient');
    }
  });
}
