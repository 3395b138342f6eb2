/**
 * Decisions of every schedule on hand-computed statistics, the estimators' scalar identities against
 * direct vector computations, validate() refusals, and state()/restore() continuity.
 */
import { strict as assert } from 'node:assert';
import { test } from 'node:test';
import { CoordinateNormSchedule, InnerProductSchedule, NoiseScaleSchedule, NormTestSchedule, type AdaptiveOptions } from '../src/batch/adaptive.js';
import { createSchedule, type BatchConfigInput } from '../src/batch/config.js';
import { innerProductVariance, orthogonalVariance, paperVariance, traceSigmaMicrobatch, traceSigmaPerSample, twoBatchEstimate } from '../src/batch/estimators.js';
import { lrScale } from '../src/batch/lr.js';
import { NoiseScaleTracker } from '../src/batch/noise-scale.js';
import { LinearRampSchedule, StagewiseSchedule } from '../src/batch/stagewise.js';
import type { BatchSchedule, GradientStats, ScheduleDecision } from '../src/batch/types.js';
import { Rng } from '../src/util/rng.js';

const close = (a: number, b: number, tol = 1e-12): boolean => Math.abs(a - b) <= tol * Math.max(1, Math.abs(b));

function assertClose(actual: number | null, expected: number, what: string, tol = 1e-12): void {
  assert.ok(actual !== null && close(actual, expected, tol), `${what}: got ${actual}, expected ${expected}`);
}

const dot = (a: readonly number[], b: readonly number[]): number => a.reduce((s, x, i) => s + x * b[i]!, 0);
const sub = (a: readonly number[], b: readonly number[]): number[] => a.map((x, i) => x - b[i]!);
const scale = (a: readonly number[], c: number): number[] => a.map((x) => x * c);
const add = (a: readonly number[], b: readonly number[]): number[] => a.map((x, i) => x + b[i]!);
const mean = (vs: readonly (readonly number[])[]): number[] => scale(vs.reduce((s, v) => add(s, v)), 1 / vs.length);

/** Reduces explicit micro-step gradients g[j][t] (each a mean of m sequences) to GradientStats, as the trainer would. */
function statsFrom(g: number[][][], m: number): GradientStats {
  const J = g.length;
  const M = g[0]!.length;
  const gj = g.map((ts) => mean(ts));
  const gbar = mean(gj);
  const dots = gj.map((v) => dot(v, gbar));
  return {
    plan: { globalBatch: J * M * m, microBatch: m, accumSteps: M, ranks: J },
    microSqNormSum: g.flat().reduce((s, v) => s + dot(v, v), 0),
    localSqNormSum: gj.reduce((s, v) => s + dot(v, v), 0),
    globalSqNorm: dot(gbar, gbar),
    dotSum: dots.reduce((s, x) => s + x, 0),
    dotSqSum: dots.reduce((s, x) => s + x * x, 0),
    collected: null,
  };
}

/** Stats with given scalars (fields the test does not use set to null). */
function stats(J: number, M: number, m: number, s: Partial<Omit<GradientStats, 'plan'>>): GradientStats {
  return {
    plan: { globalBatch: J * M * m, microBatch: m, accumSteps: M, ranks: J },
    microSqNormSum: 0,
    localSqNormSum: null,
    globalSqNorm: 1,
    dotSum: null,
    dotSqSum: null,
    collected: null,
    ...s,
  };
}

const opts = (o: Partial<AdaptiveOptions> = {}): AdaptiveOptions => ({ initial: 16, max: 1024, testInterval: 1, startAfterSamples: 0, ema: null, hysteresis: 0, ...o });

function randGrads(rng: Rng, J: number, M: number, d: number): number[][][] {
  return Array.from({ length: J }, () => Array.from({ length: M }, () => Array.from({ length: d }, () => 1 + rng.normal())));
}

// ------------------------------------------------------------------------------------------------
// Estimators: the scalar identities against direct vector computations

