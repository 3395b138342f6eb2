/**
 * The webgpu backend's fused LM head + loss, AdamW and global-norm clipping (kernels/head-optim.ts)
 * against the ref backend, on Mesa's software Vulkan driver (lavapipe) unless ADABATCH_TEST_GPU=1 asks
 * for the machine's own GPU. The kernels are called through the backend's dispatch context.
 */
import { strict as assert } from 'node:assert';
import { test } from 'node:test';
import type { AdamWParams, HeadLossArgs, Tensor } from '../src/backend/backend.js';
import * as C from '../src/backend/checks.js';
import { RefBackend } from '../src/backend/ref/index.js';
import * as HO from '../src/backend/webgpu/kernels/head-optim.js';
import { randInts, randn, relL2 } from './helpers/num.js';
import { WebGpuBackend } from '../src/backend/webgpu/index.js';
import { openTestDevice } from './helpers/webgpu-device.js';

const { gpu, skip } = openTestDevice();

type Be = WebGpuBackend | RefBackend;

interface HeadCase {
  rows: number;
  dim: number;
  vocab: number;
  chunk: number;
  seed: number;
}

interface HeadResult {
  loss: Float64Array;
  dx?: Float32Array;
  dNormW?: Float32Array;
  dHeadW?: Float32Array;
}

const LOSS0 = [9, 0.25, 3, 7];

/** Inputs of one case: x ~ N(0, 1), normW ~ 1 + N(0, 0.1), headW ~ N(0, 0.3), some targets −1. */
function headData(c: HeadCase) {
  const targets = randInts(c.rows, c.vocab, c.seed + 3);
  targets[0] = c.vocab - 1;
  if (c.rows > 1) targets[1] = 0;
  for (let r = 2; r < c.rows; r += 5) targets[r] = -1;
  for (let r = 16; r < Math.min(c.rows, 20); r++) targets[r] = -1;
  return {
    x: randn(c.rows * c.dim, c.seed),
    normW: randn(c.dim, c.seed + 1, 0.1).map((v) => 1 + v),
    headW: randn(c.vocab * c.dim, c.seed + 2, 0.3),
    targets,
    dNormW0: randn(c.dim, c.seed + 4, 0.05),
    dHeadW0: randn(c.vocab * c.dim, c.seed + 5, 0.05),
    dx0: randn(c.rows * c.dim, c.seed + 6, 3),
  };
}

/**
 * Runs headLoss on `be` with its tensors as views at odd offsets: normW and headW in one parameter
 * allocation, dx, dNormW and dHeadW in one gradient allocation (a flat gradient buffer).
 */
function runHead(be: Be, c: HeadCase, grads: boolean, gradScale = 0.03): HeadResult {
  const d = headData(c);
  const { rows, dim, vocab } = c;
  const xAll = be.alloc([rows * dim + 7]);
  const x = be.view(xAll, 7, [rows, dim]);
  const pAll = be.alloc([3 + dim + vocab * dim]);
  const normW = be.view(pAll, 3, [dim]);
  const headW = be.view(pAll, 3 + dim, [vocab, dim]);
  const tAll = be.alloc([rows + 1], 'i32');
  const targets = be.view(tAll, 1, [rows]);
  const lossOut = be.alloc([4], 'f64');
  be.upload(x, d.x);
  be.upload(normW, d.normW);
  be.upload(headW, d.headW);
  be.upload(targets, d.targets);
  be.upload(lossOut, LOSS0);
  const args: HeadLossArgs = { x, normW, headW, targets, eps: 1e-5, lossOut, lossIndex: 1, chunkTokens: c.chunk };
  let g: { dx: Tensor; dNormW: Tensor; dHeadW: Tensor } | null = null;
  if (grads) {
    const gAll = be.alloc([5 + rows * dim + dim + vocab * dim]);
    g = { dx: be.view(gAll, 5, [rows, dim]), dNormW: be.view(gAll, 5 + rows * dim, [dim]), dHeadW: be.view(gAll, 5 + rows * dim + dim, [vocab, dim]) };
    be.upload(g.dx, d.dx0);
    be.upload(g.dNormW, d.dNormW0);
    be.upload(g.dHeadW, d.dHeadW0);
    args.grads = { ...g, gradScale };
  }
  if (be instanceof WebGpuBackend) {
    const dims = C.checkHeadLoss(be.name, args);
    HO.headLoss(be.context, args, dims.rows, dims.dim, dims.vocab, c.chunk);
  } else {
    be.headLoss(args);
  }
  const out: HeadResult = { loss: be.download(lossOut) as Float64Array };
  if (g) {
    out.dx = be.download(g.dx) as Float32Array;
    out.dNormW = be.download(g.dNormW) as Float32Array;
    out.dHeadW = be.download(g.dHeadW) as Float32Array;
  }
  for (const t of [xAll, pAll, tAll, lossOut]) be.free(t);
  return out;
}

