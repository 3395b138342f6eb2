/**
 * The optimizer kernels besides AdamW (Backend.adagrad, lambDirection, muonMomentum) on the cpu
 * backend (1 and 2 threads) and the webgpu backend (lavapipe unless ADABATCH_TEST_GPU=1) against the
 * ref oracle: several steps on awkward sizes (not multiples of the vector width, the partition size
 * or the workgroup), through views at non-zero offsets, with gradients that include zeros and tiny
 * values; and bad arguments refused before memory is touched.
 */
import { strict as assert } from 'node:assert';
import { test } from 'node:test';
import type { Backend, Tensor } from '../src/backend/backend.js';
import { createBackend } from '../src/backend/registry.js';
import { RefBackend } from '../src/backend/ref/index.js';
import { randn, relL2 } from './helpers/num.js';
import { openTestDevice } from './helpers/webgpu-device.js';

const SIZES = [1, 7, 1537, 70001];
const OFFSET = 5;
const STEPS = 4;

/** A view of n elements at OFFSET inside its own allocation (the bytes before it must stay put). */
function place(be: Backend, data: Float32Array): Tensor {
  const t = be.alloc([data.length + OFFSET + 3]);
  be.fill(t, 7);
  const v = be.view(t, OFFSET, [data.length]);
  be.upload(v, data);
  return v;
}

/** Gradients of one step: N(0, scale²) with an exact zero and a tiny value. */
function gradient(n: number, step: number): Float32Array {
  const g = Float32Array.from(randn(n, 100 + step, step === 2 ? 1e-3 : 1));
  g[0] = 0;
  if (n > 1) g[n - 1] = 1e-30;
  return g;
}

type Kernel = (be: Backend, n: number) => Float32Array[];

const KERNELS: Record<string, Kernel> = {
  adagrad(be, n) {
    const param = place(be, Float32Array.from(randn(n, 1)));
    const sum = place(be, new Float32Array(n).fill(0.1));
    for (let step = 1; step <= STEPS; step++) be.adagrad(param, place(be, gradient(n, step)), sum, { lr: 1e-2 / (1 + 0.1 * (step - 1)), eps: 1e-10, weightDecay: 0.01 });
    return [param, sum].map((t) => be.download(t) as Float32Array);
  },
  lambDirection(be, n) {
    const param = place(be, Float32Array.from(randn(n, 2)));
    const m = place(be, new Float32Array(n));
    const v = place(be, new Float32Array(n));
    const out: Float32Array[] = [];
    for (let step = 1; step <= STEPS; step++) {
      const g = place(be, gradient(n, step));
      be.lambDirection(param, g, m, v, { beta1: 0.9, beta2: 0.999, eps: 1e-6, weightDecay: 0.01, step });
      out.push(be.download(g) as Float32Array);
    }
    return [...out, ...[m, v].map((t) => be.download(t) as Float32Array)];
  },
  muonMomentum(be, n) {
    const buf = place(be, new Float32Array(n));
    const out: Float32Array[] = [];
    for (let step = 1; step <= STEPS; step++) {
      const g = place(be, gradient(n, step));
      be.muonMomentum(g, buf, { beta: 0.95, nesterov: step % 2 === 1 });
      out.push(be.download(g) as Float32Array);
    }
    return [...out, be.download(buf) as Float32Array];
  },
};

function expectParity(be: Backend, label: string, tolerance: number): void {
  const ref = new RefBackend();
  for (const [name, run] of Object.entries(KERNELS)) {
    for (const n of SIZES) {
      const want = run(ref, n);
      const got = run(be, n);
      got.forEach((g, i) => {
        const e = relL2(g, want[i]!);
        assert.ok(e <= tolerance, `${label} ${name} n=${n} output ${i}: rel L2 ${e.toExponential(2)}`);
      });
    }
  }
}

for (const threads of [1, 2]) {
  test(`cpu optimizer kernels equal ref on awkward sizes over ${STEPS} steps (${threads} thread${threads > 1 ? 's' : ''})`, () => {
    expectParity(createBackend('cpu', { threads }), 'cpu', 1e-6);
  });
}

const { gpu, skip } = openTestDevice();

test(`webgpu optimizer kernels equal ref on awkward sizes over ${STEPS} steps`, { skip }, () => {
  expectParity(gpu!, 'webgpu', 1e-6);
});

test('the optimizer kernels refuse bad arguments naming them (ref, cpu and webgpu)', () => {
  for (const be of [new RefBackend(), createBackend('cpu'), ...(gpu ? [gpu] : [])]) {
    const a = be.alloc([8]);
    const b = be.alloc([8]);
    const c = be.alloc([8]);
    const short = be.alloc([7]);
    assert.throws(() => be.adagrad(a, b, short, { lr: 1, eps: 1e-10, weightDecay: 0 }), /adagrad: .*same number of elements/, be.name);
    assert.throws(() => be.adagrad(a, b, c, { lr: NaN, eps: 1e-10, weightDecay: 0 }), /adagrad: lr must be a finite number/, be.name);
    assert.throws(() => be.adagrad(a, b, c, { lr: 1, eps: 0, weightDecay: 0 }), /adagrad: eps must be positive/, be.name);
    assert.throws(() => be.lambDirection(a, b, c, be.alloc([8]), { beta1: 1, beta2: 0.9, eps: 1e-6, weightDecay: 0, step: 1 }), /lambDirection: beta1 must be in \[0, 1\)/, be.name);
    assert.throws(() => be.lambDirection(a, b, c, be.alloc([8]), { beta1: 0.9, beta2: 0.9, eps: 1e-6, weightDecay: 0, step: 0 }), /lambDirection: step/, be.name);
    assert.throws(() => be.muonMomentum(a, short, { beta: 0.95, nesterov: true }), /muonMomentum: .*same number of elements/, be.name);
    assert.throws(() => be.muonMomentum(a, b, { beta: -0.1, nesterov: true }), /muonMomentum: beta must be in \[0, 1\)/, be.name);
    assert.throws(() => be.muonMomentum(a, b, { beta: 0.5, nesterov: 1 as unknown as boolean }), /muonMomentum: nesterov must be a boolean/, be.name);
  }
  // Overlapping windows of one allocation: the cpu kernels refuse (each reads and writes in one pass).
  const cpu = createBackend('cpu');
  const big = cpu.alloc([16]);
  assert.throws(() => cpu.muonMomentum(cpu.view(big, 0, [8]), cpu.view(big, 4, [8]), { beta: 0.9, nesterov: true }), /muonMomentum: grad must not overlap buf/);
  assert.throws(() => cpu.adagrad(cpu.view(big, 0, [8]), cpu.alloc([8]), cpu.view(big, 7, [8]), { lr: 1, eps: 1e-10, weightDecay: 0 }), /adagrad: param must not overlap sum/);
  if (gpu) {
    const shared = gpu.alloc([16]);
    assert.throws(() => gpu.muonMomentum(gpu.view(shared, 0, [8]), gpu.view(shared, 8, [8]), { beta: 0.9, nesterov: true }), /muonMomentum: grad and buf must be distinct allocations/);
  }
});
