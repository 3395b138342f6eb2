/**
 * The planner against adaptive-batch-spec.md "Realizing a batch size":
 *   t = min(target, b_max); M = ⌈t/(J·m_max)⌉; m = ⌈t/(J·M)⌉; b = J·M·m; M = 2 when micro-step
 *   samples are needed and J·M < 2.
 * Properties with fast-check, plus hand-computed examples.
 */
import { strict as assert } from 'node:assert';
import { test } from 'node:test';
import fc from 'fast-check';
import { planBatch } from '../src/batch/planner.js';
import type { BatchLayout } from '../src/batch/types.js';

const layoutArb = fc.record({
  ranks: fc.integer({ min: 1, max: 16 }),
  maxMicroBatch: fc.integer({ min: 1, max: 64 }),
  maxBatch: fc.integer({ min: 1, max: 20000 }),
});
const targetArb = fc.integer({ min: 1, max: 30000 });
const RUNS = { numRuns: 3000, seed: 42 };

test('planner: hand-computed plans', () => {
  const paper: BatchLayout = { ranks: 4, maxMicroBatch: 8, maxBatch: 8192 };
  assert.deepEqual(planBatch(256, paper), { globalBatch: 256, microBatch: 8, accumSteps: 8, ranks: 4 });
  assert.deepEqual(planBatch(8192, paper), { globalBatch: 8192, microBatch: 8, accumSteps: 256, ranks: 4 });
  // t = 100: M = ⌈100/32⌉ = 4, m = ⌈100/16⌉ = 7, b = 112 (12 over, < J·M = 16).
  assert.deepEqual(planBatch(100, paper), { globalBatch: 112, microBatch: 7, accumSteps: 4, ranks: 4 });
  // Capped at b_max.
  assert.deepEqual(planBatch(1e6, paper), planBatch(8192, paper));
  // Fractional target is rounded up first.
  assert.deepEqual(planBatch(99.2, paper), planBatch(100, paper));
  // One rank, micro samples needed, target fits one micro batch: M = 2 with m halved (rounded up).
  const one: BatchLayout = { ranks: 1, maxMicroBatch: 8, maxBatch: 1024 };
  assert.deepEqual(planBatch(8, one, false), { globalBatch: 8, microBatch: 8, accumSteps: 1, ranks: 1 });
  assert.deepEqual(planBatch(8, one, true), { globalBatch: 8, microBatch: 4, accumSteps: 2, ranks: 1 });
  assert.deepEqual(planBatch(7, one, true), { globalBatch: 8, microBatch: 4, accumSteps: 2, ranks: 1 });
  assert.deepEqual(planBatch(1, one, true), { globalBatch: 2, microBatch: 1, accumSteps: 2, ranks: 1 });
  // Two ranks already give two samples: nothing forced.
  assert.deepEqual(planBatch(8, { ranks: 2, maxMicroBatch: 8, maxBatch: 64 }, true), { globalBatch: 8, microBatch: 4, accumSteps: 1, ranks: 2 });
});

test('planner: rejects invalid layouts and targets', () => {
  const ok: BatchLayout = { ranks: 2, maxMicroBatch: 4, maxBatch: 64 };
  assert.throws(() => planBatch(0, ok), /target/);
  assert.throws(() => planBatch(NaN, ok), /target/);
  assert.throws(() => planBatch(8, { ...ok, ranks: 0 }), /ranks/);
  assert.throws(() => planBatch(8, { ...ok, maxMicroBatch: 1.5 }), /maxMicroBatch/);
  assert.throws(() => planBatch(8, { ...ok, maxBatch: -1 }), /maxBatch/);
});

test('planner properties: shape, m ≤ m_max, b ≥ min(target, b_max), b − t < J·M, J·M ≥ 2 when needed', () => {
  fc.assert(
    fc.property(layoutArb, targetArb, fc.boolean(), (layout, target, needMicro) => {
      const p = planBatch(target, layout, needMicro);
      const t = Math.min(target, layout.maxBatch);
      const JM = p.ranks * p.accumSteps;
      assert.equal(p.ranks, layout.ranks);
      assert.ok(Number.isInteger(p.microBatch) && p.microBatch >= 1, 'm ≥ 1');
      assert.ok(Number.isInteger(p.accumSteps) && p.accumSteps >= 1, 'M ≥ 1');
      assert.equal(p.globalBatch, JM * p.microBatch, 'b = J·M·m');
      assert.ok(p.microBatch <= layout.maxMicroBatch, 'm ≤ m_max');
      assert.ok(p.globalBatch >= t, 'b ≥ min(target, b_max)');
      assert.ok(p.globalBatch - t < JM, 'b − t < J·M');
      if (needMicro) assert.ok(JM >= 2, 'J·M ≥ 2 when micro-step samples are needed');
    }),
    RUNS,
  );
});

test('planner properties: M is the fewest micro-steps that hold t (unless forced to 2), m the smallest that fits', () => {
  fc.assert(
    fc.property(layoutArb, targetArb, fc.boolean(), (layout, target, needMicro) => {
      const p = planBatch(target, layout, needMicro);
      const t = Math.min(target, layout.maxBatch);
      const J = layout.ranks;
      const forced = needMicro && J === 1 && p.accumSteps === 2 && t <= layout.maxMicroBatch;
      if (!forced) assert.ok(J * (p.accumSteps - 1) * layout.maxMicroBatch < t, 'one micro-step fewer would not hold t');
      assert.ok(J * p.accumSteps * (p.microBatch - 1) < t, 'a smaller m would not reach t');
    }),
    RUNS,
  );
});

test('planner properties: monotone in the target, and a realized batch is a fixed point', () => {
  fc.assert(
    fc.property(layoutArb, targetArb, targetArb, fc.boolean(), (layout, a, c, needMicro) => {
      const [lo, hi] = a <= c ? [a, c] : [c, a];
      const pLo = planBatch(lo, layout, needMicro);
      const pHi = planBatch(hi, layout, needMicro);
      assert.ok(pLo.globalBatch <= pHi.globalBatch, `target ${lo} → ${pLo.globalBatch} but ${hi} → ${pHi.globalBatch}`);
      // Asking for the realized batch again gives the same plan (no drift when a schedule echoes it).
      if (pLo.globalBatch <= layout.maxBatch) assert.deepEqual(planBatch(pLo.globalBatch, layout, needMicro), pLo);
      // Targets at or above b_max all realize the same plan.
      assert.deepEqual(planBatch(layout.maxBatch + lo, layout, needMicro), planBatch(layout.maxBatch, layout, needMicro));
    }),
    RUNS,
  );
});