test('estimators equal their definitions computed from the vectors', () => {
  const rng = new Rng(11);
  for (const [J, M, m, d] of [
    [2, 3, 4, 5],
    [4, 1, 2, 7],
    [3, 2, 5, 3],
  ] as const) {
    const g = randGrads(rng, J, M, d);
    const s = statsFrom(g, m);
    const b = J * M * m;
    const gj = g.map((ts) => mean(ts));
    const gbar = mean(gj);
    const microDev = g.flat().reduce((acc, v) => acc + dot(sub(v, gbar), sub(v, gbar)), 0);
    const rankDev = gj.reduce((acc, v) => acc + dot(sub(v, gbar), sub(v, gbar)), 0);
    assertClose(traceSigmaMicrobatch(s), (m / (J * M - 1)) * microDev, 'microbatch', 1e-10);
    assertClose(traceSigmaPerSample(s), (b / J / (J - 1)) * rankDev, 'per-sample', 1e-10);
    assertClose(paperVariance(s), rankDev / J, 'paper V', 1e-10);
    const dots = gj.map((v) => dot(v, gbar));
    const dotMean = dots.reduce((a, x) => a + x, 0) / J;
    const varS = dots.reduce((a, x) => a + (x - dotMean) ** 2, 0) / (J - 1);
    assertClose(innerProductVariance(s), varS * (b / J), 'inner product', 1e-9);
    const g2 = dot(gbar, gbar);
    const orth = gj.reduce((a, v) => {
      const r = sub(v, scale(gbar, dot(v, gbar) / g2));
      return a + dot(r, r);
    }, 0);
    assertClose(orthogonalVariance(s), (orth * (b / J)) / (J - 1), 'orthogonality', 1e-9);
    // Two-batch estimates: B_small = m, B_big = b; ‖G‖² = (B_big‖g_big‖² − B_small‖g_small‖²)/(B_big − B_small).
    const gSmall2 = g.flat().reduce((a, v) => a + dot(v, v), 0) / (J * M);
    const two = twoBatchEstimate(s)!;
    assertClose(two.traceSigma, (gSmall2 - g2) / (1 / m - 1 / b), 'two-batch tr Σ', 1e-9);
    assertClose(two.gradSqNorm, (b * g2 - m * gSmall2) / (b - m), 'two-batch ‖G‖²', 1e-9);
    assertClose(two.gradSqNorm, g2 - traceSigmaMicrobatch(s) / b, '‖G‖² = ‖ḡ‖² − tr Σ̂/b', 1e-9);
  }
});

test('estimators refuse what they cannot compute, and clamp rounding below zero', () => {
  assert.throws(() => traceSigmaMicrobatch(stats(1, 1, 8, { microSqNormSum: 1 })), /J·M ≥ 2/);
  assert.throws(() => traceSigmaPerSample(stats(1, 4, 8, { localSqNormSum: 1 })), /J ≥ 2/);
  assert.throws(() => traceSigmaPerSample(stats(2, 4, 8, {})), /localSqNormSum/);
  assert.throws(() => innerProductVariance(stats(2, 1, 8, { dotSqSum: 1 })), /dotSum/);
  // Σ‖g_{j,t}‖² − JM‖ḡ‖² slightly negative from rounding: clamped to 0, not a negative variance.
  assert.equal(traceSigmaMicrobatch(stats(2, 2, 4, { microSqNormSum: 4 - 1e-15, globalSqNorm: 1 })), 0);
  assert.equal(twoBatchEstimate(stats(1, 1, 8, { microSqNormSum: 1 })), null);
  assert.equal(twoBatchEstimate(stats(4, 1, 8, { microSqNormSum: 1 }), 'rank'), null, 'rank source without Σ‖g_j‖²');
});

// ------------------------------------------------------------------------------------------------
// The norm test on hand-computed statistics

test('norm test (microbatch): grows to exactly ⌈tr Σ̂/(η²‖ḡ‖²)⌉', () => {
  // J=2, M=2, m=4 (b=16): Σ‖g_{j,t}‖² = 10, ‖ḡ‖² = 1 → Σ‖g_{j,t}−ḡ‖² = 10 − 4 = 6,
  // tr Σ̂ = 4·6/3 = 8; η = 0.3: T = 8/0.09 = 88.88… > 16 → next ⌈88.89⌉ = 89.
  const s = new NormTestSchedule(opts(), 0.3, 'microbatch');
  const d = s.observe(stats(2, 2, 4, { microSqNormSum: 10, globalSqNorm: 1 }), 16);
  assertClose(d.gradVar, 8, 'tr Σ̂');
  assertClose(d.testStat, 8 / 0.09, 'T', 1e-12);
  assert.equal(d.testPassed, false);
  assert.equal(d.nextBatch, 89);
  assert.equal(s.targetBatch(16), 89);
  // Same stats at b = 96 (J=2, M=2, m=24): tr Σ̂ = 24·6/3 = 48, T = 533.3 > 96 → 534.
  const d2 = s.observe(stats(2, 2, 24, { microSqNormSum: 10, globalSqNorm: 1 }), 112);
  assert.equal(d2.nextBatch, 534);
});

