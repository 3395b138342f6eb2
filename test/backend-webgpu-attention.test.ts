/**
 * The webgpu attention kernels (kernels/attention.ts) against the ref backend, on Mesa's software
 * Vulkan driver (lavapipe) unless ADABATCH_TEST_GPU=1 asks for the machine's own GPU: forward (out,
 * lse), backward (dqkv) and the decoding step, on shapes whose seqLen is not a multiple of the tile,
 * grouped-query and plain heads, head dimensions below, at and above one chunk; rel L2 ≤ 1e-4, and
 * the same inputs twice give bit-identical outputs.
 */
import { strict as assert } from 'node:assert';
import { test } from 'node:test';
import type { AttentionDims, Backend, DecodeDims, Tensor } from '../src/backend/backend.js';
import { RefBackend } from '../src/backend/ref/index.js';
import * as A from '../src/backend/webgpu/kernels/attention.js';
import { relL2 } from './helpers/num.js';
import { WebGpuBackend } from '../src/backend/webgpu/index.js';
import { openTestDevice } from './helpers/webgpu-device.js';

const { gpu, skip } = openTestDevice();

let seed = 4242;
const rand = (n: number, scale = 1): Float32Array => Float32Array.from({ length: n }, () => scale * (((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31) - 0.5));

const TOL = 1e-4;
const qkvWidth = (d: AttentionDims) => (d.nHeads + 2 * d.nKvHeads) * d.headDim;

/** The webgpu kernels behind the Backend method names the test calls. */
function ops(be: Backend | WebGpuBackend) {
  if (be instanceof WebGpuBackend) {
    const ctx = be.context;
    return {
      forward: (out: Tensor, lse: Tensor, qkv: Tensor, d: AttentionDims) => A.attentionForward(ctx, out, lse, qkv, d),
      backward: (dqkv: Tensor, dOut: Tensor, qkv: Tensor, out: Tensor, lse: Tensor, d: AttentionDims) => A.attentionBackward(ctx, dqkv, dOut, qkv, out, lse, d),
      decode: (out: Tensor, qkv: Tensor, k: Tensor, v: Tensor, pos: number, d: DecodeDims) => A.attentionDecode(ctx, out, qkv, k, v, pos, d),
    };
  }
  return { forward: be.attentionForward.bind(be), backward: be.attentionBackward.bind(be), decode: be.attentionDecode.bind(be) };
}

interface Run {
  out: Float32Array;
  lse: Float32Array;
  dqkv: Float32Array;
}

/** Forward then backward on `be`; `arena` puts every tensor in one allocation as views (out and lse included). */
function runAttention(be: Backend | WebGpuBackend, d: AttentionDims, Q: Float32Array, dO: Float32Array, arena = false): Run {
  const N = d.batch * d.seqLen;
  const sizes = { qkv: N * qkvWidth(d), out: N * d.nHeads * d.headDim, lse: d.batch * d.nHeads * d.seqLen };
  const make = (() => {
    if (!arena) return (n: number) => be.alloc([n]);
    const whole = be.alloc([3 + 2 * sizes.qkv + 2 * sizes.out + sizes.lse]);
    let at = 3; // an offset that is not 256-byte aligned
    return (n: number) => {
      const v = be.view(whole, at, [n]);
      at += n;
      return v;
    };
  })();
  const qkv = make(sizes.qkv);
  const out = make(sizes.out);
  const lse = make(sizes.lse);
  const dOut = make(sizes.out);
  const dqkv = make(sizes.qkv);
  be.upload(qkv, Q);
  be.upload(dOut, dO);
  be.fill(dqkv, 7); // overwritten, not accumulated
  const f = ops(be);
  f.forward(out, lse, qkv, d);
  f.backward(dqkv, dOut, qkv, out, lse, d);
  const get = (t: Tensor) => Float32Array.from(be.download(t));
  return { out: get(out), lse: get(lse), dqkv: get(dqkv) };
}

const SHAPES: AttentionDims[] = [
  { batch: 2, seqLen: 70, nHeads: 6, nKvHeads: 2, headDim: 10 },
  { batch: 1, seqLen: 33, nHeads: 6, nKvHeads: 6, headDim: 64 },
  { batch: 2, seqLen: 33, nHeads: 6, nKvHeads: 2, headDim: 8 },
  { batch: 1, seqLen: 17, nHeads: 2, nKvHeads: 1, headDim: 96 },
];

const bitsEqual = (a: Float32Array, b: Float32Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));

test('attention forward (out, lse) and backward (dqkv) equal ref: seqLen 70 and 33, batch 2, GQA 6/2 and 6/6, headDim 8, 10, 64, 96', { skip }, () => {
  const g = gpu!;
  const r = new RefBackend();
  for (const d of SHAPES) {
    const N = d.batch * d.seqLen;
    const Q = rand(N * qkvWidth(d), 4);
    const dO = rand(N * d.nHeads * d.headDim);
    const want = runAttention(r, d, Q, dO);
    const got = runAttention(g, d, Q, dO);
    const tag = JSON.stringify(d);
    for (const k of ['out', 'lse', 'dqkv'] as const) {
      const err = relL2(got[k], want[k]);
      assert.ok(err <= TOL, `${tag} ${k}: rel L2 ${err}`);
    }
    // The same inputs again: bit-identical.
    const again = runAttention(g, d, Q, dO);
    for (const k of ['out', 'lse', 'dqkv'] as const) assert.ok(bitsEqual(again[k], got[k]), `${tag} ${k}: not bit-identical on a second run`);
  }
});