/** What headLoss added to an accumulated gradient. */
const added = (after: ArrayLike<number>, before: ArrayLike<number>): Float64Array => Float64Array.from(after, (v, i) => v - Math.fround(before[i]!));

const CASES: HeadCase[] = [
  { rows: 45, dim: 40, vocab: 301, chunk: 16, seed: 11 }, // three chunks, the last one partial (13 rows)
  { rows: 45, dim: 40, vocab: 301, chunk: 64, seed: 12 }, // one chunk
  { rows: 9, dim: 300, vocab: 1000, chunk: 4, seed: 13 }, // rows and vocab wider than a workgroup
];

test('headLoss equals ref: loss and count added into lossOut (no grads), several chunks, ignored targets', { skip }, () => {
  const r = new RefBackend();
  for (const c of CASES) {
    const want = runHead(r, c, false);
    const got = runHead(gpu!, c, false);
    const label = `rows ${c.rows} dim ${c.dim} vocab ${c.vocab} chunk ${c.chunk}`;
    const wl = want.loss[1]! - LOSS0[1]!;
    const gl = got.loss[1]! - LOSS0[1]!;
    assert.ok(Math.abs(gl - wl) <= 1e-5 * Math.abs(wl), `${label}: loss ${gl} vs ${wl}`);
    assert.equal(got.loss[2], want.loss[2], `${label}: count`);
    assert.ok(want.loss[2]! > LOSS0[2]! && want.loss[2]! < LOSS0[2]! + c.rows, 'some targets counted, some ignored');
    assert.equal(got.loss[0], LOSS0[0]);
    assert.equal(got.loss[3], LOSS0[3]);
  }
});

test('headLoss with grads equals ref: dx overwritten (0 in ignored rows), dNormW and dHeadW accumulated, all in one gradient allocation', { skip }, () => {
  const r = new RefBackend();
  for (const c of CASES) {
    const d = headData(c);
    const want = runHead(r, c, true);
    const got = runHead(gpu!, c, true);
    const label = `rows ${c.rows} dim ${c.dim} vocab ${c.vocab} chunk ${c.chunk}`;
    const wl = want.loss[1]! - LOSS0[1]!;
    assert.ok(Math.abs(got.loss[1]! - LOSS0[1]! - wl) <= 1e-5 * Math.abs(wl), `${label}: loss`);
    assert.equal(got.loss[2], want.loss[2], `${label}: count`);
    const errs = {
      dx: relL2(got.dx!, want.dx!),
      dNormW: relL2(added(got.dNormW!, d.dNormW0), added(want.dNormW!, d.dNormW0)),
      dHeadW: relL2(added(got.dHeadW!, d.dHeadW0), added(want.dHeadW!, d.dHeadW0)),
    };
    for (const [name, e] of Object.entries(errs)) assert.ok(e <= 1e-4, `${label}: ${name} rel L2 ${e}`);
    for (let row = 0; row < c.rows; row++) {
      if (d.targets[row]! >= 0) continue;
      for (let i = 0; i < c.dim; i++) assert.equal(got.dx![row * c.dim + i], 0, `${label}: dx of ignored row ${row}`);
    }
  }
});

test('headLoss is deterministic: twice → bit-identical loss and gradients', { skip }, () => {
  const c = CASES[0]!;
  const a = runHead(gpu!, c, true);
  const b = runHead(gpu!, c, true);
  const bytes = (t: ArrayLike<number> & { buffer: ArrayBufferLike; byteOffset: number; byteLength: number }) => Buffer.from(t.buffer, t.byteOffset, t.byteLength);
  assert.ok(bytes(a.loss).equals(bytes(b.loss)), 'loss');
  assert.ok(bytes(a.dx!).equals(bytes(b.dx!)), 'dx');
  assert.ok(bytes(a.dNormW!).equals(bytes(b.dNormW!)), 'dNormW');
  assert.ok(bytes(a.dHeadW!).equals(bytes(b.dHeadW!)), 'dHeadW');
});

test('headLoss refuses a bf16 head copy (headWLowp) on webgpu', { skip }, () => {
  const g = gpu!;
  const x = g.alloc([2, 4]);
  const headW = g.alloc([3, 4]);
  const args: HeadLossArgs = { x, normW: g.alloc([4]), headW, targets: g.alloc([2], 'i32'), eps: 1e-5, lossOut: g.alloc([2], 'f64'), lossIndex: 0 };
  // webgpu cannot allocate bf16: a handle of that dtype stands for one.
  const lowp: Tensor = { ...headW, dtype: 'bf16' };
  assert.throws(() => HO.headLoss(g.context, { ...args, headWLowp: lowp }, 2, 4, 3, 16), /headWLowp .*not supported on the webgpu backend/);
});

const ADAM: Omit<AdamWParams, 'step'> = { lr: 1e-2, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.1 };

