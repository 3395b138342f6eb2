/**
 * cpu attention (tiled causal GEMMs with recomputation in backward) and the KV-cache decode step
 * against the ref oracle: grouped-query heads, sequence lengths that are not multiples of the tile,
 * odd head dimensions, inputs through views with non-zero offsets, one and two threads.
 */
import { strict as assert } from 'node:assert';
import { test } from 'node:test';
import type { AttentionDims } from '../src/backend/backend.js';
import { cpuBackend, down, expectClose, put, putView, rand, ref, zeros } from './backend-cpu-util.js';

const TOL = 1e-4; // GEMM and softmax summation order differ from ref's float64 loops

const CASES: AttentionDims[] = [
  { batch: 2, seqLen: 13, nHeads: 4, nKvHeads: 2, headDim: 6 },
  { batch: 1, seqLen: 130, nHeads: 3, nKvHeads: 1, headDim: 16 },
  { batch: 3, seqLen: 65, nHeads: 2, nKvHeads: 2, headDim: 8 },
  { batch: 1, seqLen: 64, nHeads: 1, nKvHeads: 1, headDim: 33 },
  { batch: 2, seqLen: 1, nHeads: 2, nKvHeads: 1, headDim: 4 },
];

for (const threads of [1, 2]) {
  const cpu = cpuBackend(threads);
  for (const d of CASES) {
    const label = `B=${d.batch} T=${d.seqLen} H=${d.nHeads} Hkv=${d.nKvHeads} hd=${d.headDim}, ${threads} thread(s)`;
    test(`attention forward and backward equal ref (${label})`, () => {
      const n = d.batch * d.seqLen;
      const width = (d.nHeads + 2 * d.nKvHeads) * d.headDim;
      const qkv = putView(cpu, rand(n * width, 1 + d.seqLen, 1.5), [n, width], 7);
      const out = zeros(cpu, [n, d.nHeads * d.headDim]);
      const lse = zeros(cpu, [d.batch * d.nHeads * d.seqLen]);
      cpu.attentionForward(out.cpu, lse.cpu, qkv.cpu, d);
      ref.attentionForward(out.ref, lse.ref, qkv.ref, d);
      expectClose(cpu, out, TOL, `attention out (${label})`);
      expectClose(cpu, lse, 1e-5, `attention lse (${label})`);
      const dOut = put(cpu, rand(n * d.nHeads * d.headDim, 2), [n, d.nHeads * d.headDim]);
      const dqkv = put(cpu, rand(n * width, 3), [n, width]); // garbage: backward overwrites
      cpu.attentionBackward(dqkv.cpu, dOut.cpu, qkv.cpu, out.cpu, lse.cpu, d);
      ref.attentionBackward(dqkv.ref, dOut.ref, qkv.ref, out.ref, lse.ref, d);
      expectClose(cpu, dqkv, TOL, `attention dqkv (${label})`);
    });
  }

  test(`attentionDecode step by step equals ref, caches included (GQA, ${threads} thread(s))`, () => {
    const dims = { batch: 2, maxSeqLen: 70, nHeads: 6, nKvHeads: 2, headDim: 10 };
    const width = (dims.nHeads + 2 * dims.nKvHeads) * dims.headDim;
    const cache = dims.batch * dims.maxSeqLen * dims.nKvHeads * dims.headDim;
    const kCache = zeros(cpu, [cache]);
    const vCache = zeros(cpu, [cache]);
    for (let pos = 0; pos < 67; pos++) {
      const qkv = putView(cpu, rand(dims.batch * width, 100 + pos), [dims.batch, width], 1 + (pos % 3));
      const out = zeros(cpu, [dims.batch, dims.nHeads * dims.headDim]);
      cpu.attentionDecode(out.cpu, qkv.cpu, kCache.cpu, vCache.cpu, pos, dims);
      ref.attentionDecode(out.ref, qkv.ref, kCache.ref, vCache.ref, pos, dims);
      if (pos % 11 === 0 || pos === 66) expectClose(cpu, out, 1e-5, `decode out at pos ${pos}`);
    }
    assert.deepEqual(down(cpu, kCache.cpu), down(ref, kCache.ref), 'k cache');
    assert.deepEqual(down(cpu, vCache.cpu), down(ref, vCache.ref), 'v cache');
  });
}

test('attention results are bit-identical for 1 and 2 threads', () => {
  const d: AttentionDims = { batch: 2, seqLen: 130, nHeads: 4, nKvHeads: 2, headDim: 16 };
  const n = d.batch * d.seqLen;
  const width = (d.nHeads + 2 * d.nKvHeads) * d.headDim;
  const results = [1, 2].map((threads) => {
    const cpu = cpuBackend(threads);
    const qkv = put(cpu, rand(n * width, 5), [n, width]).cpu;
    const out = cpu.alloc([n, d.nHeads * d.headDim]);
    const lse = cpu.alloc([d.batch * d.nHeads * d.seqLen]);
    cpu.attentionForward(out, lse, qkv, d);
    const dqkv = cpu.alloc([n, width]);
    cpu.attentionBackward(dqkv, put(cpu, rand(n * d.nHeads * d.headDim, 6), [n, d.nHeads * d.headDim]).cpu, qkv, out, lse, d);
    return [down(cpu, out), down(cpu, lse), down(cpu, dqkv)];
  });
  assert.deepEqual(results[1], results[0]);
});