test('norm test (per-sample): tr Σ̂ = (b/J)/(J−1)·Σ‖g_j−ḡ‖²', () => {
  // J=4, M=1, m=4 (b=16): Σ‖g_j‖² = 7, ‖ḡ‖² = 1 → 3; tr Σ̂ = 4·3/3 = 4; η = 0.25 → T = 64 → 64.
  const s = new NormTestSchedule(opts(), 0.25, 'per-sample');
  const d = s.observe(stats(4, 1, 4, { localSqNormSum: 7, globalSqNorm: 1 }), 16);
  assertClose(d.gradVar, 4, 'tr Σ̂');
  assertClose(d.testStat, 64, 'T');
  assert.equal(d.testPassed, false);
  assert.equal(d.nextBatch, 64);
});

test('norm test (paper): T = V/(η²‖ḡ‖²), V = (1/J)Σ‖g_j−ḡ‖²', () => {
  // J=4, b=16: V = 3/4. η = 0.25 → T = 12 ≤ 16: passes. η = 0.2 → T = 18.75 > 16 → 19.
  const pass = new NormTestSchedule(opts(), 0.25, 'paper');
  const d1 = pass.observe(stats(4, 1, 4, { localSqNormSum: 7, globalSqNorm: 1 }), 16);
  assertClose(d1.testStat, 12, 'T');
  assertClose(d1.gradVar, 0.75, 'V');
  assert.equal(d1.testPassed, true);
  assert.equal(d1.nextBatch, 16);
  const fail = new NormTestSchedule(opts(), 0.2, 'paper');
  const d2 = fail.observe(stats(4, 1, 4, { localSqNormSum: 7, globalSqNorm: 1 }), 16);
  assertClose(d2.testStat, 18.75, 'T');
  assert.equal(d2.nextBatch, 19);
});

test('norm test: never decreases, capped at max, no testing once at max', () => {
  const s = new NormTestSchedule(opts({ max: 100 }), 0.5, 'microbatch');
  // T = 4·(10−4)/3 / 0.25 = 32 → 32
  assert.equal(s.observe(stats(2, 2, 4, { microSqNormSum: 10 }), 16).nextBatch, 32);
  // A tiny T afterwards: passes, batch stays 32 (never decreases).
  const small = s.observe(stats(2, 2, 8, { microSqNormSum: 4.01 }), 48);
  assert.equal(small.testPassed, true);
  assert.equal(small.nextBatch, 32);
  // Huge T: capped at max = 100.
  const big = s.observe(stats(2, 2, 8, { microSqNormSum: 1000 }), 80);
  assert.equal(big.testPassed, false);
  assert.equal(big.nextBatch, 100);
  // At max: no test any more, even with a failing statistic.
  const after = s.observe(stats(2, 2, 25, { microSqNormSum: 1000 }), 180);
  assert.deepEqual([after.testStat, after.testPassed, after.nextBatch], [null, null, 100]);
  assert.match(after.note ?? '', /max/);
  assert.equal((s.state() as { tests: number }).tests, 3);
});

test('norm test: zero gradient with noise grows to max; all-zero gradients pass', () => {
  const s = new NormTestSchedule(opts({ max: 512 }), 0.5);
  const d = s.observe(stats(2, 2, 4, { microSqNormSum: 1, globalSqNorm: 0 }), 16);
  assert.equal(d.testStat, Infinity);
  assert.equal(d.nextBatch, 512);
  const z = new NormTestSchedule(opts(), 0.5);
  const dz = z.observe(stats(2, 2, 4, { microSqNormSum: 0, globalSqNorm: 0 }), 16);
  assert.equal(dz.testStat, 0);
  assert.equal(dz.testPassed, true);
});

test('norm test: non-finite statistics are ignored (no test, no EMA update)', () => {
  const s = new NormTestSchedule(opts({ ema: { beta: 0.5 } }), 0.5);
  const d = s.observe(stats(2, 2, 4, { microSqNormSum: NaN }), 16);
  assert.deepEqual([d.testStat, d.testPassed, d.nextBatch], [null, null, 16]);
  assert.match(d.note ?? '', /non-finite/);
  assert.equal((s.state() as { ema: { count: number } }).ema.count, 0);
});

test('test interval: a test runs on every k-th eligible step only', () => {
  const s = new NormTestSchedule(opts({ testInterval: 3 }), 0.5);
  const tested: boolean[] = [];
  for (let k = 1; k <= 7; k++) tested.push(s.observe(stats(2, 2, 4, { microSqNormSum: 4.5 }), 16 * k).testStat !== null);
  assert.deepEqual(tested, [false, false, true, false, false, true, false]);
});

