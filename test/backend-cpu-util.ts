/**
 * Helpers of the cpu backend tests: the same host data on `cpu` and on `ref` (the oracle), and the
 * comparison of their results. Not a test file itself.
 */
import { strict as assert } from 'node:assert';
import type { Backend, DType, Tensor } from '../src/backend/backend.js';
import { CpuBackend } from '../src/backend/cpu/index.js';
import { RefBackend } from '../src/backend/ref/index.js';
import { randn, relL2 } from './helpers/num.js';

export const ref = new RefBackend();

const cpuByThreads = new Map<number, CpuBackend>();
/** A shared cpu backend with `threads` kernel threads. */
export function cpuBackend(threads = 1): CpuBackend {
  let b = cpuByThreads.get(threads);
  if (!b) {
    b = new CpuBackend({ threads });
    cpuByThreads.set(threads, b);
  }
  return b;
}

/** A tensor on each backend with identical contents. */
export interface Pair {
  cpu: Tensor;
  ref: Tensor;
}

export function put(cpu: Backend, data: ArrayLike<number>, shape: number[], dtype: DType = 'f32'): Pair {
  const c = cpu.alloc(shape, dtype);
  const r = ref.alloc(shape, dtype);
  cpu.upload(c, data);
  ref.upload(r, data);
  return { cpu: c, ref: r };
}

/** Random normal data as float32 values. */
export function rand(n: number, seed: number, scale = 1): Float32Array {
  return Float32Array.from(randn(n, seed, scale));
}

export function zeros(cpu: Backend, shape: number[], dtype: DType = 'f32'): Pair {
  return { cpu: cpu.alloc(shape, dtype), ref: ref.alloc(shape, dtype) };
}

/**
 * A view `offset` elements into a larger allocation (padding filled with a sentinel), holding `data`:
 * exercises non-zero offsets; `sentinel` lets a test check the padding was never written.
 */
export function putView(cpu: Backend, data: ArrayLike<number>, shape: number[], offset: number, tail = 5, sentinel = SENTINEL): Pair & { base: Pair } {
  const size = data.length;
  const full = new Float32Array(offset + size + tail).fill(sentinel);
  full.set(Array.from(data), offset);
  const base = put(cpu, full, [full.length]);
  return { cpu: cpu.view(base.cpu, offset, shape), ref: ref.view(base.ref, offset, shape), base };
}

export const SENTINEL = 7.5;

/** Asserts that nothing outside the view of `p` was written in its cpu allocation. */
export function expectPaddingIntact(cpu: Backend, p: Pair & { base: Pair }, what: string): void {
  const all = down(cpu, p.base.cpu);
  const start = p.cpu.offset - p.base.cpu.offset;
  for (let i = 0; i < all.length; i++) {
    if (i >= start && i < start + p.cpu.size) continue;
    assert.equal(all[i], SENTINEL, `${what}: element ${i} outside the view was written`);
  }
}

export function down(b: Backend, t: Tensor): Float64Array {
  return Float64Array.from(b.download(t));
}

/** Asserts rel L2(cpu, ref) < tol for the pair. */
export function expectClose(cpu: Backend, p: Pair, tol: number, what: string): number {
  const a = down(cpu, p.cpu);
  const e = down(ref, p.ref);
  for (let i = 0; i < a.length; i++) assert.ok(Number.isFinite(a[i]!), `${what}: element ${i} is ${a[i]}`);
  const err = relL2(a, e);
  assert.ok(err < tol, `${what}: rel L2 ${err.toExponential(2)} ≥ ${tol}`);
  return err;
}

/** The whole allocation behind a view pair, as host arrays (cpu, ref). */
export function whole(cpu: Backend, base: Pair): [Float64Array, Float64Array] {
  return [down(cpu, base.cpu), down(ref, base.ref)];
}
