/**
 * precision bf16: the conversions, the bf16 GEMM, and the training step, each against an independent
 * reference with a stated tolerance:
 *
 * - f32 → bf16 conversion: exact (round to nearest even) on values whose bf16 neighbours are known in
 *   closed form, on cpu (C++) and ref (TypeScript) alike.
 * - bf16 matmul on cpu vs ref on the same rounded inputs: rel L2 ≤ 1e-6 (only the summation order
 *   differs); vs the f32 product of the unrounded inputs: rel L2 ≤ 1e-2 (two roundings of 2⁻⁹
 *   relative each, averaged over k terms).
 * - The whole training step (bf16 on cpu vs bf16 on ref): loss within 1e-5 relative, gradients rel L2
 *   ≤ 5e-3 (an activation a hair from a rounding boundary may round the other way on either side);
 *   bf16 vs f32 on cpu: loss within 1e-3, gradients rel L2 ≤ 3e-2; recomputation changes nothing.
 * - A CPU without bf16 instructions refuses precision bf16 with the reason.
 */
import { strict as assert } from 'node:assert';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { Backend } from '../src/backend/backend.js';
import { bf16Bits, bf16Value } from '../src/backend/bf16.js';
import { CpuBackend, gemmConfig } from '../src/backend/cpu/index.js';
import { RefBackend } from '../src/backend/ref/index.js';
import { modelConfig } from '../src/model/config.js';
import { Llama, type Precision } from '../src/model/llama.js';
import { initialParameters } from '../src/model/params.js';
import { LocalReplica } from '../src/parallel/local-replica.js';
import { randInts, relL2 } from './helpers/num.js';
import { tempDir } from './helpers/tmp.js';

const BF16 = gemmConfig().bf16;
const skip = BF16 ? false : 'this CPU has no bf16 instructions: the cpu backend refuses bf16 (tested below)';
const BIN = fileURLToPath(new URL('../../bin/adabatch.js', import.meta.url));

/** Values and the bf16 value each must round to, derived by hand from the bit layout (1 + 7 mantissa bits). */
const ROUNDING: Array<[number, number]> = [
  [1, 1],
  [1 + 2 ** -8, 1], // halfway between 1 and 1 + 2⁻⁷: ties to the even mantissa (1)
  [1 + 3 * 2 ** -8, 1 + 2 ** -6], // halfway between 1 + 2⁻⁷ (odd) and 1 + 2⁻⁶: to the even one
  [1 + 2 ** -8 + 2 ** -20, 1 + 2 ** -7], // just above halfway: up
  [1 + 2 ** -8 - 2 ** -20, 1], // just below halfway: down
  [-3.140625, -3.140625], // exactly representable
  [-(2 ** 100) * (1 + 2 ** -8), -(2 ** 100)],
  [2 ** -130, 2 ** -130], // a float32 subnormal that bf16 holds exactly
  [3.3895313892515355e38, 3.3895313892515355e38], // bf16's largest finite value
  [3.4028234663852886e38, Infinity], // float32's largest rounds past it: Infinity
  [Infinity, Infinity],
  [-0, -0],
];

function roundTrip(backend: Backend, xs: number[]): Float32Array {
  const f = backend.alloc([xs.length]);
  const h = backend.alloc([xs.length], 'bf16');
  const back = backend.alloc([xs.length]);
  backend.upload(f, xs);
  backend.convert(h, f);
  backend.convert(back, h);
  const out = backend.download(back) as Float32Array;
  for (const t of [f, h, back]) backend.free(t);
  return out;
}

test('f32 → bf16 rounds to nearest even on cpu and ref; NaN stays NaN; upload and download of bf16 tensors round the same way', { skip }, () => {
  const xs = [...ROUNDING.map(([x]) => x), NaN];
  for (const backend of [new CpuBackend({ threads: 2 }), new RefBackend()]) {
    const got = roundTrip(backend, xs);
    ROUNDING.forEach(([x, want], i) => assert.ok(Object.is(got[i], Math.fround(want)), `${backend.name}: ${x} → ${got[i]}, want ${want}`));
    assert.ok(Number.isNaN(got[xs.length - 1]!), `${backend.name}: NaN`);
    const t = backend.alloc([ROUNDING.length], 'bf16');
    backend.upload(t, ROUNDING.map(([x]) => x));
    assert.deepEqual([...backend.download(t)], ROUNDING.map(([, w]) => Math.fround(w)), `${backend.name}: upload/download`);
    backend.fill(t, 1 + 2 ** -8 + 2 ** -20);
    assert.equal(backend.download(t)[0], 1 + 2 ** -7, `${backend.name}: fill rounds`);
  }
  // The host helpers agree with the closed form too.
  for (const [x, want] of ROUNDING) assert.ok(Object.is(bf16Value(bf16Bits(x)), Math.fround(want)), `host: ${x}`);
});

