/**
 * The webgpu backend's layer kernels (kernels/layers.ts: embedding, RMSNorm, rotary embedding,
 * SwiGLU) against the ref backend, on Mesa's software Vulkan driver (lavapipe) unless
 * ADABATCH_TEST_GPU=1 asks for the machine's own GPU. The kernels are called through
 * `backend.context` (the backend does not route these methods yet). Awkward sizes, views at odd
 * element offsets, repeated tokens, accumulate flags, aliasing, and determinism: the same inputs
 * give bit-identical outputs.
 */
import { strict as assert } from 'node:assert';
import { test } from 'node:test';
import type { DType, Tensor } from '../src/backend/backend.js';
import { RefBackend } from '../src/backend/ref/index.js';
import * as L from '../src/backend/webgpu/kernels/layers.js';
import { relL2 } from './helpers/num.js';
import type { WebGpuBackend } from '../src/backend/webgpu/index.js';
import { openTestDevice } from './helpers/webgpu-device.js';

const { gpu, skip } = openTestDevice();

let seed = 4242;
const uniform = (): number => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
const rand = (n: number, scale = 1): Float32Array => Float32Array.from({ length: n }, () => scale * (uniform() - 0.5));
const randInt = (n: number, max: number): Int32Array => Int32Array.from({ length: n }, () => Math.floor(uniform() * max));

type Be = WebGpuBackend | RefBackend;

/** A tensor `pad` elements into an allocation larger than it (odd offsets: not 256-byte aligned). */
function put(be: Be, shape: number[], data: ArrayLike<number>, pad = 3, dtype: DType = 'f32'): Tensor {
  const size = shape.reduce((a, b) => a * b, 1);
  const whole = be.alloc([size + pad + 4], dtype);
  const v = be.view(whole, pad, shape);
  be.upload(v, data);
  return v;
}

const f32 = (be: Be, t: Tensor): Float32Array => be.download(t) as Float32Array;
const bits = (a: Float32Array): Uint32Array => new Uint32Array(a.buffer, a.byteOffset, a.length);

function close(actual: Float32Array, expected: Float32Array, tol: number, what: string): void {
  const err = relL2(actual, expected);
  assert.ok(err <= tol, `${what}: rel L2 ${err} > ${tol}`);
}