test('start_after_samples: no test on a step that began before it', () => {
  const s = new NormTestSchedule(opts({ startAfterSamples: 40 }), 0.5);
  // Steps of 16 samples: [0,16), [16,32), [32,48) began before 40; [48,64) is the first eligible.
  const r = [16, 32, 48, 64].map((seen) => s.observe(stats(2, 2, 4, { microSqNormSum: 10 }), seen));
  assert.deepEqual(
    r.map((d) => d.testStat !== null),
    [false, false, false, true],
  );
  assert.match(r[0]!.note ?? '', /start_after/);
  assert.equal(r[3]!.nextBatch, 32);
});

test('hysteresis: grows only when T > (1+h)·b', () => {
  // b = 16 and T = 20 = 1.25·b: with Σ‖g_{j,t}‖² = x, tr Σ̂ = 4(x−4)/3 and T = tr Σ̂/0.25 = 20 → x = 7.75.
  const st = stats(2, 2, 4, { microSqNormSum: 7.75 });
  const loose = new NormTestSchedule(opts({ hysteresis: 0.3 }), 0.5);
  const dl = loose.observe(st, 16);
  assertClose(dl.testStat, 20, 'T');
  assert.equal(dl.testPassed, true, '20 ≤ 1.3·16 = 20.8');
  assert.equal(dl.nextBatch, 16);
  const tight = new NormTestSchedule(opts({ hysteresis: 0.2 }), 0.5);
  const dt = tight.observe(st, 16);
  assert.equal(dt.testPassed, false, '20 > 1.2·16 = 19.2');
  assert.equal(dt.nextBatch, 20, 'grows to ⌈T⌉, not ⌈T/(1+h)⌉');
});

test('EMA: numerator and denominator smoothed separately with bias correction', () => {
  // β = 0.5. Step 1: (n₁, d₁) → T₁ = n₁/(η²d₁). Step 2: â = (0.25·x₁ + 0.5·x₂)/0.75 = (x₁ + 2x₂)/3.
  const eta = 0.5;
  const s = new NormTestSchedule(opts({ ema: { beta: 0.5 }, max: 1 << 20 }), eta);
  // Step 1: tr Σ̂ = 4·(10 − 4·1)/3 = 8, ‖ḡ‖² = 1 → T = 32.
  const d1 = s.observe(stats(2, 2, 4, { microSqNormSum: 10, globalSqNorm: 1 }), 16);
  assertClose(d1.testStat, 32, 'T₁ (bias-corrected first value = raw)');
  // Step 2 (b = 32, m = 8): tr Σ̂ = 8·(20 − 4·4)/3 = 32/3, ‖ḡ‖² = 4.
  const d2 = s.observe(stats(2, 2, 8, { microSqNormSum: 20, globalSqNorm: 4 }), 48);
  const num = (8 + 2 * (32 / 3)) / 3;
  const den = (1 + 2 * 4) / 3;
  assertClose(d2.gradVar, num, 'smoothed tr Σ̂');
  assertClose(d2.testStat, num / (eta * eta * den), 'T₂ = EMA(num)/(η²·EMA(den))');
  // Not the EMA of the ratios T₁ = 32, T₂ = (32/3)/(0.25·4): that would be (32 + 2·10.67)/3 = 17.78, not 13.04.
  assert.ok(!close(d2.testStat!, (32 + 2 * (32 / 3 / (0.25 * 4))) / 3, 1e-3));
});

test('EMA with the paper estimator averages b·V (independent of b) and divides by the current b', () => {
  const s = new NormTestSchedule(opts({ ema: { beta: 0.5 }, max: 1 << 20 }), 0.5, 'paper');
  // Step 1: J=4, b=16, V = (7−4)/4 = 0.75 → b·V = 12. Step 2: b = 64, V = (5−4)/4 = 0.25 → b·V = 16.
  s.observe(stats(4, 1, 4, { localSqNormSum: 7, globalSqNorm: 1 }), 16);
  const d2 = s.observe(stats(4, 1, 16, { localSqNormSum: 5, globalSqNorm: 1 }), 80);
  const bV = (12 + 2 * 16) / 3;
  assertClose(d2.gradVar, bV / 64, 'smoothed V at b = 64');
  assertClose(d2.testStat, bV / 64 / 0.25, 'T');
});

// ------------------------------------------------------------------------------------------------
// The inner-product family

// g₁ = (1.5, 1), g₂ = (0.5, −1): ḡ = (1, 0), ‖ḡ‖² = 1, ⟨g_s,ḡ⟩ = 1.5, 0.5, Σ‖g_s‖² = 4.5; b = 16 (m_s = 8).
// Var_s(⟨g_s,ḡ⟩) = ((1.5−1)² + (0.5−1)²)/1 = 0.5 → numerator 0.5·8 = 4.
// Orthogonal residuals (0, 1), (0, −1): Σ = 2 → numerator 2·8/1 = 16.
const ipStats = statsFrom(
  [
    [[1.5, 1], [1.5, 1]],
    [[0.5, -1], [0.5, -1]],
  ],
  4,
);