test('bf16 matmul: cpu equals ref on the rounded inputs (rel L2 ≤ 1e-6) and the f32 product within 1e-2, every transposition, alpha and beta', { skip }, () => {
  const cpu = new CpuBackend({ threads: 2 });
  const ref = new RefBackend();
  let seed = 3;
  const rand = (n: number): Float32Array => Float32Array.from({ length: n }, () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31) - 0.5);
  for (const [m, n, k] of [[37, 29, 53], [130, 70, 300], [1, 257, 64]] as const) {
    for (const transA of [false, true]) {
      for (const transB of [false, true]) {
        const A = rand(m * k);
        const B = rand(k * n);
        const C0 = rand(m * n);
        const out: Record<string, Float32Array> = {};
        for (const [name, be, dtype] of [['cpu', cpu, 'bf16'], ['ref', ref, 'bf16'], ['f32', ref, 'f32']] as const) {
          const a = be.alloc(transA ? [k, m] : [m, k], dtype);
          const b = be.alloc(transB ? [n, k] : [k, n], dtype);
          const c = be.alloc([m, n]);
          be.upload(a, A);
          be.upload(b, B);
          be.upload(c, C0);
          be.matmul(c, a, b, transA, transB, 0.75, 0.5);
          out[name] = be.download(c) as Float32Array;
        }
        const what = `${m}×${n}×${k} transA=${transA} transB=${transB}`;
        assert.ok(relL2(out.cpu!, out.ref!) <= 1e-6, `${what}: cpu vs ref ${relL2(out.cpu!, out.ref!)}`);
        assert.ok(relL2(out.cpu!, out.f32!) <= 1e-2, `${what}: bf16 vs f32 ${relL2(out.cpu!, out.f32!)}`);
      }
    }
  }
});

test('bf16 tensors: bad calls are refused by name (convert within one dtype, mixed GEMM inputs, bf16 output)', { skip }, () => {
  for (const be of [new CpuBackend(), new RefBackend()]) {
    const f = be.alloc([4, 4]);
    const h = be.alloc([4, 4], 'bf16');
    assert.throws(() => be.convert(f, f), /convert: src must have dtype bf16 or f16, got f32/);
    assert.throws(() => be.convert(h, be.alloc([5], 'f32')), /convert: .*size|elements/);
    assert.throws(() => be.matmul(f, f, h, false, false), /matmul: b must have dtype f32, got bf16/);
    assert.throws(() => be.matmul(h, h, h, false, false), /matmul: c must have dtype f32 or f64, got bf16/);
  }
});