/** Five AdamW steps with fresh gradients; `shared` puts param, m, v and grad in one allocation. */
function runAdam(be: Be, n: number, shared: boolean): Float32Array[] {
  let ts: Tensor[];
  if (shared) {
    const all = be.alloc([4 * n + 3]);
    ts = [0, 1, 2, 3].map((i) => be.view(all, 3 + i * n, [n]));
  } else {
    ts = [0, 1, 2, 3].map(() => be.alloc([n]));
  }
  const [param, grad, m, v] = ts as [Tensor, Tensor, Tensor, Tensor];
  be.upload(param, randn(n, 21));
  for (let step = 1; step <= 5; step++) {
    const gr = randn(n, 100 + step, step === 3 ? 1e-3 : 1);
    gr[0] = 0;
    be.upload(grad, gr);
    if (be instanceof WebGpuBackend) HO.adamw(be.context, param, grad, m, v, { ...ADAM, step });
    else be.adamw(param, grad, m, v, { ...ADAM, step });
  }
  return [param, m, v].map((t) => be.download(t) as Float32Array);
}

test('adamw equals ref over five steps (param, m, v), in separate allocations and as views of one', { skip }, () => {
  const r = new RefBackend();
  const n = 1537;
  for (const shared of [false, true]) {
    const want = runAdam(r, n, shared);
    const got = runAdam(gpu!, n, shared);
    ['param', 'm', 'v'].forEach((name, i) => {
      const e = relL2(got[i]!, want[i]!);
      assert.ok(e <= 1e-6, `shared=${shared}: ${name} rel L2 ${e}`);
    });
  }
  const a = runAdam(gpu!, n, false);
  const b = runAdam(gpu!, n, false);
  a.forEach((t, i) => assert.ok(Buffer.from(t.buffer).equals(Buffer.from(b[i]!.buffer)), 'adamw is deterministic'));
});

test('clipByGlobalNorm equals ref: a norm above maxNorm scales, one below leaves x bit-identical, a NaN norm gives NaN', { skip }, () => {
  const r = new RefBackend();
  const n = 1001;
  const X = randn(n, 31);
  const norms = [0, 50.3, 0.5, NaN];
  const run = (be: Be, index: number): Float32Array => {
    const all = be.alloc([n + 2]);
    const x = be.view(all, 2, [n]);
    const sq = be.alloc([4], 'f64');
    be.upload(x, X);
    be.upload(sq, norms);
    if (be instanceof WebGpuBackend) HO.clipByGlobalNorm(be.context, x, sq, index, 2);
    else be.clipByGlobalNorm(x, sq, index, 2);
    return be.download(x) as Float32Array;
  };
  const above = run(gpu!, 1);
  const e = relL2(above, run(r, 1));
  assert.ok(e <= 1e-6, `above: rel L2 ${e}`);
  assert.ok(Math.abs(above[5]! / Math.fround(X[5]!) - 2 / (Math.sqrt(50.3) + 1e-6)) < 1e-6);
  const below = run(gpu!, 2);
  assert.deepEqual(below, Float32Array.from(X));
  assert.deepEqual(below, run(r, 2));
  assert.ok(run(gpu!, 3).every((v) => Number.isNaN(v)), 'NaN norm');
  assert.ok(run(r, 3).every((v) => Number.isNaN(v)), 'ref: NaN norm');
});

test('headLoss: a target outside the vocabulary (which ref refuses) gives a NaN loss, counted, and zero gradient rows on webgpu', { skip }, () => {
  const g = gpu!;
  const [rows, dim, vocab] = [3, 8, 5];
  const x = g.alloc([rows, dim]);
  const normW = g.alloc([dim]);
  const headW = g.alloc([vocab, dim]);
  const targets = g.alloc([rows], 'i32');
  const lossOut = g.alloc([2], 'f64');
  const dx = g.alloc([rows, dim]);
  g.upload(x, randn(rows * dim, 41));
  g.fill(normW, 1);
  g.upload(headW, randn(vocab * dim, 42));
  g.upload(targets, [1, vocab, -1]);
  g.fill(dx, 7);
  const args: HeadLossArgs = { x, normW, headW, targets, eps: 1e-5, lossOut, lossIndex: 0, grads: { dx, dNormW: g.alloc([dim]), dHeadW: g.alloc([vocab, dim]), gradScale: 1 } };
  HO.headLoss(g.context, args, rows, dim, vocab, 2);
  const loss = g.download(lossOut);
  assert.ok(Number.isNaN(loss[0]), `loss ${loss[0]}`);
  assert.equal(loss[1], 2);
  const d = g.download(dx);
  assert.ok(d.slice(dim).every((v) => v === 0), 'dx rows of the bad and the ignored target are 0');
  assert.ok(d.slice(0, dim).some((v) => v !== 0));
});
