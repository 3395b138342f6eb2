/** The coordinate-wise norm test's statistic: exact and histogram versions, safeguards. */
import { strict as assert } from 'node:assert';
import { test } from 'node:test';
import { CoordinateHistogram, HISTOGRAM_BINS, coordinateNormStat, coordinateRatios, coordinateThreshold, coordinateVariances } from '../src/batch/coordinate.js';
import { Rng } from '../src/util/rng.js';

const f64 = (xs: number[]): Float64Array => Float64Array.from(xs);

test('per-coordinate variance and ratio, hand-computed', () => {
  // J·M = 2 micro-steps of m = 4: coordinate 0 has g = 3 and 1 → S = 10, ḡ = 2,
  // v = 4·(10 − 2·4)/1 = 8, r = 8/4 = 2. Coordinate 1: g = 1, 1 → v = 0, r = 0.
  // Coordinate 2: g = 0, 0 (an embedding row absent from the batch) → skipped, not 0/0.
  const sq = f64([10, 2, 0]);
  const mean = f64([2, 1, 0]);
  const counts = { samples: 2, microBatch: 4 };
  assert.deepEqual([...coordinateVariances(sq, mean, counts)], [8, 0, 0]);
  assert.deepEqual([...coordinateRatios(sq, mean, counts, 0)], [2, 0]);
  assert.equal(coordinateNormStat(sq, mean, counts, { quantile: 1, minAbsMean: 0 }), 2);
  assert.equal(coordinateNormStat(sq, mean, counts, { quantile: 0.5, minAbsMean: 0 }), 0);
  // Threshold |ḡ_i| > 1.5 keeps coordinate 0 only; > 5 keeps none → null (no statistic, not 0).
  assert.deepEqual([...coordinateRatios(sq, mean, counts, 1.5)], [2]);
  assert.equal(coordinateNormStat(sq, mean, counts, { quantile: 0.9, minAbsMean: 5 }), null);
});

test('nearest-rank quantile of the kept ratios', () => {
  // Ratios 1..10: with S_i = n·ḡ² + (n−1)/m·r·ḡ², ḡ = 1, n = 2, m = 1 → r = S − 2.
  const r = Array.from({ length: 10 }, (_, i) => i + 1);
  const sq = f64(r.map((x) => x + 2));
  const mean = f64(r.map(() => 1));
  const counts = { samples: 2, microBatch: 1 };
  const q = (p: number): number | null => coordinateNormStat(sq, mean, counts, { quantile: p, minAbsMean: 0 });
  assert.deepEqual([q(0.1), q(0.5), q(0.9), q(0.95), q(1)], [1, 5, 9, 10, 10]);
  assert.throws(() => q(0), /quantile/);
  assert.throws(() => coordinateNormStat(sq, mean, { samples: 1, microBatch: 1 }, { quantile: 0.5, minAbsMean: 0 }), /J·M ≥ 2/);
});

test('the safeguards matter: the max over many noisy ratios is far above a high quantile', () => {
  // 20,000 coordinates with ḡ_i ~ N(0,1): near-zero ḡ_i make a few ratios enormous.
  const rng = new Rng(3);
  const d = 20000;
  const n = 8;
  const mean = new Float64Array(d);
  const sq = new Float64Array(d);
  for (let i = 0; i < d; i++) {
    mean[i] = rng.normal();
    sq[i] = n * mean[i]! ** 2 + (n - 1) * (1 + rng.uniform()); // per-micro-step variance in [1, 2)
  }
  const counts = { samples: n, microBatch: 1 };
  const max = coordinateNormStat(sq, mean, counts, { quantile: 1, minAbsMean: 0 })!;
  const q95 = coordinateNormStat(sq, mean, counts, { quantile: 0.95, minAbsMean: 0 })!;
  const q95thr = coordinateNormStat(sq, mean, counts, { quantile: 0.95, minAbsMean: 0.1 })!;
  assert.ok(max > 1000 * q95, `max ${max} vs q95 ${q95}`);
  assert.ok(q95thr <= q95, 'dropping small |ḡ_i| lowers the quantile');
  // The threshold helper: τ·RMS(ḡ).
  assert.equal(coordinateThreshold(0.5, 400, 100), 1);
});

test('histogram quantile agrees with the exact one to within the bin width, blockwise and merged', () => {
  const rng = new Rng(17);
  const d = 50000;
  const n = 6;
  const m = 3;
  const mean = new Float64Array(d);
  const sq = new Float64Array(d);
  for (let i = 0; i < d; i++) {
    mean[i] = i % 97 === 0 ? 0 : rng.normal() * Math.exp(2 * rng.normal()); // wide dynamic range, some zeros
    const v = Math.exp(3 * rng.normal());
    sq[i] = n * mean[i]! ** 2 + ((n - 1) / m) * v * (rng.uniform() < 0.02 ? 0 : 1);
  }
  const counts = { samples: n, microBatch: m };
  const thr = coordinateThreshold(0.05, mean.reduce((s, x) => s + x * x, 0), d);
  const whole = new CoordinateHistogram(counts, thr);
  whole.add(sq, mean);
  // Block by block (as the trainer walks its flat parameter blocks) …
  const blocks = new CoordinateHistogram(counts, thr);
  for (let s = 0; s < d; s += 7000) blocks.add(sq.subarray(s, s + 7000), mean.subarray(s, s + 7000));
  // … and shard by shard with the counts summed (as after an all-reduce).
  const a = new CoordinateHistogram(counts, thr);
  a.add(sq.subarray(0, 20000), mean.subarray(0, 20000));
  const b = new CoordinateHistogram(counts, thr);
  b.add(sq.subarray(20000), mean.subarray(20000));
  a.merge(b.counts);
  assert.deepEqual(blocks.counts, whole.counts);
  assert.deepEqual(a.counts, whole.counts);
  assert.equal(whole.counts.length, HISTOGRAM_BINS);
  assert.equal(whole.total(), coordinateRatios(sq, mean, counts, thr).length);
  for (const q of [0.01, 0.5, 0.9, 0.95, 0.99, 1]) {
    const exact = coordinateNormStat(sq, mean, counts, { quantile: q, minAbsMean: thr })!;
    const approx = whole.quantile(q)!;
    if (exact === 0) assert.equal(approx, 0);
    else assert.ok(Math.abs(approx - exact) / exact <= 1 / 32 + 1e-12, `q=${q}: histogram ${approx} vs exact ${exact}`);
  }
  assert.equal(new CoordinateHistogram(counts, 1e300).quantile(0.5), null);
});