test('bf16 head + loss kernel: cpu equals ref on the same rounded operands (loss 1e-5, gradients rel L2 ≤ 5e-3) and stays within 1e-3 / 3e-2 of f32', { skip }, () => {
  const rows = 45;
  const dim = 40;
  const vocab = 301;
  let seed = 11;
  const rand = (n: number, s = 1): Float32Array => Float32Array.from({ length: n }, () => s * (((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31) - 0.5));
  const X = rand(rows * dim, 4);
  const NW = rand(dim, 1).map((v) => 1 + v);
  const HW = rand(vocab * dim, 0.5);
  const targets = Int32Array.from(randInts(rows, vocab, 3));
  targets[7] = -1;
  const run = (be: Backend, lowp: boolean): { loss: number; dx: Float32Array; dNormW: Float32Array; dHeadW: Float32Array } => {
    const t = (data: ArrayLike<number>, shape: number[], dtype: 'f32' | 'bf16' = 'f32') => {
      const x = be.alloc(shape, dtype);
      be.upload(x, data);
      return x;
    };
    const x = t(X, [rows, dim]);
    const headW = t(HW, [vocab, dim]);
    const tg = be.alloc([rows], 'i32');
    be.upload(tg, targets);
    const lossOut = be.alloc([2], 'f64');
    const grads = { dx: be.alloc([rows, dim]), dNormW: be.alloc([dim]), dHeadW: be.alloc([vocab, dim]), gradScale: 1 / rows };
    be.headLoss({ x, normW: t(NW, [dim]), headW, targets: tg, eps: 1e-5, lossOut, lossIndex: 0, grads, chunkTokens: 16, ...(lowp && { headWLowp: t(HW, [vocab, dim], 'bf16') }) });
    const f = (u: Parameters<Backend['download']>[0]): Float32Array => Float32Array.from(be.download(u));
    return { loss: be.download(lossOut)[0]!, dx: f(grads.dx), dNormW: f(grads.dNormW), dHeadW: f(grads.dHeadW) };
  };
  const cpu = run(new CpuBackend({ threads: 2 }), true);
  const ref = run(new RefBackend(), true);
  const f32 = run(new RefBackend(), false);
  assert.ok(Math.abs(cpu.loss - ref.loss) <= 1e-5 * ref.loss, `loss cpu ${cpu.loss} vs ref ${ref.loss}`);
  assert.ok(Math.abs(cpu.loss - f32.loss) <= 1e-3 * f32.loss, `loss bf16 ${cpu.loss} vs f32 ${f32.loss}`);
  for (const k of ['dx', 'dNormW', 'dHeadW'] as const) {
    assert.ok(relL2(cpu[k], ref[k]) <= 5e-3, `${k}: cpu vs ref ${relL2(cpu[k], ref[k])}`);
    assert.ok(relL2(cpu[k], f32[k]) <= 3e-2, `${k}: bf16 vs f32 ${relL2(cpu[k], f32[k])}`);
  }
  const r = new RefBackend();
  const bad = { x: r.alloc([1, 2]), normW: r.alloc([2]), headW: r.alloc([3, 2]), targets: r.alloc([1], 'i32'), eps: 1e-5, lossOut: r.alloc([2], 'f64'), lossIndex: 0 };
  assert.throws(() => r.headLoss({ ...bad, headWLowp: r.alloc([3, 2]) }), /headLoss: headWLowp must have dtype bf16, got f32/);
  assert.throws(() => r.headLoss({ ...bad, headWLowp: r.alloc([2, 2], 'bf16') }), /headLoss: headWLowp .* must have 6 elements/);
});

async function trainStep(backend: Backend, precision: Precision, recompute: boolean): Promise<{ loss: number; grads: Map<string, Float32Array | Float64Array> }> {
  const config = modelConfig(undefined, { vocab: 97, d_model: 60, n_layers: 2, n_heads: 6, n_kv_heads: 2, ffn_dim: 83, seq_len: 70, tie_embeddings: true, init_std: 0.1 });
  const model = new Llama(backend, config, { recompute, chunkTokens: 37, precision });
  const replica = new LocalReplica(backend, model.layout);
  replica.params.fromHost(initialParameters(model.layout, 5));
  const stats = backend.alloc([4], 'f64');
  const n = 2 * 70;
  replica.beginStep();
  for (let micro = 0; micro < 2; micro++) {
    const tokens = backend.alloc([n], 'i32');
    const targets = backend.alloc([n], 'i32');
    backend.upload(tokens, randInts(n, config.vocab, 10 + micro));
    backend.upload(targets, randInts(n, config.vocab, 20 + micro));
    replica.beginMicroStep(0.5, stats, 2);
    await model.forwardBackward(tokens, targets, 2, 70, replica, replica, stats, 0, 1 / n);
  }
  const loss = backend.download(stats)[0]!;
  const grads = replica.grads.toHost();
  model.dispose();
  return { loss, grads };
}

test('a bf16 training step: cpu equals ref within the rounding-boundary tolerance, stays within 3e-2 of f32, and recomputation changes nothing', { skip }, async () => {
  const cpu = await trainStep(new CpuBackend({ threads: 2 }), 'bf16', false);
  const ref = await trainStep(new RefBackend(), 'bf16', false);
  const f32 = await trainStep(new CpuBackend({ threads: 2 }), 'f32', false);
  const recomputed = await trainStep(new CpuBackend({ threads: 2 }), 'bf16', true);
  assert.ok(Math.abs(cpu.loss - ref.loss) <= 1e-5 * ref.loss, `loss cpu ${cpu.loss} vs ref ${ref.loss}`);
  assert.ok(Math.abs(cpu.loss - f32.loss) <= 1e-3 * f32.loss, `loss bf16 ${cpu.loss} vs f32 ${f32.loss}`);
  assert.notEqual(cpu.loss, f32.loss, 'bf16 rounding happened');
  assert.equal(recomputed.loss, cpu.loss);
  for (const [name, g] of ref.grads) {
    assert.ok(relL2(cpu.grads.get(name)!, g) <= 5e-3, `${name}: cpu vs ref ${relL2(cpu.grads.get(name)!, g)}`);
    assert.ok(relL2(cpu.grads.get(name)!, f32.grads.get(name)!) <= 3e-2, `${name}: bf16 vs f32 ${relL2(cpu.grads.get(name)!, f32.grads.get(name)!)}`);
    assert.deepEqual(recomputed.grads.get(name), cpu.grads.get(name), `${name}: recomputed`);
  }
});

test('without bf16 instructions (oneDNN limited to AVX-512 core), precision bf16 is refused with the reason; f32 trains', () => {
  const dir = tempDir('adabatch-bf16-');
  const env = { ...process.env, DNNL_MAX_CPU_ISA: 'AVX512_CORE', ONEDNN_MAX_CPU_ISA: 'AVX512_CORE' };
  const args = (precision: string): string[] => [BIN, 'train', '--set', 'model.preset=tiny', '--set', 'model.n_layers=1', '--set', 'data={synthetic: {phrases: 8, phrase_len: 6}}', '--set', 'budget.samples=8', '--set', 'eval.windows=2', '--set', `precision=${precision}`, '--set', 'checkpoint.at_end=false', '--set', `run_dir=${join(dir, precision)}`];
  const r = spawnSync(process.execPath, args('bf16'), { encoding: 'utf8', env });
  assert.equal(r.status, 2, r.stderr);
  assert.match(r.stderr, /precision: bf16 is not available on backend 'cpu': this CPU has no bf16 instructions \(AVX512_BF16 or AMX\): oneDNN [\d.]+ dispatches to avx512_core/);
  const ok = spawnSync(process.execPath, args('f32'), { encoding: 'utf8', env });
  assert.equal(ok.status, 0, ok.stderr);
  assert.match(ok.stderr + ok.stdout, /kernels: GEMMs oneDNN [\d.]+ on avx512_core \(f32 \S+; no bf16 instructions\)/);
});