test('inner-product test: T = Var_s(⟨g_s,ḡ⟩)·m_s/(θ²‖ḡ‖⁴)', () => {
  assert.equal(ipStats.plan.globalBatch, 16);
  const pass = new InnerProductSchedule(opts(), 'inner_product', 0.5, null).observe(ipStats, 16);
  assertClose(pass.gradVar, 4, 'Var·m_s');
  assertClose(pass.testStat, 16, 'T = 4/0.25');
  assert.equal(pass.testPassed, true, 'T = b passes');
  const fail = new InnerProductSchedule(opts(), 'inner_product', 0.4, null).observe(ipStats, 16);
  assertClose(fail.testStat, 25, 'T = 4/0.16');
  assert.equal(fail.nextBatch, 25);
});

test('orthogonality test: T = Σ‖g_s − proj‖²·m_s/((n−1)ν²‖ḡ‖²)', () => {
  const pass = new InnerProductSchedule(opts(), 'orthogonality', null, 2).observe(ipStats, 16);
  assertClose(pass.gradVar, 16, 'numerator');
  assertClose(pass.testStat, 4, 'T = 16/4');
  assert.equal(pass.testPassed, true);
  const fail = new InnerProductSchedule(opts(), 'orthogonality', null, 0.5).observe(ipStats, 16);
  assertClose(fail.testStat, 64, 'T = 16/0.25');
  assert.equal(fail.nextBatch, 64);
});

test('augmented inner-product test: the larger of the two', () => {
  const a = new InnerProductSchedule(opts(), 'augmented', 0.4, 0.5).observe(ipStats, 16);
  assertClose(a.testStat, 64, 'max(25, 64)');
  assertClose(a.gradVar, 16, 'numerator of the larger statistic');
  const b = new InnerProductSchedule(opts(), 'augmented', 0.4, 2).observe(ipStats, 16);
  assertClose(b.testStat, 25, 'max(25, 4)');
  assert.equal(b.nextBatch, 25);
});

// ------------------------------------------------------------------------------------------------
// Coordinate test and gns schedule

test('coordinate test: T = collected/η², and it needs the statistic', () => {
  const s = new CoordinateNormSchedule(opts(), 0.5, { quantile: 0.9, threshold: 0.1 });
  const d = s.observe(stats(2, 2, 4, { collected: 10 }), 16);
  assertClose(d.testStat, 40, 'T');
  assert.equal(d.nextBatch, 40);
  assert.throws(() => s.observe(stats(2, 2, 4, {}), 32), /collected/);
});

test('gns schedule: b = clamp(c·B_simple), compared with the current target', () => {
  // J=1, M=2, m=4, b=8; g₁ = (3,0), g₂ = (1,0): ḡ = (2,0); ‖g_small‖² = 5, ‖ḡ‖² = 4.
  // tr Σ = (5−4)/(1/4−1/8) = 8, ‖G‖² = (8·4 − 4·5)/4 = 3 → B_simple = 8/3.
  const st = statsFrom([[[3, 0], [1, 0]]], 4);
  const s = new NoiseScaleSchedule(opts({ initial: 8, ema: null }), 6);
  const d = s.observe(st, 8);
  assertClose(d.testStat, 16, 'c·B_simple = 6·8/3');
  assertClose(d.gradVar, 8, 'tr Σ');
  assert.equal(d.nextBatch, 16);
  // Below the current target: kept (never decreases).
  const d2 = new NoiseScaleSchedule(opts({ initial: 32, ema: null }), 6).observe(st, 8);
  assert.equal(d2.testPassed, true);
  assert.equal(d2.nextBatch, 32);
  // Capped.
  assert.equal(new NoiseScaleSchedule(opts({ initial: 8, max: 10, ema: null }), 6).observe(st, 8).nextBatch, 10);
  // ‖G‖² estimate ≤ 0: not estimable, no decision. g₁ = (1,0), g₂ = (−1,0): ḡ = 0.
  const noisy = new NoiseScaleSchedule(opts({ initial: 8, ema: null }), 6).observe(statsFrom([[[1, 0], [-1, 0]]], 4), 8);
  assert.deepEqual([noisy.testStat, noisy.testPassed, noisy.nextBatch], [null, null, 8]);
});