test('embeddingForward equals ref exactly (repeated tokens, views at odd offsets); a token outside the vocabulary gives a NaN row', { skip }, () => {
  const g = gpu!;
  const r = new RefBackend();
  for (const [n, dim, vocab] of [[37, 65, 97], [5, 60, 3], [1, 1, 1], [300, 17, 2000]] as const) {
    const T = rand(vocab * dim);
    const tok = randInt(n, Math.min(vocab, 11));
    const out: Record<string, Float32Array> = {};
    for (const be of [g, r]) {
      const table = put(be, [vocab, dim], T, 5);
      const tokens = put(be, [n], tok, 1, 'i32');
      const o = put(be, [n, dim], rand(n * dim), 7);
      if (be === g) L.embeddingForward(g.context, o, table, tokens, n, dim, vocab);
      else r.embeddingForward(o, table, tokens);
      out[be.name] = f32(be, o);
    }
    assert.deepEqual(bits(out.webgpu!), bits(out.ref!), `n ${n} dim ${dim} vocab ${vocab}`);
  }
  const table = put(g, [4, 3], [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);
  const tokens = put(g, [3], [2, 4, -1], 1, 'i32');
  const o = put(g, [3, 3], [0, 0, 0, 0, 0, 0, 0, 0, 0]);
  L.embeddingForward(g.context, o, table, tokens, 3, 3, 4);
  const got = [...f32(g, o)];
  assert.deepEqual(got.slice(0, 3), [6, 7, 8]);
  assert.ok(got.slice(3).every(Number.isNaN), `rows of invalid tokens: ${got.slice(3)}`);
});

test('embeddingBackward equals ref (tokens repeating, long runs, sorts over several blocks, dTable accumulated) and is bit-deterministic', { skip }, () => {
  const g = gpu!;
  const r = new RefBackend();
  for (const [n, dim, vocab] of [[37, 60, 97], [37, 65, 97], [1, 3, 2], [512, 33, 97], [700, 65, 97], [3000, 65, 97], [257, 5, 1]] as const) {
    // Few distinct tokens (repeats everywhere), and one very frequent token.
    const tok = Int32Array.from(randInt(n, Math.min(vocab, 13)), (t, i) => (i % 3 === 0 ? vocab - 1 : t));
    const D = rand(n * dim);
    const T0 = rand(vocab * dim);
    const out: Record<string, Float32Array> = {};
    for (const be of [g, r]) {
      const tokens = put(be, [n], tok, 3, 'i32');
      const dOut = put(be, [n, dim], D, 5);
      const dTable = put(be, [vocab, dim], T0, 1);
      if (be === g) L.embeddingBackward(g.context, dTable, dOut, tokens, n, dim, vocab);
      else r.embeddingBackward(dTable, dOut, tokens);
      out[be.name] = f32(be, dTable);
      if (be === g) {
        // Again from the same dTable: bit-identical.
        g.upload(dTable, T0);
        L.embeddingBackward(g.context, dTable, dOut, tokens, n, dim, vocab);
        assert.deepEqual(bits(f32(g, dTable)), bits(out.webgpu!), `n ${n}: two runs differ`);
      }
    }
    close(out.webgpu!, out.ref!, 1e-6, `n ${n} dim ${dim} vocab ${vocab}`);
  }
  // dOut and dTable views of one allocation (dOut is read from a copy); invalid tokens are skipped.
  const [n, dim, vocab] = [40, 9, 6];
  const tok = Int32Array.from(randInt(n, vocab), (t, i) => (i === 7 ? -3 : i === 11 ? vocab : t));
  const W = rand(n * dim + vocab * dim + 2);
  const res: Record<string, Float32Array> = {};
  for (const be of [g, r]) {
    const whole = be.alloc([W.length]);
    be.upload(whole, W);
    const dOut = be.view(whole, 1, [n, dim]);
    const dTable = be.view(whole, 1 + n * dim, [vocab, dim]);
    const tokens = put(be, [n], tok, 0, 'i32');
    if (be === g) L.embeddingBackward(g.context, dTable, dOut, tokens, n, dim, vocab);
    else {
      // The ref refuses invalid tokens: give it only the valid ones.
      const keep = [...tok.keys()].filter((i) => tok[i]! >= 0 && tok[i]! < vocab);
      const d = f32(r, dOut);
      const sub = put(r, [keep.length, dim], keep.flatMap((i) => [...d.subarray(i * dim, (i + 1) * dim)]));
      r.embeddingBackward(dTable, sub, put(r, [keep.length], keep.map((i) => tok[i]!), 0, 'i32'));
    }
    res[be.name] = f32(be, whole);
  }
  close(res.webgpu!, res.ref!, 1e-6, 'dOut and dTable in one allocation');
});

test('rmsnormForward equals ref (dims 60, 65, 1000; out and rstd in one allocation, x too) and is bit-deterministic', { skip }, () => {
  const g = gpu!;
  const r = new RefBackend();
  for (const [rows, dim] of [[37, 60], [37, 65], [3, 1000], [1, 1]] as const) {
    const X = rand(rows * dim, 3);
    const Wt = rand(dim, 2);
    for (const shared of [false, true]) {
      const out: Record<string, [Float32Array, Float32Array]> = {};
      for (const be of [g, r]) {
        let o: Tensor;
        let rstd: Tensor;
        let x: Tensor;
        if (shared) {
          // [rstd | x | out] in one allocation, at odd offsets.
          const whole = be.alloc([rows + rows * dim + rows * dim + 9]);
          be.upload(whole, rand(whole.size));
          rstd = be.view(whole, 1, [rows]);
          x = be.view(whole, 2 + rows, [rows, dim]);
          be.upload(x, X);
          o = be.view(whole, 5 + rows + rows * dim, [rows, dim]);
        } else {
          o = put(be, [rows, dim], rand(rows * dim), 3);
          rstd = put(be, [rows], rand(rows), 1);
          x = put(be, [rows, dim], X, 5);
        }
        const w = put(be, [dim], Wt, 7);
        if (be === g) L.rmsnormForward(g.context, o, rstd, x, w, rows, dim, 1e-5);
        else r.rmsnormForward(o, rstd, x, w, 1e-5);
        out[be.name] = [f32(be, o), f32(be, rstd)];
        if (be === g) {
          L.rmsnormForward(g.context, o, rstd, x, w, rows, dim, 1e-5);
          assert.deepEqual(bits(f32(g, o)), bits(out.webgpu![0]), 'out differs between two runs');
          assert.deepEqual(bits(f32(g, rstd)), bits(out.webgpu![1]), 'rstd differs between two runs');
        }
      }
      close(out.webgpu![0], out.ref![0], 1e-6, `out rows ${rows} dim ${dim} shared ${shared}`);
      close(out.webgpu![1], out.ref![1], 1e-6, `rstd rows ${rows} dim ${dim} shared ${shared}`);
    }
  }
});

test('rmsnormBackward equals ref (dx = and +=, dw accumulated over 1 and 4 row chunks, dx in place of dOut) and is bit-deterministic', { skip }, () => {
  const g = gpu!;
  const r = new RefBackend();
  for (const [rows, dim] of [[37, 60], [37, 65], [200, 65], [130, 300], [1, 7]] as const) {
    const X = rand(rows * dim, 3);
    const Wt = rand(dim, 2);
    const DO = rand(rows * dim);
    const DX0 = rand(rows * dim);
    const DW0 = rand(dim);
    // rstd as the forward computes it (the same values on both backends).
    const rs = new Float32Array(rows);
    for (let i = 0; i < rows; i++) {
      let ss = 0;
      for (let j = 0; j < dim; j++) ss += X[i * dim + j]! ** 2;
      rs[i] = 1 / Math.sqrt(ss / dim + 1e-5);
    }
    for (const accumulate of [false, true]) {
      for (const inPlace of [false, true]) {
        const out: Record<string, [Float32Array, Float32Array]> = {};
        for (const be of [g, r]) {
          const dOut = put(be, [rows, dim], DO, 3);
          const dx = inPlace ? dOut : put(be, [rows, dim], DX0, 1);
          const dw = put(be, [dim], DW0, 5);
          const x = put(be, [rows, dim], X, 7);
          const w = put(be, [dim], Wt, 2);
          const rstd = put(be, [rows], rs, 9);
          if (be === g) L.rmsnormBackward(g.context, dx, dw, dOut, x, w, rstd, rows, dim, accumulate);
          else r.rmsnormBackward(dx, dw, dOut, x, w, rstd, accumulate);
          out[be.name] = [f32(be, dx), f32(be, dw)];
          if (be === g && !inPlace) {
            g.upload(dx, DX0);
            g.upload(dw, DW0);
            L.rmsnormBackward(g.context, dx, dw, dOut, x, w, rstd, rows, dim, accumulate);
            assert.deepEqual(bits(f32(g, dx)), bits(out.webgpu![0]), 'dx differs between two runs');
            assert.deepEqual(bits(f32(g, dw)), bits(out.webgpu![1]), 'dw differs between two runs');
          }
        }
        const what = `rows ${rows} dim ${dim} accumulate ${accumulate} inPlace ${inPlace}`;
        close(out.webgpu![0], out.ref![0], 1e-5, `dx ${what}`);
        close(out.webgpu![1], out.ref![1], 1e-5, `dw ${what}`);
      }
    }
  }
});

test('rope equals ref (forward and inverse, heads narrower than the row, odd offsets); inverse undoes forward; other columns untouched', { skip }, () => {
  const g = gpu!;
  const r = new RefBackend();
  for (const [seqLen, batch, nHeads, headDim, width] of [[7, 3, 3, 10, 57], [5, 2, 2, 64, 200], [1, 4, 1, 2, 3], [13, 1, 4, 6, 24]] as const) {
    const rows = seqLen * batch;
    const half = headDim / 2;
    const cosT = new Float32Array(seqLen * half);
    const sinT = new Float32Array(seqLen * half);
    for (let p = 0; p < seqLen; p++) {
      for (let i = 0; i < half; i++) {
        const a = p * Math.pow(10000, (-2 * i) / headDim);
        cosT[p * half + i] = Math.cos(a);
        sinT[p * half + i] = Math.sin(a);
      }
    }
    const X = rand(rows * width, 2);
    for (const inverse of [false, true]) {
      const out: Record<string, Float32Array> = {};
      for (const be of [g, r]) {
        const x = put(be, [rows, width], X, 3);
        const c = put(be, [seqLen, half], cosT, 1);
        const s = put(be, [seqLen, half], sinT, 5);
        if (be === g) L.rope(g.context, x, c, s, rows, width, seqLen, nHeads, headDim, inverse);
        else r.rope(x, c, s, seqLen, nHeads, headDim, inverse);
        out[be.name] = f32(be, x);
        if (be === g) {
          g.upload(x, X);
          L.rope(g.context, x, c, s, rows, width, seqLen, nHeads, headDim, inverse);
          assert.deepEqual(bits(f32(g, x)), bits(out.webgpu!), 'two runs differ');
          L.rope(g.context, x, c, s, rows, width, seqLen, nHeads, headDim, !inverse);
          close(f32(g, x), X, 1e-6, 'rope then its inverse');
        }
      }
      close(out.webgpu!, out.ref!, 1e-6, `seqLen ${seqLen} heads ${nHeads}×${headDim} width ${width} inverse ${inverse}`);
      for (let row = 0; row < rows; row++) {
        for (let col = nHeads * headDim; col < width; col++) assert.equal(out.webgpu![row * width + col], X[row * width + col]);
      }
    }
  }
});

test('swigluForward and swigluBackward equal ref (ffn 60, 65; saturated gates; dgu overwritten, in place of gu) and are bit-deterministic', { skip }, () => {
  const g = gpu!;
  const r = new RefBackend();
  for (const [rows, ffn] of [[37, 65], [37, 60], [1, 1], [3, 1000]] as const) {
    const GU = rand(rows * 2 * ffn, 8);
    // Saturated gates in both directions.
    for (const [i, v] of [[0, 40], [1, -40], [2, 90], [3, -90], [4, 0]] as const) if (i < ffn) GU[i] = v;
    const DH = rand(rows * ffn);
    for (const inPlace of [false, true]) {
      const out: Record<string, [Float32Array, Float32Array]> = {};
      for (const be of [g, r]) {
        const gu = put(be, [rows, 2 * ffn], GU, 3);
        const h = put(be, [rows, ffn], rand(rows * ffn), 5);
        const dh = put(be, [rows, ffn], DH, 1);
        if (be === g) L.swigluForward(g.context, h, gu, rows, ffn);
        else r.swigluForward(h, gu);
        const hv = f32(be, h);
        const dgu = inPlace ? gu : put(be, [rows, 2 * ffn], rand(rows * 2 * ffn), 7);
        if (be === g) L.swigluBackward(g.context, dgu, dh, gu, rows, ffn);
        else r.swigluBackward(dgu, dh, gu);
        out[be.name] = [hv, f32(be, dgu)];
        if (be === g && !inPlace) {
          L.swigluForward(g.context, h, gu, rows, ffn);
          L.swigluBackward(g.context, dgu, dh, gu, rows, ffn);
          assert.deepEqual(bits(f32(g, h)), bits(hv), 'h differs between two runs');
          assert.deepEqual(bits(f32(g, dgu)), bits(out.webgpu![1]), 'dgu differs between two runs');
        }
      }
      const what = `rows ${rows} ffn ${ffn} inPlace ${inPlace}`;
      close(out.webgpu![0], out.ref![0], 1e-5, `h ${what}`);
      close(out.webgpu![1], out.ref![1], 1e-5, `dgu ${what}`);
    }
  }
});
