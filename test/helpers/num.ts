/** Numerical helpers shared by the tests. */
import { Rng } from '../../src/util/rng.js';

export function relL2(actual: ArrayLike<number>, expected: ArrayLike<number>): number {
  if (actual.length !== expected.length) throw new Error(`length mismatch: ${actual.length} vs ${expected.length}`);
  let num = 0;
  let den = 0;
  for (let i = 0; i < actual.length; i++) {
    const d = actual[i]! - expected[i]!;
    num += d * d;
    den += expected[i]! * expected[i]!;
  }
  if (den === 0) return Math.sqrt(num);
  return Math.sqrt(num / den);
}

export function randn(n: number, seed: number, scale = 1): Float64Array {
  const rng = new Rng(seed);
  const a = new Float64Array(n);
  for (let i = 0; i < n; i++) a[i] = rng.normal() * scale;
  return a;
}

export function randInts(n: number, max: number, seed: number): Int32Array {
  const rng = new Rng(seed);
  const a = new Int32Array(n);
  for (let i = 0; i < n; i++) a[i] = rng.int(max);
  return a;
}

export function dotArr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i]! * b[i]!;
  return s;
}

/**
 * Central finite differences of a scalar function with respect to `x` at `coords` (all coordinates
 * when omitted). `f` reads x (which is perturbed in place and restored).
 */
export function finiteDiff(f: () => number, x: Float64Array, coords?: number[], h = 1e-5): Float64Array {
  const idx = coords ?? Array.from({ length: x.length }, (_, i) => i);
  const out = new Float64Array(idx.length);
  idx.forEach((i, k) => {
    const x0 = x[i]!;
    x[i] = x0 + h;
    const fp = f();
    x[i] = x0 - h;
    const fm = f();
    x[i] = x0;
    out[k] = (fp - fm) / (2 * h);
  });
  return out;
}

/** A deterministic sample of `count` distinct coordinates out of n (all when n ≤ count). */
export function sampleCoords(n: number, count: number, seed: number): number[] {
  if (n <= count) return Array.from({ length: n }, (_, i) => i);
  const rng = new Rng(seed);
  const set = new Set<number>();
  while (set.size < count) set.add(rng.int(n));
  return [...set].sort((a, b) => a - b);
}
