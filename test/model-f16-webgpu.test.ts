/**
 * precision f16 (the webgpu backend's mixed precision, on devices with shader-f16; lavapipe has it),
 * each part against an independent reference with a stated tolerance:
 *
 * - f32 → f16 conversion: exact (round to nearest even, overflow to ∞, subnormals) on values whose
 *   f16 neighbours are known in closed form, on webgpu (WGSL) and ref / the host (TypeScript).
 * - Scaled conversion (the gradients' power-of-two factor): webgpu equals ref exactly.
 * - f16 matmul on webgpu vs ref on the same rounded inputs: rel L2 ≤ 1e-6 (summation order only); vs
 *   the f32 product of the unrounded inputs: rel L2 ≤ 2e-3 (two roundings of 2⁻¹¹ relative each,
 *   averaged over k terms).
 * - A training step: webgpu f16 vs ref f16 loss within 1e-5 relative, gradients rel L2 ≤ 5e-3 (an
 *   activation a hair from a rounding boundary may round the other way); f16 vs f32 loss within 1e-3,
 *   gradients rel L2 ≤ 1e-2. The gradient scale keeps this accuracy however small the gradients are.
 * - What cannot run is refused by name (f16 on cpu, bf16 on webgpu, a scale that is not a power of two).
 */
import { strict as assert } from 'node:assert';
import { join } from 'node:path';
import { test } from 'node:test';
import type { Backend, Tensor } from '../src/backend/backend.js';
import { CpuBackend } from '../src/backend/cpu/index.js';
import { f16Bits, f16Value, roundToF16 } from '../src/backend/f16.js';
import { RefBackend } from '../src/backend/ref/index.js';
import { readCheckpoint } from '../src/io/checkpoint.js';
import { readMetrics } from '../src/io/metrics.js';
import { modelConfig } from '../src/model/config.js';
import { f16GradientScale, Llama, type Precision } from '../src/model/llama.js';
import { initialParameters } from '../src/model/params.js';
import { LocalReplica } from '../src/parallel/local-replica.js';
import { loadTrainConfig } from '../src/train/config.js';
import { Progress } from '../src/train/progress.js';
import { loadResumeConfig } from '../src/train/resume.js';
import { runTrain } from '../src/train/run.js';
import { randInts, relL2 } from './helpers/num.js';
import { tempDir } from './helpers/tmp.js';
import { openTestDevice } from './helpers/webgpu-device.js';

const { gpu, skip: noDevice } = openTestDevice();
const noF16 = gpu && !gpu.supportsLowPrecision('f16').supported ? `this device has no shader-f16: ${gpu.supportsLowPrecision('f16').detail}` : false;
const skip = noDevice || noF16;

/** Values and the f16 value each must round to, derived by hand from the bit layout (1 + 10 mantissa bits, exponent −14…15). */
const ROUNDING: Array<[number, number]> = [
  [1, 1],
  [1 + 2 ** -11, 1], // halfway between 1 and 1 + 2⁻¹⁰: ties to the even mantissa (1)
  [1 + 3 * 2 ** -11, 1 + 2 ** -9], // halfway between 1 + 2⁻¹⁰ (odd) and 1 + 2⁻⁹: to the even one
  [1 + 2 ** -11 + 2 ** -20, 1 + 2 ** -10], // just above halfway: up
  [-3.140625, -3.140625], // exactly representable
  [65504, 65504], // the largest finite f16
  [65519, 65504], // below the halfway point to 2¹⁶: down
  [65520, Infinity], // halfway, to the even neighbour 2¹⁶, which is ∞
  [-1e6, -Infinity],
  [2 ** -14, 2 ** -14], // the smallest normal
  [2 ** -14 - 2 ** -25, 2 ** -14], // a subnormal halfway between 1023·2⁻²⁴ (odd) and 2⁻¹⁴: up to even
  [3 * 2 ** -25, 2 ** -23], // halfway between 1·2⁻²⁴ (odd) and 2·2⁻²⁴: to even
  [2 ** -25, 0], // halfway between 0 and 2⁻²⁴: to even (0)
  [2 ** -25 + 2 ** -40, 2 ** -24], // just above: up to the smallest subnormal
  [1e-10, 0],
  [Infinity, Infinity],
  [-0, -0],
];

