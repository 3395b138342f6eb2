/**
 * The webgpu backend's kernels so far (memory, elementwise, reductions, GEMM) against the ref
 * backend, on Mesa's software Vulkan driver (lavapipe) unless ADABATCH_TEST_GPU=1 asks for the
 * machine's own GPU. Reductions must match the float64 result to 1e-6 relative (WGSL has no f64:
 * compensated float32 partial sums, then double-float accumulation).
 */
import { strict as assert } from 'node:assert';
import { spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { test } from 'node:test';
import { RefBackend } from '../src/backend/ref/index.js';
import { WebGpuBackend } from '../src/backend/webgpu/index.js';
import { relL2 } from './helpers/num.js';
import { openTestDevice } from './helpers/webgpu-device.js';

const { gpu, skip } = openTestDevice();

let seed = 12345;
const rand = (n: number, scale = 1): Float32Array => Float32Array.from({ length: n }, () => scale * (((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31) - 0.5));

test('the device opens and describes itself (adapter, features, limits)', { skip }, () => {
  const d = gpu!.device;
  assert.ok(d.adapter.length > 0);
  assert.ok(d.maxStorageBufferBindingSize >= 128 * 2 ** 20, `maxStorageBufferBindingSize ${d.maxStorageBufferBindingSize}`);
  assert.ok(d.maxBufferSize >= d.maxStorageBufferBindingSize);
});

test('matmul equals ref: awkward sizes, every transposition, alpha and beta, views at unaligned offsets, operands in C\'s own allocation', { skip }, () => {
  const g = gpu!;
  const r = new RefBackend();
  for (const [m, n, k] of [[37, 29, 53], [130, 70, 300], [1, 257, 64], [65, 1, 17], [64, 64, 64], [200, 129, 1]] as const) {
    for (const transA of [false, true]) {
      for (const transB of [false, true]) {
        const A = rand(m * k);
        const B = rand(k * n);
        const C0 = rand(m * n);
        const out: Record<string, Float32Array> = {};
        for (const be of [g, r]) {
          // Each operand is a view 3 elements into a larger allocation (offsets not 256-byte aligned).
          const view = (shape: number[], data: Float32Array) => {
            const whole = be.alloc([data.length + 5]);
            const v = be.view(whole, 3, shape);
            be.upload(v, data);
            return v;
          };
          const a = view(transA ? [k, m] : [m, k], A);
          const b = view(transB ? [n, k] : [k, n], B);
          const c = view([m, n], C0);
          be.matmul(c, a, b, transA, transB, 0.75, 0.5);
          out[be.name] = be.download(c) as Float32Array;
        }
        const err = relL2(out.webgpu!, out.ref!);
        assert.ok(err < 1e-5, `${m}×${n}×${k} transA=${transA} transB=${transB}: rel L2 ${err}`);
      }
    }
  }
  // A and B as views of C's allocation (WebGPU forbids a writable binding aliasing another one).
  const out2: Record<string, Float32Array> = {};
  const D = rand(3 * 64 * 64);
  for (const be of [g, r]) {
    const whole = be.alloc([3 * 64 * 64]);
    be.upload(whole, D);
    const [c, a, b] = [0, 1, 2].map((i) => be.view(whole, i * 64 * 64, [64, 64]));
    be.matmul(c!, a!, b!, false, true, 1, 1);
    out2[be.name] = be.download(whole) as Float32Array;
  }
  assert.ok(relL2(out2.webgpu!, out2.ref!) < 1e-5, 'C += A·Bᵀ with A, B and C in one allocation');
});

test('reductions match float64 to 1e-6 relative (1M elements, views, accumulate into what the slot held)', { skip }, () => {
  const g = gpu!;
  const N = 1_000_003;
  const X = rand(N, 3);
  const Y = rand(N);
  const f64 = { ss: 0.1, dot: 0.2, acc: 0.3 };
  for (let i = 0; i < N; i++) {
    f64.ss += X[i]! * X[i]!;
    f64.dot += X[i]! * Y[i]!;
    f64.acc += Y[i]! * Y[i]!;
  }
  const x = g.alloc([N]);
  const y = g.alloc([N]);
  const stats = g.alloc([5], 'f64');
  g.upload(x, X);
  g.upload(y, Y);
  g.upload(stats, [0, 0.1, 0.2, 0.3, 0]);
  g.sumSquares(x, stats, 1);
  g.dot(x, y, stats, 2);
  g.accumulateWithNorm(x, 0.5, y, stats, 3);
  g.sumSquares(g.view(x, 0, [0]), stats, 4); // an empty tensor adds nothing
  const s = g.download(stats);
  for (const [i, want] of [[1, f64.ss], [2, f64.dot], [3, f64.acc]] as const) assert.ok(Math.abs(s[i]! - want) <= 1e-6 * Math.abs(want), `stat ${i}: ${s[i]} vs ${want}`);
  assert.equal(s[0], 0);
  assert.equal(s[4], 0);
  // accumulateWithNorm also did x += 0.5·y.
  const xs = g.download(x);
  for (const i of [0, 1, 77, N - 1]) assert.equal(xs[i], Math.fround(X[i]! + Math.fround(0.5 * Y[i]!)));
});

test('elementwise kernels, fill and copy equal ref, aliasing included; float64 and int32 tensors round-trip', { skip }, () => {
  const g = gpu!;
  const r = new RefBackend();
  const n = 1001;
  const A = rand(n);
  const B = rand(n);
  const out: Record<string, Float32Array[]> = {};
  for (const be of [g, r]) {
    const a = be.alloc([n]);
    const b = be.alloc([n]);
    const c = be.alloc([n]);
    be.upload(a, A);
    be.upload(b, B);
    be.scale(a, 1.5);
    be.axpy(b, -0.25, a);
    be.add(c, a, b);
    be.add(a, a, b);
    be.add(b, a, b);
    be.add(c, c, c);
    // Same-allocation copy between views, and a fill of a view.
    be.copy(be.view(c, 0, [500]), be.view(c, 501, [500]));
    be.fill(be.view(a, 10, [20]), -2.5);
    out[be.name] = [a, b, c].map((t) => be.download(t) as Float32Array);
  }
  out.webgpu!.forEach((t, i) => assert.ok(relL2(t, out.ref![i]!) < 1e-6, `tensor ${i}`));
  const d = g.alloc([3], 'f64');
  const values = [Math.PI, -1 / 3, 1e-30];
  g.upload(d, values);
  g.download(d).forEach((v, i) => assert.ok(Math.abs(v - values[i]!) <= 1e-13 * Math.abs(values[i]!), `f64 ${values[i]} → ${v}`));
  g.fill(d, 0.1);
  assert.ok(Math.abs(g.download(d)[2]! - 0.1) < 1e-15);
  const t = g.alloc([4], 'i32');
  g.upload(t, [1, -2, 2 ** 31 - 1, -(2 ** 31)]);
  assert.deepEqual([...g.download(t)], [1, -2, 2 ** 31 - 1, -(2 ** 31)]);
});

test('bad calls are refused by name before reaching the device; a view beyond the binding limit fails with the limit named', { skip }, () => {
  const g = gpu!;
  const a = g.alloc([4, 4]);
  assert.throws(() => g.matmul(a, a, g.alloc([5, 4]), false, false), /matmul: inner dimensions differ/);
  assert.throws(() => g.alloc([2], 'bf16'), /alloc: bf16 is not available on the webgpu backend \(WGSL has f16, not bf16\)/);
  assert.throws(() => g.upload(a, [1, 2]), /data has 2 elements/);
  const stats = g.alloc([2], 'f64');
  assert.throws(() => g.sumSquares(a, stats, 2), /index 2 is outside out/);
  const big = g.alloc([g.device.maxStorageBufferBindingSize / 4 + 1]);
  g.scale(big, 2);
  assert.throws(() => g.synchronize(), /exceeds this device's maxStorageBufferBindingSize of \d+ bytes/);
  g.free(big);
  g.synchronize(); // the error was reported once
});

test('without a Vulkan driver the backend says what to install', () => {
  const module = new URL('../src/backend/webgpu/index.js', import.meta.url).href;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', `import { WebGpuBackend } from ${JSON.stringify(module)}; try { new WebGpuBackend(); console.log('opened'); } catch (e) { console.log(e.message); process.exitCode = 3; }`], {
    encoding: 'utf8',
    env: { ...process.env, VK_DRIVER_FILES: '/nonexistent/icd.json', VK_ICD_FILENAMES: '/nonexistent/icd.json', XDG_RUNTIME_DIR: tmpdir() },
    timeout: 60_000,
  });
  assert.equal(r.status, 3, r.stdout + r.stderr);
  assert.match(r.stdout, /no WebGPU adapter: .*install .*libvulkan1.*lavapipe/);
});

test('a lost device (as a driver reset) fails the next synchronous call with the reason and how to continue', { skip }, () => {
  const g = new WebGpuBackend();
  const t = g.alloc([8]);
  g.upload(t, [1, 2, 3, 4, 5, 6, 7, 8]);
  assert.equal(g.download(t)[7], 8);
  g.loseDeviceForTesting();
  g.scale(t, 2); // recorded on a lost device: no error yet
  assert.throws(() => g.download(t), /webgpu: the WebGPU device was lost \(destroyed.*\); the run's last checkpoint is intact: resume it with adabatch train --resume RUN_DIR/);
  assert.throws(() => g.synchronize(), /device was lost/);
  g.dispose();
});