test('noise-scale tracker: null with one small batch, bias-corrected EMAs, ratio after smoothing', () => {
  const tr = new NoiseScaleTracker({ beta: 0.5, source: 'micro' });
  assert.equal(tr.observe(stats(1, 1, 8, { microSqNormSum: 3, globalSqNorm: 3 })), null);
  assert.deepEqual(tr.lastEstimate(), { bSimple: null, traceSigma: null, gradSqNorm: null, traceSigmaSmoothed: null, gradSqNormSmoothed: null });
  // Step A: tr Σ = 8, ‖G‖² = 3 (as in the gns test).
  assertClose(tr.observe(statsFrom([[[3, 0], [1, 0]]], 4)), 8 / 3, 'B_simple after one step');
  const a = tr.lastEstimate();
  assertClose(a.traceSigma, 8, 'tr Σ');
  assertClose(a.gradSqNorm, 3, '‖G‖²');
  // Step B: g = (5,0), (1,0), m = 2 (b = 4): ‖g_small‖² = 13, ‖ḡ‖² = 9; tr Σ = 4/(1/2−1/4) = 16, ‖G‖² = (36−26)/2 = 5.
  const trS = (8 + 2 * 16) / 3;
  const gS = (3 + 2 * 5) / 3;
  assertClose(tr.observe(statsFrom([[[5, 0], [1, 0]]], 2)), trS / gS, 'B_simple = EMA(tr Σ)/EMA(‖G‖²)');
  const b = tr.lastEstimate();
  assertClose(b.traceSigma, 16, 'tr Σ');
  assertClose(b.gradSqNorm, 5, '‖G‖²');
  assertClose(b.traceSigmaSmoothed, trS, 'smoothed tr Σ');
  assertClose(b.gradSqNormSmoothed, gS, 'smoothed ‖G‖²');
  // Steps that cannot be used leave the smoothed values as they were: one small batch, NaN, and a
  // shortened step whose b ≠ J·M·m.
  assertClose(tr.observe(stats(1, 1, 8, { microSqNormSum: 3, globalSqNorm: 3 })), trS / gS, 'unchanged (one small batch)');
  assert.equal(tr.lastEstimate().traceSigma, null);
  assertClose(tr.observe(stats(2, 2, 4, { microSqNormSum: NaN })), trS / gS, 'unchanged (NaN)');
  const uneven = statsFrom([[[9, 0], [1, 0]]], 4);
  uneven.plan.globalBatch = 7;
  assertClose(tr.observe(uneven), trS / gS, 'unchanged (shortened step)');
});

// ------------------------------------------------------------------------------------------------
// Baselines

test('stagewise: sizes over fractions of the sample budget (paper 2048→4096→8192 over 2.5/2.5/95%)', () => {
  const s = new StagewiseSchedule(
    [
      { batch: 2048, fraction: 0.025 },
      { batch: 4096, fraction: 0.025 },
      { batch: 8192, fraction: 0.95 },
    ],
    2_000_000,
  );
  assert.deepEqual(s.ends, [50_000, 100_000, 2_000_000]);
  assert.deepEqual(
    [0, 49_999, 50_000, 99_999, 100_000, 1_999_999, 2_000_000, 3_000_000].map((n) => s.targetBatch(n)),
    [2048, 2048, 4096, 4096, 8192, 8192, 8192, 8192],
  );
  assert.throws(() => new StagewiseSchedule([{ batch: 8, fraction: 0.5 }], 100), /sum to 1/);
  assert.throws(() => new StagewiseSchedule([{ batch: 8, fraction: 0.5 }, { batch: 4, fraction: 0.5 }], 100), /never decreases/);
});

test('linear ramp: Megatron-style start + increment every R/((max−start)/increment) samples', () => {
  // start 32, +32 up to 256: 7 increments over 7000 samples → one per 1000 samples.
  const s = new LinearRampSchedule(32, 32, 7000, 256);
  assert.deepEqual(
    [0, 999, 1000, 2500, 6999, 7000, 1e9].map((n) => s.targetBatch(n)),
    [32, 32, 64, 96, 224, 256, 256],
  );
  assert.throws(() => new LinearRampSchedule(32, 48, 7000, 256), /multiple of increment/);
  assert.equal(new LinearRampSchedule(64, 8, 0, 64).targetBatch(0), 64);
});

// ------------------------------------------------------------------------------------------------
// validate()