function roundTrip(backend: Backend, xs: number[]): Float32Array {
  const f = backend.alloc([xs.length]);
  const h = backend.alloc([xs.length], 'f16');
  const back = backend.alloc([xs.length]);
  backend.upload(f, xs);
  backend.convert(h, f);
  backend.convert(back, h);
  const out = Float32Array.from(backend.download(back));
  for (const t of [f, h, back]) backend.free(t);
  return out;
}

test('f32 → f16 rounds to nearest even (∞ past 65520, subnormals) on webgpu and ref; NaN stays NaN; upload, download and fill round the same way', { skip }, () => {
  for (const [x, want] of ROUNDING) assert.ok(Object.is(f16Value(f16Bits(x)), want), `host: ${x} → ${f16Value(f16Bits(x))}, want ${want}`);
  assert.ok(Number.isNaN(roundToF16(NaN)));
  const xs = [...ROUNDING.map(([x]) => x), NaN];
  for (const backend of [gpu!, new RefBackend()]) {
    const got = roundTrip(backend, xs);
    ROUNDING.forEach(([x, want], i) => assert.ok(Object.is(got[i], want), `${backend.name}: ${x} → ${got[i]}, want ${want}`));
    assert.ok(Number.isNaN(got[xs.length - 1]!), `${backend.name}: NaN`);
    // An allocation of odd length, written and read through views at odd offsets (two f16 per word).
    const t = backend.alloc([ROUNDING.length + 2], 'f16');
    backend.fill(t, 7);
    const v = backend.view(t, 1, [ROUNDING.length]);
    backend.upload(v, ROUNDING.map(([x]) => x));
    const all = Float32Array.from(backend.download(t));
    assert.equal(all[0], 7, `${backend.name}: the element before the view is untouched`);
    assert.equal(all[ROUNDING.length + 1], 7, `${backend.name}: the element after the view is untouched`);
    assert.deepEqual([...all.subarray(1, -1)], ROUNDING.map(([, w]) => w), `${backend.name}: upload/download`);
    backend.fill(backend.view(t, 2, [1]), 1 + 2 ** -11 + 2 ** -20);
    assert.deepEqual([...backend.download(backend.view(t, 1, [3]))], [1, 1 + 2 ** -10, 1 + 2 ** -9], `${backend.name}: fill rounds and stays in its view`);
    const c = backend.alloc([3], 'f16');
    backend.copy(c, backend.view(t, 1, [3]));
    assert.deepEqual([...backend.download(c)], [1, 1 + 2 ** -10, 1 + 2 ** -9], `${backend.name}: copy of an odd-offset view`);
    backend.free(t);
    backend.free(c);
  }
});

test('scaled conversion: gradients far below f16 range survive a power-of-two scale, webgpu equal to ref', { skip }, () => {
  let seed = 5;
  const xs = Array.from({ length: 301 }, () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31 - 0.5) * 1e-7);
  const run = (be: Backend, scale: number): Float32Array => {
    const f = be.alloc([xs.length]);
    const h = be.alloc([xs.length], 'f16');
    be.upload(f, xs);
    be.convert(h, f, scale);
    be.convert(f, h, 1 / scale);
    const out = Float32Array.from(be.download(f));
    be.free(f);
    be.free(h);
    return out;
  };
  const ref = new RefBackend();
  for (const scale of [1, 2 ** 20]) assert.deepEqual(run(gpu!, scale), run(ref, scale), `scale ${scale}`);
  // Unscaled, most of these values are lost to f16's subnormals; scaled, they keep f16's 11 bits.
  assert.ok(relL2(run(ref, 1), Float32Array.from(xs)) > 0.05);
  assert.ok(relL2(run(ref, 2 ** 20), Float32Array.from(xs)) <= 5e-4);
  assert.equal(f16GradientScale(1 / 1000), 1024);
  assert.equal(f16GradientScale(1 / 256), 256);
  assert.equal(f16GradientScale(0), 1);
});