test('attention with every tensor a view of one allocation (out and lse included) equals the separate-tensor result bit for bit', { skip }, () => {
  const g = gpu!;
  const d = SHAPES[0]!;
  const N = d.batch * d.seqLen;
  const Q = rand(N * qkvWidth(d), 4);
  const dO = rand(N * d.nHeads * d.headDim);
  const separate = runAttention(g, d, Q, dO);
  const arena = runAttention(g, d, Q, dO, true);
  for (const k of ['out', 'lse', 'dqkv'] as const) assert.ok(bitsEqual(arena[k], separate[k]), `${k} differs`);
});

test('attentionDecode equals ref (caches and out) at pos 0, in the middle and at the last slot; deterministic', { skip }, () => {
  const g = gpu!;
  const r = new RefBackend();
  for (const d of [
    { batch: 2, maxSeqLen: 40, nHeads: 6, nKvHeads: 2, headDim: 10 },
    { batch: 1, maxSeqLen: 300, nHeads: 4, nKvHeads: 4, headDim: 64 },
    { batch: 2, maxSeqLen: 9, nHeads: 2, nKvHeads: 1, headDim: 96 },
  ] satisfies DecodeDims[]) {
    const W = (d.nHeads + 2 * d.nKvHeads) * d.headDim;
    const cacheSize = d.batch * d.maxSeqLen * d.nKvHeads * d.headDim;
    const K0 = rand(cacheSize, 4);
    const V0 = rand(cacheSize);
    for (const pos of [0, Math.floor(d.maxSeqLen / 2) + 1, d.maxSeqLen - 1]) {
      const Q = rand(d.batch * W, 4);
      const res: Record<string, Float32Array[]> = {};
      for (const [name, be] of [['ref', r], ['webgpu', g], ['again', g]] as const) {
        const qkv = be.alloc([d.batch, W]);
        const out = be.alloc([d.batch, d.nHeads * d.headDim]);
        const kc = be.alloc([cacheSize]);
        const vc = be.alloc([cacheSize]);
        be.upload(qkv, Q);
        be.upload(kc, K0);
        be.upload(vc, V0);
        ops(be).decode(out, qkv, kc, vc, pos, d);
        res[name] = [out, kc, vc].map((t) => Float32Array.from(be.download(t)));
      }
      const tag = `${JSON.stringify(d)} pos ${pos}`;
      res.webgpu!.forEach((t, i) => {
        const err = relL2(t, res.ref![i]!);
        assert.ok(err <= TOL, `${tag} tensor ${i}: rel L2 ${err}`);
        assert.ok(bitsEqual(res.again![i]!, t), `${tag} tensor ${i}: not bit-identical on a second run`);
      });
      // The caches change only at pos.
      assert.ok(bitsEqual(res.webgpu![1]!, res.ref![1]!) && bitsEqual(res.webgpu![2]!, res.ref![2]!), `${tag}: caches differ`);
    }
  }
});

test('attention kernels refuse what they cannot compute, naming the limit', { skip }, () => {
  const g = gpu!;
  const ctx = g.context;
  const hd = A.MAX_HEAD_DIM + 8;
  const d: AttentionDims = { batch: 1, seqLen: 2, nHeads: 1, nKvHeads: 1, headDim: hd };
  const qkv = g.alloc([2, 3 * hd]);
  const out = g.alloc([2, hd]);
  const lse = g.alloc([2]);
  assert.throws(() => A.attentionForward(ctx, out, lse, qkv, d), new RegExp(`attentionForward: headDim ${hd} exceeds .*maximum of ${A.MAX_HEAD_DIM}`));
  assert.throws(() => A.attentionBackward(ctx, g.alloc([2, 3 * hd]), g.alloc([2, hd]), qkv, out, lse, d), new RegExp(`attentionBackward: headDim ${hd} exceeds`));
  const f64 = g.alloc([2, 3 * hd], 'f64');
  assert.throws(() => A.attentionForward(ctx, out, lse, f64, { ...d, headDim: 8 }), /attentionForward: qkv must be f32 on the webgpu backend/);
  const dd: DecodeDims = { batch: 1, maxSeqLen: 4, nHeads: 1, nKvHeads: 1, headDim: 8 };
  const c = g.alloc([32]);
  assert.throws(() => A.attentionDecode(ctx, g.alloc([8]), g.alloc([24]), c, g.alloc([32]), 4, dd), /attentionDecode: pos 4 is outside the cache \(maxSeqLen 4\)/);
  g.synchronize(); // nothing reached the device
});