test('validate() refuses estimators and tests that cannot work in the layout', () => {
  const one = { ranks: 1, maxMicroBatch: 8, maxBatch: 1024 };
  const two = { ranks: 2, maxMicroBatch: 8, maxBatch: 1024 };
  new NormTestSchedule(opts(), 0.2, 'microbatch').validate(one); // works with one rank
  for (const est of ['per-sample', 'paper'] as const) {
    assert.throws(() => new NormTestSchedule(opts(), 0.2, est).validate(one), new RegExp(`'${est}'.*at least 2 data-parallel ranks.*microbatch`));
    new NormTestSchedule(opts(), 0.2, est).validate(two);
  }
  for (const kind of ['inner_product', 'orthogonality', 'augmented'] as const) {
    const s = new InnerProductSchedule(opts(), kind, 0.9, 5);
    assert.throws(() => s.validate(one), /at least 2 data-parallel ranks/);
    s.validate(two);
  }
  assert.throws(() => new NoiseScaleSchedule(opts(), 1, 'rank').validate(one), /at least 2/);
  new NoiseScaleSchedule(opts(), 1, 'micro').validate(one);
  assert.throws(() => new NormTestSchedule(opts({ max: 2048 }), 0.2).validate(two), /max batch 2048 exceeds .* 1024/);
  assert.throws(() => new StagewiseSchedule([{ batch: 4096, fraction: 1 }], 10).validate(two), /4096 exceeds/);
});

test('needs: each schedule asks for exactly the statistics its formula uses', () => {
  const n = (s: BatchSchedule): string => Object.entries(s.needs).filter(([, v]) => v).map(([k]) => k).sort().join(',');
  assert.equal(n(new NormTestSchedule(opts(), 0.2, 'microbatch')), 'microSamples');
  assert.equal(n(new NormTestSchedule(opts(), 0.2, 'per-sample')), 'localNorms');
  assert.equal(n(new NormTestSchedule(opts(), 0.2, 'paper')), 'localNorms');
  assert.equal(n(new InnerProductSchedule(opts(), 'inner_product', 0.9, null)), 'innerProducts');
  assert.equal(n(new InnerProductSchedule(opts(), 'orthogonality', null, 5)), 'innerProducts,localNorms');
  assert.equal(n(new InnerProductSchedule(opts(), 'augmented', 0.9, 5)), 'innerProducts,localNorms');
  const coordinate = new CoordinateNormSchedule(opts(), 0.2, { quantile: 0.9, threshold: 0 });
  assert.equal(n(coordinate), 'microSamples');
  assert.ok(coordinate.collector, 'the coordinate test brings its per-coordinate statistics collector');
  assert.equal(n(new NoiseScaleSchedule(opts(), 1)), 'microSamples');
  for (const s of [new NormTestSchedule(opts(), 0.2, 'microbatch'), new InnerProductSchedule(opts(), 'augmented', 0.9, 5), new NoiseScaleSchedule(opts(), 1)] as BatchSchedule[]) assert.equal(s.collector, undefined, `${s.name} needs no collector`);
});

test('observe() refuses a missing statistic the schedule asked for, and an inconsistent plan', () => {
  assert.throws(() => new NormTestSchedule(opts(), 0.2, 'per-sample').observe(stats(2, 1, 8, {}), 16), /localSqNormSum/);
  assert.throws(() => new InnerProductSchedule(opts(), 'orthogonality', null, 5).observe(stats(2, 1, 8, { localSqNormSum: 3 }), 16), /dotSqSum/);
  const bad = stats(2, 2, 4, { microSqNormSum: 5 });
  bad.plan.globalBatch = 15;
  assert.throws(() => new NormTestSchedule(opts(), 0.2).observe(bad, 15), /globalBatch 15/);
});

// ------------------------------------------------------------------------------------------------
// state() / restore()

/** A sequence of step statistics whose noise grows, so that the batch ramps up over the run. */
function* stepStats(seed: number, J: number): Generator<GradientStats> {
  const rng = new Rng(seed);
  for (let k = 0; ; k++) {
    const M = 2;
    const m = 4 + (k % 3);
    const g2 = 0.5 + rng.uniform();
    const noise = (1 + k / 4) * (0.5 + rng.uniform());
    const dotMean = g2;
    const dotVar = noise * g2 * 0.4 * rng.uniform(); // keeps Σ‖g_s‖² − Σ⟨g_s,ḡ⟩²/‖ḡ‖² > 0
    yield {
      plan: { globalBatch: J * M * m, microBatch: m, accumSteps: M, ranks: J },
      microSqNormSum: J * M * g2 + noise * (J * M - 1),
      localSqNormSum: J * g2 + (noise * (J - 1)) / 2,
      globalSqNorm: g2,
      dotSum: J * dotMean,
      dotSqSum: J * dotMean * dotMean + (J - 1) * dotVar,
      collected: 10 * noise * (0.5 + rng.uniform()),
    };
  }
}