test('f16 matmul on webgpu: equals ref on the rounded inputs (rel L2 ≤ 1e-6), the f32 product within 2e-3; every transposition, alpha, beta, odd views', { skip }, () => {
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
        for (const [name, be, dtype] of [['gpu', gpu!, 'f16'], ['ref', ref, 'f16'], ['f32', ref, 'f32']] as const) {
          // a and b sit at odd offsets of one allocation (f16 elements that share a 4-byte word).
          const ab = be.alloc([1 + m * k + n * k], dtype);
          const a = be.view(ab, 1, transA ? [k, m] : [m, k]);
          const b = be.view(ab, 1 + m * k, transB ? [n, k] : [k, n]);
          const c = be.alloc([m, n]);
          be.upload(a, A);
          be.upload(b, B);
          be.upload(c, C0);
          be.matmul(c, a, b, transA, transB, 0.75, 0.5);
          out[name] = Float32Array.from(be.download(c));
          be.free(ab);
          be.free(c);
        }
        const what = `${m}×${n}×${k} transA=${transA} transB=${transB}`;
        assert.ok(relL2(out.gpu!, out.ref!) <= 1e-6, `${what}: webgpu vs ref ${relL2(out.gpu!, out.ref!)}`);
        assert.ok(relL2(out.gpu!, out.f32!) <= 2e-3, `${what}: f16 vs f32 ${relL2(out.gpu!, out.f32!)}`);
      }
    }
  }
});

test('16-bit types a backend lacks, mixed GEMM inputs and bad scales are refused by name', { skip }, () => {
  const cpu = new CpuBackend();
  assert.throws(() => cpu.alloc([4], 'f16'), /alloc: f16 is not available on the cpu backend \(its 16-bit GEMM type is bf16: use precision: bf16\)/);
  assert.throws(() => gpu!.alloc([4], 'bf16'), /alloc: bf16 is not available on the webgpu backend \(WGSL has f16, not bf16\): use precision: f16/);
  for (const be of [gpu!, new RefBackend()]) {
    const f = be.alloc([4, 4]);
    const h = be.alloc([4, 4], 'f16');
    assert.throws(() => be.convert(h, f, 3), /convert: scale must be a positive power of two, got 3/);
    assert.throws(() => be.convert(h, f, -2), /convert: scale must be a positive power of two/);
    assert.throws(() => be.convert(f, f), /convert: src must have dtype bf16 or f16, got f32/);
    assert.throws(() => be.matmul(f, f, h, false, false), /matmul: b must have dtype f32, got f16/);
    assert.throws(() => be.matmul(h, h, h, false, false), /matmul: c must have dtype f32 or f64, got f16/);
  }
});

async function trainStep(backend: Backend, precision: Precision, gradScale: number): Promise<{ loss: number; grads: Map<string, Float32Array | Float64Array> }> {
  const config = modelConfig(undefined, { vocab: 97, d_model: 64, n_layers: 2, n_heads: 4, n_kv_heads: 2, ffn_dim: 83, seq_len: 70, tie_embeddings: true, init_std: 0.1 });
  const model = new Llama(backend, config, { chunkTokens: 37, precision });
  const replica = new LocalReplica(backend, model.layout);
  replica.params.fromHost(initialParameters(model.layout, 5));
  const stats = backend.alloc([4], 'f64');
  const n = 2 * 70;
  const inputs: Tensor[] = [];
  replica.beginStep();
  for (let micro = 0; micro < 2; micro++) {
    const tokens = backend.alloc([n], 'i32');
    const targets = backend.alloc([n], 'i32');
    inputs.push(tokens, targets);
    backend.upload(tokens, randInts(n, config.vocab, 10 + micro));
    backend.upload(targets, randInts(n, config.vocab, 20 + micro));
    replica.beginMicroStep(0.5, stats, 2);
    await model.forwardBackward(tokens, targets, 2, 70, replica, replica, stats, 0, gradScale);
  }
  const loss = backend.download(stats)[0]!;
  const grads = replica.grads.toHost();
  model.dispose();
  for (const t of [...inputs, stats]) backend.free(t);
  return { loss, grads };
}

test('an f16 training step: webgpu equals ref within the rounding-boundary tolerance and stays within 1e-2 of f32, however small the gradients', { skip }, async () => {
  const n = 140;
  const ref = new RefBackend();
  const f16gpu = await trainStep(gpu!, 'f16', 1 / n);
  const f16ref = await trainStep(ref, 'f16', 1 / n);
  const f32 = await trainStep(ref, 'f32', 1 / n);
  assert.ok(Math.abs(f16gpu.loss - f16ref.loss) <= 1e-5 * f16ref.loss, `loss webgpu ${f16gpu.loss} vs ref ${f16ref.loss}`);
  assert.ok(Math.abs(f16gpu.loss - f32.loss) <= 1e-3 * f32.loss, `loss f16 ${f16gpu.loss} vs f32 ${f32.loss}`);
  assert.notEqual(f16gpu.loss, f32.loss, 'f16 rounding happened');
  for (const [name, g] of f16ref.grads) {
    assert.ok(relL2(f16gpu.grads.get(name)!, g) <= 5e-3, `${name}: webgpu vs ref ${relL2(f16gpu.grads.get(name)!, g)}`);
    assert.ok(relL2(f16gpu.grads.get(name)!, f32.grads.get(name)!) <= 1e-2, `${name}: f16 vs f32 ${relL2(f16gpu.grads.get(name)!, f32.grads.get(name)!)}`);
  }
  // Gradients 2⁻²⁴ times smaller (all below f16's smallest subnormal unscaled): the scale follows
  // gradScale, so the f16 step is as accurate as before (on ref, the oracle of the rounding).
  const tiny = 2 ** -24 / n;
  const [h, f] = [await trainStep(ref, 'f16', tiny), await trainStep(ref, 'f32', tiny)];
  for (const [name, g] of f.grads) assert.ok(relL2(h.grads.get(name)!, g) <= 1e-2, `${name} at gradScale 2⁻²⁴/n: f16 vs f32 ${relL2(h.grads.get(name)!, g)}`);
});

test('adabatch train with precision f16 on webgpu: follows the f32 run (losses within 1e-2), resumes bit-exactly', { skip }, async () => {
  const root = tempDir('adabatch-f16-');
  const quiet = { log: () => {}, progress: new Progress(process.stderr, 1e9, false) };
  const sets = (runDir: string, precision: string): string[] => [
    `run_dir=${runDir}`,
    'backend=webgpu',
    `precision=${precision}`,
    'model.preset=tiny',
    'model.n_layers=2',
    'model.seq_len=32',
    'data={synthetic: {phrases: 16, phrase_len: 6}}',
    'batch={schedule: norm, eta: 0.5, initial: 4, max: 16, max_micro: 4}',
    'budget.samples=64',
    'eval.windows=2',
    'lr.lr=0.003',
  ];
  const straight = await runTrain(loadTrainConfig(undefined, sets(join(root, 'f16'), 'f16')), quiet);
  await runTrain(loadTrainConfig(undefined, sets(join(root, 'f32'), 'f32')), quiet);
  const rows = (d: string) => readMetrics(join(root, d, 'metrics.jsonl')).filter((r) => r.loss !== undefined);
  const [a, b] = [rows('f16'), rows('f32')];
  assert.ok(a.length > 2);
  a.slice(0, 3).forEach((r, i) => assert.ok(Math.abs((r.loss as number) - (b[i]!.loss as number)) <= 1e-2 * (b[i]!.loss as number), `step ${r.step}: f16 ${r.loss} vs f32 ${b[i]!.loss}`));
  const dir = join(root, 'resumed');
  let steps = 0;
  const first = await runTrain(loadTrainConfig(undefined, sets(dir, 'f16')), { ...quiet, shouldStop: () => ++steps >= 2 });
  assert.ok(first.stoppedEarly);
  const resumed = await runTrain(loadResumeConfig(dir, undefined, []), { ...quiet, resume: true });
  const [ca, cb] = [readCheckpoint(straight.checkpoint!), readCheckpoint(resumed.checkpoint!)];
  for (const [name, t] of ca.model) assert.deepEqual(cb.model.get(name), t, `parameter ${name}`);
});