const RESUME_CONFIGS: BatchConfigInput[] = [
  { schedule: 'norm', eta: 0.3, estimator: 'microbatch', ema: { beta: 0.8 }, test_interval: 2, max: 4096 },
  { schedule: 'norm', eta: 0.3, estimator: 'per-sample', hysteresis: 0.1, start_after_samples: 100, max: 4096 },
  { schedule: 'norm', eta: 0.1, estimator: 'paper', ema: { beta: 0.5 }, max: 4096 },
  { schedule: 'inner_product', theta: 0.2, ema: { beta: 0.7 }, max: 4096 },
  { schedule: 'orthogonality', nu: 0.3, max: 4096 },
  { schedule: 'augmented', theta: 0.2, nu: 0.3, ema: { beta: 0.9 }, test_interval: 3, max: 4096 },
  { schedule: 'gns', multiplier: 4, max: 4096 },
  { schedule: 'coordinate', eta: 0.3, ema: { beta: 0.6 }, max: 4096 },
  { schedule: 'ramp', start: 16, increment: 16, ramp_samples: 2000, max: 256 },
  { schedule: 'stagewise', stages: [{ batch: 16, fraction: 0.1 }, { batch: 64, fraction: 0.9 }] },
];

for (const cfg of RESUME_CONFIGS) {
  test(`restore mid-run continues exactly: ${JSON.stringify(cfg)}`, () => {
    const N = 12;
    const total = 30;
    const ctx = { sampleBudget: 2000 };
    const run = (s: BatchSchedule, it: Generator<GradientStats>, from: number, to: number, seen: { n: number }): ScheduleDecision[] => {
      const out: ScheduleDecision[] = [];
      for (let k = from; k < to; k++) {
        const st = it.next().value as GradientStats;
        seen.n += st.plan.globalBatch;
        out.push(s.observe(st, seen.n));
        out.push({ testStat: null, gradVar: null, testPassed: null, nextBatch: s.targetBatch(seen.n) });
      }
      return out;
    };
    const straight = createSchedule(cfg, ctx);
    const seenA = { n: 0 };
    const itA = stepStats(5, 4);
    const all = run(straight, itA, 0, total, seenA);

    const first = createSchedule(cfg, ctx);
    const seenB = { n: 0 };
    const itB = stepStats(5, 4);
    const head = run(first, itB, 0, N, seenB);
    const saved = JSON.parse(JSON.stringify(first.state())) as Record<string, unknown>;
    const resumed = createSchedule(cfg, ctx);
    resumed.restore(saved);
    const tail = run(resumed, itB, N, total, seenB);

    assert.deepEqual([...head, ...tail], all);
    assert.deepEqual(resumed.state(), straight.state());
    const name = (cfg as { schedule?: string }).schedule;
    if (name !== 'ramp' && name !== 'stagewise') {
      // The batch must actually be moving across the restore point for the check to mean something.
      const batches = all.map((d) => d.nextBatch);
      assert.ok(batches[2 * N - 1]! > batches[0]! && batches[batches.length - 1]! > batches[2 * N - 1]!, `batch not ramping across the restore: ${batches.join(',')}`);
    }
  });
}

test('restore refuses a state from another schedule or outside [initial, max]', () => {
  const s = createSchedule({ schedule: 'norm', initial: 16, max: 256 });
  assert.throws(() => s.restore({ schedule: 'gns' }), /'gns'/);
  const st = s.state();
  assert.throws(() => s.restore({ ...st, batch: 512 }), /outside/);
  assert.throws(() => s.restore({ ...st, ema: { beta: 0.3, count: 1, values: [1, 2] } }), /beta/);
});

test('noise-scale tracker state round-trips through JSON', () => {
  const a = new NoiseScaleTracker({ beta: 0.9, source: 'micro' });
  const it = stepStats(9, 2);
  for (let k = 0; k < 5; k++) a.observe(it.next().value as GradientStats);
  const b = new NoiseScaleTracker({ beta: 0.9, source: 'micro' });
  b.restore(JSON.parse(JSON.stringify(a.state())) as Record<string, unknown>);
  for (let k = 0; k < 5; k++) {
    const st = it.next().value as GradientStats;
    assert.equal(b.observe(st), a.observe(st));
    assert.deepEqual(b.lastEstimate(), a.lastEstimate());
  }
});

test('LR scaling relative to the initial batch: none 1, linear b/b₀, sqrt √(b/b₀)', () => {
  assert.equal(lrScale('none', 1024, 256), 1);
  assert.equal(lrScale('linear', 1024, 256), 4);
  assert.equal(lrScale('sqrt', 1024, 256), 2);
  assert.equal(lrScale('sqrt', 256, 256), 1);
  assert.throws(() => lrScale('cubic' as never, 2, 1), /one of 'none', 'linear', 'sqrt'/);
});
